#!/usr/bin/env python3
"""Step time of several settings of one config, measured in alternation so that machine drift
(other load, clocks, caches) hits every setting alike; prints the median of the per-run medians.

  scripts/bench_compare.py --config configs/tiny.yaml --rounds 5 \\
      standard:model.norm.variant=standard unified:model.norm.variant=unified

Each NAME:key=value[,key=value...] is one setting (`--set` overrides of `scalevec bench`).
"""
import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def parse_setting(text):
    name, _, sets = text.partition(":")
    if not name or not sets:
        raise argparse.ArgumentTypeError(f"expected NAME:key=value[,key=value], got '{text}'")
    return name, [s for s in sets.split(",") if s]


def run_bench(binary, config, sets, extra):
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        cmd = [binary, "bench", "--config", config, "--json", out.name]
        for s in sets + extra:
            cmd += ["--set", s]
        done = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if done.returncode != 0:
            sys.exit(f"bench_compare: {' '.join(cmd)} failed:\n{done.stderr}")
        return json.loads(Path(out.name).read_text())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("settings", nargs="+", type=parse_setting)
    ap.add_argument("--config", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--bin", default="build/scalevec")
    ap.add_argument("--set", action="append", default=[], help="applied to every setting")
    args = ap.parse_args()

    per_run = {name: [] for name, _ in args.settings}
    for r in range(args.rounds):
        for name, sets in args.settings:
            result = run_bench(args.bin, args.config, sets, args.set)
            per_run[name].append(result["ms_per_step_median"])
            print(f"round {r + 1}/{args.rounds} {name}: {result['ms_per_step_median']:.2f} ms/step "
                  f"({result['device']})", flush=True)
    ref_name = args.settings[0][0]
    ref = statistics.median(per_run[ref_name])
    print(f"\n{'setting':<16} {'median ms/step':>15} {'runs (ms)':<40} vs {ref_name}")
    for name, _ in args.settings:
        med = statistics.median(per_run[name])
        runs = " ".join(f"{v:.1f}" for v in per_run[name])
        print(f"{name:<16} {med:>15.2f} {runs:<40} {med / ref:.3f}x")


if __name__ == "__main__":
    main()
