#!/usr/bin/env bash
# Builds gantry from this checkout and installs the `gantry` binary:
# /usr/local/bin when run as root, ~/.local/bin otherwise. Safe to run again: it rebuilds
# what changed and replaces the binary atomically (a running daemon keeps its old copy).
#
# Later issues add steps (the Docker engine, the example model-server image); each is a
# function called from main, so the order of the whole install stays readable in one place.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

say() {
    printf '==> %s\n' "$*"
}

fail() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

# cargo lives in ~/.cargo/bin when Rust was installed with rustup; a fresh shell or sudo may
# not have it on PATH.
find_cargo() {
    if [[ -z "${HOME:-}" ]]; then
        HOME=$(getent passwd "$(id -u)" | cut -d: -f6)
        export HOME
    fi
    export PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
    command -v cargo >/dev/null ||
        fail "cargo not found; install Rust from https://rustup.rs and run ./install.sh again"
}

# Where the binary goes: system-wide for root, per user otherwise.
bin_dir() {
    if [[ $(id -u) -eq 0 ]]; then
        printf '/usr/local/bin'
    else
        printf '%s/.local/bin' "$HOME"
    fi
}

build_gantry() {
    say "building gantry (cargo build --release --locked)"
    cargo build --release --locked
}

install_gantry() {
    local dir target
    dir=$(bin_dir)
    target="$dir/gantry"
    mkdir -p "$dir"
    # Copy next to the target, then rename: atomic, and works while the old binary runs.
    cp target/release/gantry "$target.new.$$"
    chmod 0755 "$target.new.$$"
    mv -f "$target.new.$$" "$target"
    local version
    version=$("$target" --version 2>/dev/null || true)
    say "installed $target${version:+ ($version)}"
    case ":$PATH:" in
        *":$dir:"*) ;;
        *)
            printf 'warning: %s is not on your PATH; add it, for example:\n' "$dir" >&2
            printf "    echo 'export PATH=\"%s:\$PATH\"' >> ~/.bashrc && export PATH=\"%s:\$PATH\"\n" \
                "$dir" "$dir" >&2
            ;;
    esac
}

next_steps() {
    cat <<'NEXT'

Next: serve the examples and look at them.
    gantry serve --dir examples/services     # the daemon; management API on 127.0.0.1:8081
    gantry get isvc                          # in another terminal
    gantry validate examples/services        # offline check, for your own CI
NEXT
}

main() {
    find_cargo
    build_gantry
    install_gantry
    next_steps
}

main "$@"
