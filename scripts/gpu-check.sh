#!/usr/bin/env bash
# The real-GPU check of docs/gpus.md, as one prepared script for a machine with an NVIDIA
# driver but no Rust toolchain, Docker or network (the `device` machine some tasks are lent).
#
# Build first, where the toolchain is:
#   RUSTFLAGS="-C target-feature=+crt-static" \
#     cargo build --release --bin gantry --target x86_64-unknown-linux-gnu
# then run this script on the GPU machine from the repository root, with the binary carried
# along (target/x86_64-unknown-linux-gnu/release/gantry) and OUT set to a folder for the
# results. It records what gantry's NVML probe sees next to what nvidia-smi reports; copy the
# output into docs/gpus.md ("On a real GPU").
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${OUT:-gpu-check}
mkdir -p "$out"
bin=${GANTRY_BIN:-target/x86_64-unknown-linux-gnu/release/gantry}
[[ -x $bin ]] || bin=target/release/gantry
{
    echo "## gantry gpus (table)"
    "$bin" gpus 2>&1
    echo
    echo "## gantry gpus -o yaml"
    "$bin" gpus -o yaml 2>&1
    echo
    echo "## nvidia-smi"
    nvidia-smi --query-gpu=uuid,name,memory.total,pci.bus_id,utilization.gpu,temperature.gpu,power.draw \
        --format=csv 2>&1 || echo "nvidia-smi not available"
    echo
    echo "## nvidia-smi topo -m"
    nvidia-smi topo -m 2>&1 || true
    echo
    echo "## binary"
    file "$bin" 2>/dev/null || true
} | tee "$out/gpu-check.txt"
