#!/usr/bin/env bash
# Configure, build and test against the GPU machine's LibTorch (Python torch, CUDA build).
# Run from the repository root:  bash scripts/gpu_build.sh [extra cmake args...]
# The project's copy of ../shared/gpu/build-gpu.sh.
#
# Architectures: LibTorch's cuda.cmake turns TORCH_CUDA_ARCH_LIST into -gencode flags in
# CMAKE_CUDA_FLAGS and overrides CMAKE_CUDA_ARCHITECTURES with OFF (warning if it is set), so
# TORCH_CUDA_ARCH_LIST=9.0 is what selects sm_90 for our kernels too; SCALEVEC_CUDA_ARCHITECTURES
# (default 90) is the fallback used only when those flags name no architecture.
set -euo pipefail
TP=$(python3 -c 'import torch;print(torch.utils.cmake_prefix_path)')
cmake -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TP" \
  -DTORCH_CUDA_ARCH_LIST=9.0 -DSCALEVEC_CUDA_ARCHITECTURES=90 "$@"
cmake --build build-gpu -j "$(nproc)"
ctest --test-dir build-gpu --output-on-failure -j 4
