#!/usr/bin/env bash
# Router overhead: requests per second and p50/p99 latency directly to a replica, through
# gantry's data plane and through nginx (Debian's package) as a reverse proxy, with 1 and 64
# kept-alive connections. See docs/benchmarks.md, "Router overhead".
#
# Usage: scripts/bench-router.sh
#        BENCH_PIN=0 scripts/bench-router.sh   (nothing pinned; adds 2-thread/2-worker rows)
# Other settings (BENCH_SECONDS, BENCH_ROUNDS, BENCH_WORKLOADS, BENCH_TARGETS,
# BENCH_CONNECTIONS, ...) are described at the top of benches/router.rs.
#
# Installs nginx when missing (as root, or with sudo), builds the release model server, and
# runs `cargo bench --bench router`. Safe to run again: nothing is installed twice.
set -euo pipefail

cd "$(dirname "$0")/.."

as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "bench-router: need root (or sudo) to run: $*" >&2
        return 1
    fi
}

have_nginx() {
    command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]
}

if ! have_nginx; then
    echo "bench-router: installing nginx (Debian's package)" >&2
    # Installing the package must not start the system nginx on port 80: the benchmark runs
    # its own, with its own configuration. policy-rc.d tells the package scripts not to.
    policy=/usr/sbin/policy-rc.d
    made_policy=""
    if [ ! -e "$policy" ]; then
        as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod +x $policy"
        made_policy=1
    fi
    cleanup() { if [ -n "$made_policy" ]; then as_root rm -f "$policy"; fi; }
    trap cleanup EXIT
    as_root apt-get update -qq || true
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light \
        || as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx \
        || echo "bench-router: cannot install nginx" >&2
    cleanup
    made_policy=""
    trap - EXIT
fi
if have_nginx; then
    export BENCH_NGINX="${BENCH_NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}"
else
    echo "bench-router: nginx is still not installed; its rows will be skipped" >&2
fi

cargo build --release -p gantry-model-server
target_dir="${CARGO_TARGET_DIR:-target}"
export BENCH_MODEL_SERVER="${BENCH_MODEL_SERVER:-$(realpath "$target_dir")/release/gantry-model-server}"

cargo bench --bench router
