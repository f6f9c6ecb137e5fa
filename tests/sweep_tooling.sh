#!/usr/bin/env bash
# ctest entry for scripts/test_sweep.sh: prepares a tiny corpus (Debian's license texts) with the
# real prepare-data path into a temporary folder, then runs the sweep-tooling checks on it.
# usage: tests/sweep_tooling.sh BUILD_DIR     exit 77 (skipped) without python3-matplotlib/yaml
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:?usage: sweep_tooling.sh BUILD_DIR}" && pwd)"
py="${PYTHON:-/usr/bin/python3}"
"$py" -c 'import matplotlib, yaml' 2>/dev/null || { echo "skip: $py lacks matplotlib or yaml"; exit 77; }

tmp="$(mktemp -d "${TMPDIR:-/tmp}/sweep-tooling.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
source "$src/tests/tiny_corpus.sh"
prepare_tiny_corpus "$src" "$build" "$tmp"
cd "$src"
SCALEVEC_BIN="$build/scalevec" SWEEP_TEST_BASE="$tmp/base.yaml" PYTHON="$py" bash scripts/test_sweep.sh
