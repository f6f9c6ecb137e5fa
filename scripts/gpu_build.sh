#!/usr/bin/env bash
# Configure, build and test against the GPU machine's LibTorch (CUDA), as ../shared/gpu/build-gpu.sh.
# usage: bash scripts/gpu_build.sh [extra cmake args]
set -euo pipefail
cd "$(dirname "$0")/.."
TP=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
cmake -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TP" \
  -DTORCH_CUDA_ARCH_LIST=9.0 -DCMAKE_CUDA_ARCHITECTURES=90 "$@"
cmake --build build-gpu -j "$(nproc)"
ctest --test-dir build-gpu --output-on-failure -j 4
