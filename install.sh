#!/usr/bin/env bash
# Builds gantry from this checkout and installs the `gantry` binary:
# /usr/local/bin when run as root, ~/.local/bin otherwise. Safe to run again: it rebuilds
# what changed and replaces the binary atomically (a running daemon keeps its old copy).
#
# It also installs (Debian's docker.io, with apt-get) and starts the Docker engine when none
# runs, and builds the example model server image (examples/model-server/build-image.sh). Each step is a function
# called from main, so the order of the whole install stays readable in one place.
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

warn() {
    printf 'warning: %s\n' "$*" >&2
}

is_root() {
    [[ $(id -u) -eq 0 ]]
}

# Runs a command as root: directly when root, through sudo otherwise.
as_root() {
    if is_root; then
        "$@"
    else
        sudo "$@"
    fi
}

can_be_root() {
    is_root || command -v sudo >/dev/null
}

# The Docker engine (Debian's docker.io) that runs the replicas, and the static busybox that
# the test images are built around. Without apt-get or root, say what to install instead.
install_docker_packages() {
    export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
    local missing=()
    if ! command -v dockerd >/dev/null || ! command -v docker >/dev/null; then
        missing+=(docker.io)
    fi
    if command -v dpkg-query >/dev/null &&
        ! dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q 'ok installed'; then
        missing+=(busybox-static)
    fi
    ((${#missing[@]} == 0)) && return 0
    if ! command -v apt-get >/dev/null; then
        warn "gantry runs its replicas on a Docker engine; install Docker Engine for your distribution (https://docs.docker.com/engine/install/) and run ./install.sh again"
        return 0
    fi
    if ! can_be_root; then
        warn "missing ${missing[*]}; as root, run: apt-get update && apt-get install -y ${missing[*]}"
        return 0
    fi
    say "installing ${missing[*]} (apt-get)"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    as_root env DEBIAN_FRONTEND=noninteractive NEEDRESTART_MODE=a \
        apt-get install -y -qq "${missing[@]}"
}

# Whether an engine runs on the local socket. A user outside the docker group cannot ask it,
# so the socket and the process tell instead.
docker_engine_up() {
    docker info >/dev/null 2>&1 && return 0
    [[ -S /var/run/docker.sock ]] && pgrep -x dockerd >/dev/null
}

start_docker_engine() {
    if [[ -n ${DOCKER_HOST:-} ]]; then
        docker info >/dev/null 2>&1 ||
            warn "DOCKER_HOST=$DOCKER_HOST does not answer; gantry uses it when it is set"
        return 0
    fi
    command -v dockerd >/dev/null || return 0
    if ! docker_engine_up; then
        if ! can_be_root; then
            warn "the Docker engine is not running; as root, run: systemctl start docker (or, without systemd: dockerd &)"
            return 0
        fi
        if [[ -d /run/systemd/system ]]; then
            say "starting the Docker engine (systemctl enable --now docker)"
            as_root systemctl enable --now docker
        else
            say "starting the Docker engine (dockerd, log in /var/log/dockerd.log)"
            as_root sh -c 'setsid nohup dockerd </dev/null >>/var/log/dockerd.log 2>&1 &'
        fi
        local deadline=$((SECONDS + 60))
        until docker_engine_up; do
            if ((SECONDS >= deadline)); then
                as_root tail -n 20 /var/log/dockerd.log >&2 2>/dev/null || true
                fail "the Docker engine did not come up within 60s (see journalctl -u docker or /var/log/dockerd.log)"
            fi
            sleep 0.2
        done
    fi
    if docker info >/dev/null 2>&1; then
        say "Docker engine $(docker version --format '{{.Server.Version}}' 2>/dev/null) is running"
    else
        warn "the Docker engine runs, but $(id -un) may not use it; join the docker group: sudo usermod -aG docker $(id -un) (then log in again)"
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

build_example_image() {
    say "building the example model server image (examples/model-server/build-image.sh)"
    "$(dirname "$0")/examples/model-server/build-image.sh"
}

main() {
    find_cargo
    install_docker_packages
    start_docker_engine
    build_gantry
    install_gantry
    build_example_image
    next_steps
}

main "$@"
