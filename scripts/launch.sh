#!/usr/bin/env bash
# Starts N local ranks of a command with torchrun's variables (RANK, WORLD_SIZE, LOCAL_RANK,
# MASTER_ADDR, MASTER_PORT); prefixes their output; if any rank fails, stops the rest and fails.
#
#   scripts/launch.sh --nproc N [--nnodes M --node-rank K --master-addr A --master-port P] -- cmd args...
#
# Under SLURM (one launch.sh per node, e.g. `srun --ntasks-per-node=1 scripts/launch.sh ...`)
# --nnodes/--node-rank/--master-addr default to SLURM_NNODES, SLURM_NODEID and the first host
# of SLURM_JOB_NODELIST.
set -euo pipefail

usage() {
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

nproc=""
nnodes="${SLURM_NNODES:-1}"
node_rank="${SLURM_NODEID:-0}"
master_addr=""
master_port="${MASTER_PORT:-29500}"
if [[ -n "${SLURM_JOB_NODELIST:-}" ]] && command -v scontrol >/dev/null 2>&1; then
  master_addr="$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)"
fi

while [[ $# -gt 0 ]]; do
  case "$1" in
    --nproc) nproc="${2:?}"; shift 2 ;;
    --nnodes) nnodes="${2:?}"; shift 2 ;;
    --node-rank) node_rank="${2:?}"; shift 2 ;;
    --master-addr) master_addr="${2:?}"; shift 2 ;;
    --master-port) master_port="${2:?}"; shift 2 ;;
    --) shift; break ;;
    -h|--help) usage ;;
    *) echo "launch.sh: unknown argument '$1'" >&2; usage ;;
  esac
done
[[ $# -gt 0 ]] || { echo "launch.sh: no command given after --" >&2; usage; }
is_int() { [[ "$1" =~ ^[0-9]+$ ]]; }
for v in nproc nnodes node_rank master_port; do
  is_int "${!v}" || { echo "launch.sh: --${v//_/-} must be a non-negative integer" >&2; exit 2; }
done
((nproc >= 1 && nnodes >= 1)) || { echo "launch.sh: --nproc and --nnodes must be >= 1" >&2; exit 2; }
((node_rank < nnodes)) || { echo "launch.sh: --node-rank must be < --nnodes" >&2; exit 2; }
if [[ -z "$master_addr" ]]; then
  ((nnodes == 1)) || { echo "launch.sh: --master-addr is required with several nodes" >&2; exit 2; }
  master_addr=127.0.0.1
fi
world_size=$((nproc * nnodes))

# Job control gives every rank its own process group, so a failure can stop a rank's children too.
set -m
pids=()
for ((local_rank = 0; local_rank < nproc; local_rank++)); do
  rank=$((node_rank * nproc + local_rank))
  RANK=$rank WORLD_SIZE=$world_size LOCAL_RANK=$local_rank LOCAL_WORLD_SIZE=$nproc \
    MASTER_ADDR=$master_addr MASTER_PORT=$master_port \
    "$@" > >(trap "" INT TERM; exec sed -u "s/^/[rank$rank] /") 2>&1 &
  pids+=($!)
done
set +m  # groups are set; no job-status chatter from here on

stop_all() {
  for pid in "${pids[@]}"; do
    [[ "$pid" == 0 ]] || kill -TERM -- "-$pid" 2>/dev/null || true
  done
}
# On INT/TERM: pass TERM to every rank and keep waiting, so that they save before we return 130.
interrupted=0
trap 'interrupted=1; stop_all' INT TERM

# Poll rather than `wait -n`: the output filters are process substitutions, which wait -n
# would also report on some bash versions.
remaining=$nproc
status=0
while ((remaining > 0)); do
  for i in "${!pids[@]}"; do
    pid=${pids[$i]}
    [[ "$pid" != 0 ]] || continue
    kill -0 "$pid" 2>/dev/null && continue
    rc=0
    wait "$pid" || rc=$?
    pids[$i]=0
    remaining=$((remaining - 1))
    if ((rc != 0 && status == 0 && interrupted == 0)); then
      status=$rc
      echo "launch.sh: rank $((node_rank * nproc + i)) exited with status $rc; stopping the others" >&2
      stop_all
    fi
  done
  ((remaining == 0)) || sleep 0.1
done
((interrupted == 0)) || exit 130
exit "$status"
