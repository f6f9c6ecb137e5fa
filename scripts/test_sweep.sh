#!/usr/bin/env bash
# End-to-end check of scripts/sweep.py and scripts/plot_curves.py with a micro sweep
# (2 points x 1 seed, 4 steps of a 1-layer d_model=32 model; about a minute on 2 CPU cores).
#
# Prerequisites (run from anywhere; the script cd's to the repository root):
#   - the trainer is built:   cmake --build build --target scalevec scalevec-tokenizer
#     (or SCALEVEC_BIN=/path/to/scalevec)
#   - the data is prepared:   bash scripts/prepare_data.sh      (data/kjv/{train,val}.bin, tokenizer)
#   - a base config exists:   configs/tiny.yaml (or SWEEP_TEST_BASE=other.yaml); the model is
#     shrunk by overrides, so only its data paths and vocab size matter
#   - /usr/bin/python3 with matplotlib and yaml (Debian: python3-matplotlib python3-yaml)
# Exit status 0: all checks passed. Outputs go to a temporary folder (kept on failure,
# or always with SWEEP_TEST_KEEP=1).
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${SCALEVEC_BIN:-build/scalevec}"
base="${SWEEP_TEST_BASE:-configs/tiny.yaml}"
py="${PYTHON:-/usr/bin/python3}"
needs=("$bin" "$base")
# With SWEEP_TEST_BASE the base config names its own data; the default base reads data/kjv.
[ -n "${SWEEP_TEST_BASE:-}" ] || needs+=(data/kjv/train.bin data/kjv/val.bin)
for need in "${needs[@]}"; do
  if [ ! -e "$need" ]; then
    echo "test_sweep.sh: missing prerequisite $need (see the top of this script)" >&2
    exit 2
  fi
done

