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
cat /usr/share/common-licenses/{GPL-3,Apache-2.0,GFDL-1.3,MPL-2.0} > "$tmp/corpus.txt"
cat > "$tmp/base.yaml" <<YAML
defaults: $src/configs/tiny.yaml
model: {vocab_size: 512}
data:
  corpus: [$tmp/corpus.txt]
  out_dir: $tmp/data
  train_shard: $tmp/data/train.bin
  val_shard: $tmp/data/val.bin
  tokenizer: $tmp/data/tokenizer.model
  val_fraction: 0.1
YAML
"$build/scalevec" prepare-data --config "$tmp/base.yaml"
cd "$src"
SCALEVEC_BIN="$build/scalevec" SWEEP_TEST_BASE="$tmp/base.yaml" PYTHON="$py" bash scripts/test_sweep.sh
