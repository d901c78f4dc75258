#!/usr/bin/env bash
# The real-GPU check of docs/gpus.md, as one prepared script for a machine with an NVIDIA
# driver but no Rust toolchain, Docker or network (the `device` machine some tasks are lent).
#
# Build first, where the toolchain is, an ordinary (dynamically linked) release binary:
#   cargo build --release --bin gantry
# It needs a glibc at least as new as the build machine's (Debian 12: 2.36). Do not build it
# statically: glibc's dlopen from a static binary crashes inside the driver's NVML (seen on an
# H200, driver 580.159.04), so a static gantry refuses to load NVML at all.
# Then run this script on the GPU machine from the repository root, with the binary carried
# along (GANTRY_BIN, default target/release/gantry) and OUT set to a folder for the results.
# It records what gantry's NVML probe sees next to what nvidia-smi reports; copy the output
# into docs/gpus.md ("On a real GPU").
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out=${OUT:-gpu-check}
mkdir -p "$out"
bin=${GANTRY_BIN:-target/release/gantry}
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
