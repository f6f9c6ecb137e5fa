#!/usr/bin/env bash
# The main job: set up, export the default corpus (KJV), tokenize, and pre-train the tiny model.
# usage: bash scripts/main_job.sh [config] [--set key=value ...]
set -euo pipefail
cd "$(dirname "$0")/.."
config="${1:-configs/tiny.yaml}"
shift || true
bash scripts/setup.sh
[ -s data/kjv/train.bin ] || bash scripts/prepare_data.sh "$config"
# --resume: a rerun continues (or just reports) the earlier run instead of refusing to overwrite it.
exec build/scalevec train --config "$config" --resume "$@"