tmp="$(mktemp -d "${TMPDIR:-/tmp}/sweep-test.XXXXXX")"
ok=0
cleanup() { if [ "$ok" = 1 ] && [ "${SWEEP_TEST_KEEP:-0}" != 1 ]; then rm -rf "$tmp"; else echo "outputs kept in $tmp"; fi; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
pass() { echo "ok: $*"; }

write_sweep() {  # $1: file, $2: train.steps
  cat > "$1" <<EOF
base: $base
out_dir: $tmp/unused
seeds: [1]
set:
  train.steps: $2
  train.device: cpu
  model.d_model: 32
  model.n_layers: 1
  model.n_heads: 2
  train.seq_len: 16
  train.batch_size: 2
  train.grad_accum: 1
  train.eval_every: 2
  train.eval_batches: 1
  train.log_every: 1
  train.ckpt_every: 2
  train.probe_every: 2
  train.probe_iters: 3
  schedule.warmup_steps: 1
points:
  - {name: standard, set: {model.norm.variant: standard}}
  - {name: none, set: {model.norm.variant: none}}
EOF
}
sweep() { "$py" scripts/sweep.py "$@" --binary "$bin" --out "$tmp/out"; }

write_sweep "$tmp/micro.yaml" 4

# 1. --dry-run prints the commands and runs nothing.
sweep "$tmp/micro.yaml" --dry-run > "$tmp/dry.txt"
[ "$(grep -c -- "^\$ .*train --config $base .*--set train.seed=1 --set train.out_dir=$tmp/out/" "$tmp/dry.txt")" = 2 ] \
  || { cat "$tmp/dry.txt"; fail "--dry-run did not print 2 train commands"; }
[ ! -e "$tmp/out/standard" ] || fail "--dry-run created run folders"
pass "--dry-run prints 2 commands and runs nothing"

# 2. The sweep runs both points and writes the summary and plots.
sweep "$tmp/micro.yaml" > "$tmp/run1.txt" 2>&1 || { cat "$tmp/run1.txt"; fail "sweep failed"; }
grep -q "2 to run, 0 to resume, 0 skipped" "$tmp/run1.txt" || { cat "$tmp/run1.txt"; fail "first run: unexpected plan"; }
for f in summary.csv summary.md val_loss.png train_loss.png standard/seed1/metrics.csv standard/seed1/stdout.log \
         none/seed1/metrics.csv; do
  [ -s "$tmp/out/$f" ] || fail "missing or empty $f"
done
[ "$(head -1 "$tmp/out/summary.csv")" = "point,seed,final_val_loss,min_val_loss,final_train_loss,steps,tokens,finished" ] \
  || fail "summary.csv header: $(head -1 "$tmp/out/summary.csv")"
[ "$(grep -c '^standard,1,[0-9.]*,[0-9.]*,[0-9.]*,4,128,True$' "$tmp/out/summary.csv")" = 1 ] \
  || { cat "$tmp/out/summary.csv"; fail "summary.csv row for standard/seed1"; }
grep -q '^| `none` | 1 |' "$tmp/out/summary.md" || { cat "$tmp/out/summary.md"; fail "summary.md table"; }
for png in val_loss.png train_loss.png; do
  [ "$(head -c 8 "$tmp/out/$png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] || fail "$png is not a PNG"
done
pass "sweep ran 2 runs; summary.csv, summary.md, val_loss.png, train_loss.png written"

# 3. Rerunning skips the finished runs.
sweep "$tmp/micro.yaml" > "$tmp/run2.txt" 2>&1 || { cat "$tmp/run2.txt"; fail "rerun failed"; }
grep -q "0 to run, 0 to resume, 2 skipped (finished)" "$tmp/run2.txt" || { cat "$tmp/run2.txt"; fail "rerun did not skip"; }
[ "$(grep -c '^skip ' "$tmp/run2.txt")" = 2 ] || fail "rerun: expected 2 'skip' lines"
! grep -q '^start ' "$tmp/run2.txt" || fail "rerun started a run"
pass "rerun skips the 2 finished runs"

# 4. More steps: the runs continue from their checkpoints with --resume.
write_sweep "$tmp/micro6.yaml" 6
sweep "$tmp/micro6.yaml" --dry-run > "$tmp/dry6.txt"
grep -q -- "--resume$" "$tmp/dry6.txt" || fail "--dry-run with more steps: no --resume"
sweep "$tmp/micro6.yaml" > "$tmp/run3.txt" 2>&1 || { cat "$tmp/run3.txt"; fail "resumed sweep failed"; }
grep -q "0 to run, 2 to resume, 0 skipped" "$tmp/run3.txt" || { cat "$tmp/run3.txt"; fail "no resume planned"; }
grep -q "resumed from" "$tmp/out/standard/seed1/stdout.log" || fail "stdout.log does not show a resume"
grep -q '^standard,1,.*,6,192,True$' "$tmp/out/summary.csv" || { cat "$tmp/out/summary.csv"; fail "resumed run not at step 6"; }
pass "unfinished runs with checkpoints continue with --resume"

# 5. --summarize-only rewrites the summary without running anything.
rm "$tmp/out/summary.md" "$tmp/out/val_loss.png"
sweep "$tmp/micro6.yaml" --summarize-only > "$tmp/run4.txt" 2>&1 || { cat "$tmp/run4.txt"; fail "--summarize-only failed"; }
[ -s "$tmp/out/summary.md" ] && [ -s "$tmp/out/val_loss.png" ] || fail "--summarize-only did not rewrite the summary"
! grep -q '^start ' "$tmp/run4.txt" || fail "--summarize-only started a run"
pass "--summarize-only rewrites summary and plots"

# 6. A failing run is reported, the sweep goes on, and the exit status is non-zero.
cat > "$tmp/bad.yaml" <<EOF
base: $base
seeds: [1]
set: {train.steps: 4, train.device: cpu, model.d_model: 32, model.n_layers: 1, model.n_heads: 2,
      train.seq_len: 16, train.batch_size: 2, train.eval_every: 2, train.eval_batches: 1}
points:
  - {name: broken, set: {model.n_heads: 3}}
  - {name: fine, set: {}}
EOF
if "$py" scripts/sweep.py "$tmp/bad.yaml" --binary "$bin" --out "$tmp/bad" > "$tmp/bad.txt" 2>&1; then
  cat "$tmp/bad.txt"; fail "sweep with a failing run exited 0"
fi
grep -q "^FAILED .*broken/seed1" "$tmp/bad.txt" || { cat "$tmp/bad.txt"; fail "failure not reported"; }
grep -q "^done .*fine/seed1" "$tmp/bad.txt" || { cat "$tmp/bad.txt"; fail "sweep did not go on after a failure"; }
pass "a failed run is reported, the others still run, exit status non-zero"

# 7. plot_curves.py: single runs, a point folder (mean + band), several metrics.
"$py" scripts/plot_curves.py "$tmp/out/standard/seed1" "$tmp/out/none" -o "$tmp/curves.png" \
  --metric train_loss --metric val_loss --metric grad_norm --smooth 0.5 --labels standard none > /dev/null
[ -s "$tmp/curves.png" ] || fail "plot_curves.py wrote nothing"
"$py" scripts/plot_curves.py "$tmp/out/standard/seed1" -o "$tmp/scale.png" --metric scale.pre_attn.mean > /dev/null
[ -s "$tmp/scale.png" ] || fail "plot_curves.py scale metric"
pass "plot_curves.py draws runs, point folders and scale statistics"

# 8. Probe columns: plotted on a log scale (with Adam's threshold line) and summarized per point.
"$py" scripts/plot_curves.py "$tmp/out/standard" "$tmp/out/none" -o "$tmp/probes.png" --log-y \
  --metric probe.sharpness --metric probe.adam_sharpness --metric probe.pre_attn.w_norm > /dev/null
[ -s "$tmp/probes.png" ] || fail "plot_curves.py probe metrics"
"$py" scripts/probe_summary.py "$tmp/out" --reference standard --late 2 > "$tmp/probes.txt"
grep -q "^| standard | 1 | " "$tmp/probes.txt" || { cat "$tmp/probes.txt"; fail "probe_summary: no standard row"; }
grep -q "^| none | 1 | " "$tmp/probes.txt" || { cat "$tmp/probes.txt"; fail "probe_summary: no none row"; }
grep -q "Spearman rank correlation over 2 runs, late sharpness" "$tmp/probes.txt" ||
  { cat "$tmp/probes.txt"; fail "probe_summary: no correlation line"; }
pass "probe columns are plotted and summarized (probe_summary.py)"

ok=1
echo "test_sweep.sh: all checks passed"
