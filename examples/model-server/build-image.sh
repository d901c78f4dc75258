#!/usr/bin/env bash
# Builds gantry-model-server as a statically linked binary and packs it `FROM scratch` into a
# local Docker image; no registry is involved. Safe to run again: cargo rebuilds only what
# changed, and Docker reuses its cached layers when the binary and the model are unchanged.
#
#   examples/model-server/build-image.sh [--check] [TAG]
#
#   TAG      image tag, default gantry-model-server:latest
#   --check  afterwards, run the image with the Iris model mounted at /mnt/models and check
#            that a :predict request answers the right classes
#
# The image holds /gantry-model-server (the entrypoint) and a copy of the Iris model at
# /models/iris; gantry mounts a service's model at /mnt/models, the server's default.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
# Static glibc linking works on the host's own target, the only one installed here.
target=x86_64-unknown-linux-gnu

say() {
    printf '==> %s\n' "$*"
}

fail() {
    printf 'error: %s\n' "$*" >&2
    exit 1
}

check=false
tag=gantry-model-server:latest
for arg in "$@"; do
    case "$arg" in
    --check) check=true ;;
    -h | --help)
        sed -n '2,13s/^# \{0,1\}//p' "${BASH_SOURCE[0]}"
        exit 0
        ;;
    -*) fail "unknown option $arg (see --help)" ;;
    *) tag=$arg ;;
    esac
done

command -v cargo >/dev/null || fail "cargo not found; install Rust from https://rustup.rs"
command -v docker >/dev/null || fail "docker not found; install Docker (Debian: apt-get install docker.io)"
host=$(rustc -vV | sed -n 's/^host: //p')
[[ $host == "$target" ]] || fail "this script links statically for $target; this machine is $host"
docker info >/dev/null 2>&1 ||
    fail "no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-unset}); start it, e.g. 'sudo systemctl start docker' or 'sudo dockerd &'"

build_binary() {
    say "building gantry-model-server statically: cargo build --release -p gantry-model-server --target $target, RUSTFLAGS='-C target-feature=+crt-static', symbols stripped"
    local started=$SECONDS messages
    # JSON messages on stdout name the executable wherever the target directory is.
    messages=$(cd "$root" &&
        RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
            CARGO_PROFILE_RELEASE_STRIP=symbols \
            cargo build --release -p gantry-model-server --target "$target" \
            --message-format=json-render-diagnostics)
    binary=$(grep -o '"executable":"[^"]*/gantry-model-server"' <<<"$messages" | tail -n1 | cut -d'"' -f4)
    [[ -n $binary && -x $binary ]] || fail "cargo did not report the gantry-model-server executable"
    say "built $binary in $((SECONDS - started)) s ($(du -h "$binary" | cut -f1))"

    local kind
    kind=$(file -b "$binary")
    case "$kind" in
    *"statically linked"* | *"static-pie linked"*) say "statically linked: $kind" ;;
    *) fail "$binary is not statically linked: $kind" ;;
    esac
}

build_image() {
    local context
    context=$(mktemp -d)
    # shellcheck disable=SC2064 # expand now: the variable is local
    trap "rm -rf '$context'" EXIT
    cp "$binary" "$context/gantry-model-server"
    mkdir -p "$context/models"
    cp -R "$root/examples/models/iris" "$context/models/iris"
    cat >"$context/Dockerfile" <<'EOF'
FROM scratch
COPY gantry-model-server /gantry-model-server
COPY models/iris /models/iris
EXPOSE 8080
ENTRYPOINT ["/gantry-model-server"]
EOF
    # Docker 23+ clients build with BuildKit through the buildx plugin; without the plugin,
    # the classic builder does the same job for a FROM scratch image.
    if ! docker buildx version >/dev/null 2>&1; then
        export DOCKER_BUILDKIT=0
        say "docker buildx is not installed: using the classic builder (DOCKER_BUILDKIT=0)"
    fi
    say "docker build -t $tag (context: $context)"
    local output
    if ! output=$(docker build --quiet -t "$tag" "$context" 2>&1); then
        printf '%s\n' "$output" >&2
        fail "docker build failed"
    fi
    rm -rf "$context"
    trap - EXIT
    say "image $tag: $(docker image inspect --format '{{.Id}}, {{.Size}} bytes' "$tag")"
}

# Runs the image as gantry would (model mounted read-only at /mnt/models, port published on
# loopback) and checks a prediction.
check_image() {
    local name="gantry-model-server-check-$$" port answer expected='{"predictions":[0,2,1]}'
    say "checking $tag: docker run with examples/models/iris mounted at /mnt/models"
    docker run -d --rm --name "$name" -p 127.0.0.1::8080 \
        -v "$root/examples/models/iris:/mnt/models:ro" "$tag" --model-name iris >/dev/null
    # shellcheck disable=SC2064
    trap "docker rm -f '$name' >/dev/null 2>&1 || true" EXIT
    port=$(docker port "$name" 8080/tcp | head -n1 | sed 's/.*://')
    local body='{"instances": [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]]}'
    for _ in $(seq 100); do
        if answer=$(predict "$port" "$body" 2>/dev/null) && [[ -n $answer ]]; then
            break
        fi
        sleep 0.1
    done
    [[ ${answer:-} == "$expected" ]] || {
        docker logs "$name" >&2 || true
        fail "expected $expected from POST /v1/models/iris:predict, got '${answer:-nothing}'"
    }
    say "POST /v1/models/iris:predict answered $answer"
    docker stop --time 10 "$name" >/dev/null
    say "stopped the check container"
}

# POST /v1/models/iris:predict on 127.0.0.1:$1 with bash's /dev/tcp (no curl in minimal CIs).
predict() {
    local port=$1 body=$2 response
    exec 3<>"/dev/tcp/127.0.0.1/$port"
    printf 'POST /v1/models/iris:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
        "${#body}" "$body" >&3
    response=$(cat <&3)
    exec 3<&-
    printf '%s' "${response##*$'\r\n\r\n'}"
}

build_binary
build_image
if $check; then
    check_image
fi
say "done: docker run --rm -p 127.0.0.1:8080:8080 -v \$PWD/examples/models/iris:/mnt/models:ro $tag --model-name iris"
