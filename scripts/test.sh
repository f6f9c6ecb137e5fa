#!/usr/bin/env bash
# Sets up (packages + Release build) and runs the whole test suite through ctest.
# usage: bash scripts/test.sh [--cuda] [extra cmake args]    (--cuda: see scripts/setup.sh)
set -euo pipefail
cd "$(dirname "$0")/.."
export SCALEVEC_CUDA="${SCALEVEC_CUDA:-0}"
if [ "${1:-}" = "--cuda" ]; then
  SCALEVEC_CUDA=1
  shift
fi
default_build=build
[ "$SCALEVEC_CUDA" = 1 ] && default_build=build-cuda
export BUILD_DIR="${BUILD_DIR:-$default_build}"
bash scripts/setup.sh "$@"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j "$(nproc)" --timeout 900
