#!/usr/bin/env bash
# ctest entry for scripts/check_export.py: trains four small models on a tiny corpus (one per
# Hugging Face architecture, each with another norm variant), exports them, and has the
# independent PyTorch forward reproduce scalevec's logits: float64 export against float64
# logits to 1e-9, float32 to 1e-5. Then `import` + `eval --init-from` gives the same val loss,
# and a config.json with a wrong rope_theta must fail the check (the check can fail).
# usage: tests/export_check.sh BUILD_DIR     exit 77 (skipped) without Debian's python3-torch
set -euo pipefail
src="$(cd "$(dirname "$0")/.." && pwd)"
build="$(cd "${1:?usage: export_check.sh BUILD_DIR}" && pwd)"
py="${PYTHON:-/usr/bin/python3}"
"$py" -c 'import torch' 2>/dev/null || { echo "skip: $py has no torch (apt install python3-torch)"; exit 77; }
sv="$build/scalevec"
check="$py $src/scripts/check_export.py"

tmp="$(mktemp -d "${TMPDIR:-/tmp}/export-check.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
source "$src/tests/tiny_corpus.sh"
prepare_tiny_corpus "$src" "$build" "$tmp"
cat > "$tmp/small.yaml" <<YAML
defaults: $tmp/base.yaml
model: {d_model: 64, n_layers: 2, n_heads: 4, n_kv_heads: 2, max_seq_len: 64}
train: {steps: 4, batch_size: 4, seq_len: 64, eval_batches: 2, eval_every: 4, ckpt_every: 4, threads: 2}
schedule: {warmup_steps: 2}
YAML

run_case() {  # name, then --set overrides
  local name="$1"; shift
  local sets=(--set "train.out_dir=$tmp/$name/run" "$@")
  "$sv" train --config "$tmp/small.yaml" "${sets[@]}" > "$tmp/$name.train.log" 2>&1 \
    || { cat "$tmp/$name.train.log"; exit 1; }
  "$sv" eval --config "$tmp/small.yaml" "${sets[@]}" --fp64 --logits-out "$tmp/$name/l64.safetensors" \
    > /dev/null 2>> "$tmp/eval.log"
  "$sv" eval --config "$tmp/small.yaml" "${sets[@]}" --logits-out "$tmp/$name/l32.safetensors" \
    2>> "$tmp/eval.log" | grep val_loss > "$tmp/$name/val_trained"
  "$sv" export --config "$tmp/small.yaml" "${sets[@]}" --out "$tmp/$name/hf64" --dtype fp64 > /dev/null 2>&1
  "$sv" export --config "$tmp/small.yaml" "${sets[@]}" --out "$tmp/$name/hf32" > /dev/null 2>&1
  echo "== $name"
  $check "$tmp/$name/hf64" "$tmp/$name/l64.safetensors" --tol 1e-9
  $check "$tmp/$name/hf32" "$tmp/$name/l32.safetensors" --tol 1e-5 --dtype float32
}

run_case llama-relocated --set model.qk_norm=false --set model.norm.variant=relocated
run_case qwen3-unified --set model.norm.variant=unified --set model.norm.placement_form=dp \
  --set model.norm.magnitude=per_head --set model.norm.magnitude_space=exp
run_case mixtral-branch --set model.qk_norm=false --set model.norm.variant=branch \
  --set model.moe.enabled=true --set model.moe.num_experts=4 --set model.moe.top_k=2
run_case qwen3moe-magdir --set model.norm.variant=magdir --set model.moe.enabled=true \
  --set model.moe.num_experts=4 --set model.moe.top_k=2 --set model.tie_embeddings=false

# import + eval --init-from: the exported float32 folder evaluates to the trained model's loss.
"$sv" import --from "$tmp/qwen3-unified/hf32" --config "$tmp/small.yaml" --out "$tmp/ft.yaml" > /dev/null 2>&1
"$sv" eval --config "$tmp/ft.yaml" --init-from "$tmp/qwen3-unified/hf32" 2>> "$tmp/eval.log" \
  | grep val_loss > "$tmp/val_imported"
"$py" - "$tmp/qwen3-unified/val_trained" "$tmp/val_imported" <<'PY'
import sys
a, b = (float(open(p).read().split()[1]) for p in sys.argv[1:3])
print(f"== import: val loss trained {a:.7f}, exported+imported {b:.7f}")
sys.exit(0 if abs(a - b) <= 1e-5 * abs(a) else 1)
PY

# The check must notice a wrong RoPE base.
"$py" - "$tmp/llama-relocated/hf64/config.json" <<'PY'
import json, sys
c = json.load(open(sys.argv[1])); c["rope_theta"] = 20000.0; json.dump(c, open(sys.argv[1], "w"))
PY
if $check "$tmp/llama-relocated/hf64" "$tmp/llama-relocated/l64.safetensors" --tol 1e-9; then
  echo "the check accepted a config.json with the wrong rope_theta"; exit 1
fi
echo "export check: all passed"
