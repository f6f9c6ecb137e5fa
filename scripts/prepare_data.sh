#!/usr/bin/env bash
# Exports the KJV Bible (Debian package bible-kjv) to data/kjv/kjv.txt, then trains the tokenizer
# and writes the train/val shards with `scalevec prepare-data`.
# usage: scripts/prepare_data.sh [config.yaml]   (default: configs/tiny.yaml)
set -euo pipefail

config="${1:-configs/tiny.yaml}"
cd "$(dirname "$0")/.."
scalevec="${SCALEVEC_BIN:-build/scalevec}"

if ! command -v bible >/dev/null 2>&1; then
  echo "prepare_data.sh: 'bible' not found; install it with: apt-get install bible-kjv" >&2
  exit 1
fi
if [ ! -x "$scalevec" ]; then
  echo "prepare_data.sh: $scalevec not found; build it first (cmake --build build --target scalevec)" >&2
  exit 1
fi

mkdir -p data/kjv
# One verse per line, each starting with its reference ("Ge1:1 In the beginning ...").
bible -f 'gen1:1-rev22:21' > data/kjv/kjv.txt.tmp
if [ ! -s data/kjv/kjv.txt.tmp ]; then
  echo "prepare_data.sh: bible printed nothing" >&2
  exit 1
fi
mv data/kjv/kjv.txt.tmp data/kjv/kjv.txt
echo "exported $(wc -l < data/kjv/kjv.txt) verses to data/kjv/kjv.txt"

"$scalevec" prepare-data --config "$config"
