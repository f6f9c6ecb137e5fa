#!/usr/bin/env bash
# Rewrites the golden loss curves (tests/golden/<platform>/*.txt) of this machine's platform from
# a build, then shows what changed, for a reviewed commit. Only after an intended change to the
# numbers (a formula, an init, a default): the golden tests exist to catch the unintended ones.
#
# usage: bash scripts/regenerate_golden.sh [build-dir]     (default: build)
# The Debian 13 platforms, in their debootstrap roots (as root):
#   SCALEVEC_GOLDEN_WRITE=1 bash scripts/check_platforms.sh debian13 debian13-cuda
set -euo pipefail
cd "$(dirname "$0")/.."
build="${1:-build}"
[ -d "$build" ] || { echo "regenerate_golden: no build folder $build (run bash scripts/setup.sh)" >&2; exit 2; }
cmake --build "$build" --target scalevec_tests
SCALEVEC_GOLDEN_WRITE=1 "$build/scalevec_tests" --gtest_filter='GoldenCurves.*' 2>&1 | grep -E '^golden:|FAILED|PASSED'
echo "regenerate_golden: changes under tests/golden (commit them with the reason):"
git status --short -- tests/golden
git --no-pager diff --stat -- tests/golden
