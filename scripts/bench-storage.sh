#!/usr/bin/env bash
# Model downloads: gantry's download throughput from a local S3 server (moto) and a local HTTP
# server, against boto3 and curl fetching the same data in the same run. See
# docs/benchmarks.md, "Model downloads".
#
# Usage: scripts/bench-storage.sh
#        BENCH_MIB=1024 BENCH_ROUNDS=5 scripts/bench-storage.sh
#        BENCH_ROWS=s3-many,http scripts/bench-storage.sh
# Other settings (BENCH_FILES, BENCH_BOTO3_WORKERS, BENCH_PYTHON, BENCH_CURL, ...) are
# described at the top of benches/storage.rs.
#
# Needs moto[server] with boto3 (GANTRY_MOTO_SERVER, /opt/gantry-test-moto where `.ci/run`
# installs it, or moto_server on the PATH) and curl; installs nothing. Builds the
# benchmark (release) and runs `cargo bench --bench storage`.
set -euo pipefail

cd "$(dirname "$0")/.."

# moto: GANTRY_MOTO_SERVER, else the one `.ci/run` installs (its venv has boto3), else the PATH.
moto="${GANTRY_MOTO_SERVER:-}"
if [ -z "$moto" ] && [ -x /opt/gantry-test-moto/bin/moto_server ]; then
    moto=/opt/gantry-test-moto/bin/moto_server
fi
if [ -z "$moto" ]; then
    moto="$(command -v moto_server || true)"
fi
if [ -z "$moto" ] || [ ! -x "$moto" ]; then
    echo "bench-storage: no moto_server: set GANTRY_MOTO_SERVER, put moto_server on the PATH," >&2
    echo "bench-storage: or run .ci/run as root once (it installs /opt/gantry-test-moto)" >&2
    exit 1
fi
export GANTRY_MOTO_SERVER="$moto"
python="${BENCH_PYTHON:-$(dirname "$moto")/python}"
if ! "$python" -c 'import boto3' 2>/dev/null; then
    echo "bench-storage: $python cannot import boto3; set BENCH_PYTHON to a Python that can" >&2
    exit 1
fi
export BENCH_PYTHON="$python"
if ! command -v "${BENCH_CURL:-curl}" >/dev/null 2>&1; then
    echo "bench-storage: no curl (apt-get install curl, or set BENCH_CURL)" >&2
    exit 1
fi

cargo bench --bench storage
