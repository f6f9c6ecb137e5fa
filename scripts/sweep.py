#!/usr/bin/python3
"""Runs an ablation sweep (points x seeds) with `scalevec train`, then summarises it.

usage: sweep.py SWEEP.yaml [--jobs N] [--dry-run] [--summarize-only] [--binary build/scalevec]
                [--out DIR]

Run it from the repository root: the base config, the binary and the data paths are taken
relative to the current directory, as `scalevec train` takes them.

Sweep file:
    base: configs/tiny.yaml           # config every run starts from
    out_dir: runs/sweeps/<name>       # one folder per point, one per seed below it
    seeds: [1, 2, 3]
    set: {optim.lr: 3e-3}             # overrides common to all points (nested maps allowed)
    reference: standard               # optional: the point the others are compared with
                                      # (default: the first); for a grid also {key: value}
    points:                           # either named points ...
      - {name: standard, set: {model.norm.variant: standard}}
    grid:                             # ... or the cartesian product of these values
      optim.name: [adamw, muon]

Every point x seed runs
    scalevec train --config BASE --set train.threads=T --set <set> --set <point set>
                   --set train.seed=S --set train.out_dir=OUT/<point>/seed<S>
with T = max(1, cores // jobs), its output in OUT/<point>/seed<S>/stdout.log. A run whose
metrics.csv reaches train.steps with a validation loss there is skipped; one with checkpoints
is continued with --resume. Failed runs are reported, the sweep goes on, and the exit status
is 1 if any failed. Then OUT/summary.csv, OUT/summary.md, OUT/val_loss.png and
OUT/train_loss.png are written (--summarize-only: only that, from the runs already there).
"""

import argparse
import concurrent.futures
import csv
import glob
import itertools
import json
import math
import os
import shlex
import signal
import subprocess
import sys
import threading
import time

import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scalevec_metrics as sm  # noqa: E402

TRAIN_STEPS_DEFAULT = 1000  # TrainConfig::steps in include/scalevec/config.h
TRAIN_LOSS_EMA = 0.9
# Two-sided 95% critical values of Student's t by degrees of freedom (larger df: 1.96).
T_CRIT_95 = {1: 12.71, 2: 4.30, 3: 3.18, 4: 2.78, 5: 2.57, 6: 2.45, 7: 2.36, 8: 2.31, 9: 2.26,
             10: 2.23, 12: 2.18, 15: 2.13, 20: 2.09, 30: 2.04}


class SweepError(Exception):
    pass


# ---------------------------------------------------------------- config handling

def flatten(node, prefix="", out=None):
    """Nested mappings to dotted keys, as the C++ loader does (`defaults` is handled apart)."""
    out = {} if out is None else out
    if isinstance(node, dict):
        for k, v in node.items():
            if not prefix and k == "defaults":
                continue
            flatten(v, f"{prefix}.{k}" if prefix else str(k), out)
    else:
        for k in [k for k in out if k.startswith(prefix + ".")]:
            del out[k]
        out[prefix] = node
    return out


def load_config_flat(path, stack=()):
    """A config file with its `defaults:` includes (relative to the including file), flattened."""
    real = os.path.realpath(path)
    if real in stack:
        raise SweepError(f"config include cycle: {path}")
    with open(path) as f:
        root = yaml.safe_load(f) or {}
    out = {}
    defaults = root.get("defaults") if isinstance(root, dict) else None
    for inc in ([defaults] if isinstance(defaults, str) else defaults or []):
        inc_path = inc if os.path.isabs(inc) else os.path.join(os.path.dirname(path), inc)
        out.update(load_config_flat(inc_path, stack + (real,)))
    return flatten(root, "", out)


def yaml_scalar(value):
    """A Python value as the text of a `--set key=value` (parsed as YAML by scalevec)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(yaml_scalar(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    text = str(value)
    if isinstance(value, str) and yaml.safe_load(text) != value:
        return json.dumps(value)  # would not read back as the same string
    return text


def set_args(overrides):
    args = []
    for k, v in overrides.items():
        args += ["--set", f"{k}={yaml_scalar(v)}"]
    return args


# ---------------------------------------------------------------- sweep file

def safe_name(text):
    bad = '/\\ \t\n:*?"<>|'
    return "".join("-" if c in bad else c for c in str(text))


def grid_labels(keys):
    """The shortest dotted suffix of each key that no other key ends with."""
    labels = {}
    for k in keys:
        parts = k.split(".")
        for n in range(1, len(parts) + 1):
            suffix = ".".join(parts[-n:])
            if not any(o != k and (o == suffix or o.endswith("." + suffix)) for o in keys):
                break
        labels[k] = suffix
    return labels


def load_sweep(path, out_override=None):
    with open(path) as f:
        spec = yaml.safe_load(f) or {}
    if not isinstance(spec, dict):
        raise SweepError(f"{path}: the top level must be a mapping")
    known = {"base", "out_dir", "seeds", "set", "grid", "points", "reference", "description"}
    unknown = sorted(set(spec) - known)
    if unknown:
        raise SweepError(f"{path}: unknown keys {unknown} (known: {sorted(known)})")
    for key in ("base", "seeds"):
        if key not in spec:
            raise SweepError(f"{path}: '{key}' is required")
    if ("grid" in spec) == ("points" in spec):
        raise SweepError(f"{path}: give exactly one of 'grid' and 'points'")
    name = os.path.splitext(os.path.basename(path))[0]
    sweep = {
        "path": path,
        "name": name,
        "base": spec["base"],
        "out": out_override or spec.get("out_dir") or os.path.join("runs", "sweeps", name),
        "seeds": [int(s) for s in spec["seeds"]],
        "set": flatten(spec.get("set") or {}),
        "description": spec.get("description", ""),
    }
    points = []
    if "grid" in spec:
        grid = {k: (v if isinstance(v, list) else [v]) for k, v in flatten(spec["grid"]).items()}
        labels = grid_labels(list(grid))
        values = [v for vs in grid.values() for v in vs]
        # Names from the values alone ("adamw_cosine_standard") when that is unambiguous.
        by_value = all(isinstance(v, str) for v in values) and len(set(values)) == len(values)
        for combo in itertools.product(*grid.values()):
            over = dict(zip(grid, combo))
            pname = "_".join(yaml_scalar(v) if by_value else f"{labels[k]}={yaml_scalar(v)}"
                             for k, v in over.items())
            points.append({"name": safe_name(pname), "set": over})
    else:
        for i, p in enumerate(spec["points"]):
            if not isinstance(p, dict) or "name" not in p:
                raise SweepError(f"{path}: points[{i}] needs a 'name' (and a 'set' mapping)")
            points.append({"name": safe_name(p["name"]), "set": flatten(p.get("set") or {})})
    if not points:
        raise SweepError(f"{path}: no points")
    names = [p["name"] for p in points]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise SweepError(f"{path}: duplicate point names {dup}")
    ref = spec.get("reference")
    if ref is None:
        sweep["reference"] = names[0]
    elif isinstance(ref, dict):
        want = {k: yaml_scalar(v) for k, v in flatten(ref).items()}
        match = [p["name"] for p in points if all(yaml_scalar(p["set"].get(k)) == v for k, v in want.items())]
        if len(match) != 1:
            raise SweepError(f"{path}: reference {ref} matches {len(match)} points, not one")
        sweep["reference"] = match[0]
    elif safe_name(ref) in names:
        sweep["reference"] = safe_name(ref)
    else:
        raise SweepError(f"{path}: reference '{ref}' is not a point (points: {names})")
    sweep["points"] = points
    return sweep


def plan_runs(sweep, binary, jobs, dry_run):
    """One entry per point x seed with its command and what to do with it."""
    try:
        base_flat = load_config_flat(sweep["base"])
    except FileNotFoundError:
        if not dry_run:
            raise SweepError(f"base config not found: {sweep['base']}")
        print(f"warning: base config {sweep['base']} not found; assuming train.steps from overrides "
              f"or {TRAIN_STEPS_DEFAULT}", file=sys.stderr)
        base_flat = {}
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cores // jobs)
    runs = []
    for point in sweep["points"]:
        merged = {**base_flat, **sweep["set"], **point["set"]}
        steps = int(merged.get("train.steps", TRAIN_STEPS_DEFAULT))
        for seed in sweep["seeds"]:
            run_dir = os.path.join(sweep["out"], point["name"], f"seed{seed}")
            cmd = [binary, "train", "--config", sweep["base"], "--set", f"train.threads={threads}"]
            cmd += set_args(sweep["set"]) + set_args(point["set"])
            cmd += ["--set", f"train.seed={seed}", "--set", f"train.out_dir={run_dir}"]
            if sm.is_finished(run_dir, steps):
                action = "skip"
            elif glob.glob(os.path.join(run_dir, "ckpt_*.pt")):
                action = "resume"
                cmd.append("--resume")
            else:
                action = "run"
            runs.append({"point": point["name"], "seed": seed, "dir": run_dir, "steps": steps,
                         "cmd": cmd, "action": action})
    return runs


# ---------------------------------------------------------------- running

def execute(runs, jobs):
    """Runs the runs that are not finished, `jobs` at a time. Returns the failed ones."""
    todo = [r for r in runs if r["action"] != "skip"]
    lock = threading.Lock()
    done = [0]
    failed = []

    def say(text):
        with lock:
            print(text, flush=True)

    def one(r):
        tag = f"{r['point']}/seed{r['seed']}"
        os.makedirs(r["dir"], exist_ok=True)
        log_path = os.path.join(r["dir"], "stdout.log")
        say(f"start  {tag} ({r['action']})")
        t0 = time.time()
        with open(log_path, "a") as log:
            log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} $ {shlex.join(r['cmd'])}\n")
            log.flush()
            try:
                rc = subprocess.run(r["cmd"], stdout=log, stderr=subprocess.STDOUT).returncode
            except OSError as e:
                log.write(f"sweep.py: cannot start: {e}\n")
                rc = 127
        secs = time.time() - t0
        problem = None
        if rc != 0:
            problem = f"exit status {rc}"
        elif not sm.is_finished(r["dir"], r["steps"]):
            problem = f"exited 0 but metrics.csv does not reach step {r['steps']} with a val_loss"
        with lock:
            done[0] += 1
            k = done[0]
        if problem:
            failed.append(r)
            tail = ""
            try:
                with open(log_path, errors="replace") as f:
                    tail = "".join(f.readlines()[-5:])
            except OSError:
                pass
            say(f"FAILED [{k}/{len(todo)}] {tag} after {secs:.1f}s: {problem}; see {log_path}\n"
                + "".join("    | " + line for line in tail.splitlines(True)))
        else:
            s = sm.summarize_run(r["dir"])
            say(f"done   [{k}/{len(todo)}] {tag} in {secs:.1f}s: val_loss {fmt(s['final_val_loss'])}")

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [pool.submit(one, r) for r in todo]
        try:
            for fut in concurrent.futures.as_completed(futures):
                fut.result()
        except KeyboardInterrupt:
            for fut in futures:
                fut.cancel()
            say("interrupted: running trainers got the signal and save a checkpoint; "
                "run the sweep again to continue")
            raise
    return failed


# ---------------------------------------------------------------- summary

def fmt(v, digits=4):
    return "" if v is None else f"{v:.{digits}f}"


def pm(mean, std, n):
    if mean is None:
        return "—"
    return f"{mean:.4f} ± {std:.4f}" if n > 1 else f"{mean:.4f}"


def compare(vals, ref_vals):
    """Gap of the means, gap / pooled std, pooled two-sample t and a short note."""
    m1, s1, n1 = sm.mean_std(vals)
    m0, s0, n0 = sm.mean_std(ref_vals)
    if m1 is None or m0 is None:
        return None, None, "no data"
    gap = m1 - m0
    if n1 < 2 or n0 < 2:
        return gap, None, "n < 2: no noise estimate"
    pooled = math.sqrt(((n1 - 1) * s1 ** 2 + (n0 - 1) * s0 ** 2) / (n1 + n0 - 2))
    if pooled == 0:
        return gap, None, "no spread over seeds" if gap == 0 else "seeds identical: cannot judge"
    t = gap / (pooled * math.sqrt(1 / n1 + 1 / n0))
    df = n1 + n0 - 2
    crit = 1.96 if df > 30 else T_CRIT_95[max(d for d in T_CRIT_95 if d <= df)]
    if abs(t) >= crit:
        verdict = "likely real"
    elif abs(t) >= 1:
        verdict = "suggestive, within noise"
    else:
        verdict = "within seed noise"
    note = f"t={t:+.1f} (95%: ±{crit}): {verdict}"
    return gap, gap / pooled, note


def compare_paired(by_seed, ref_by_seed):
    """Seed-paired gap: the same seed gives both points the same data order and the same draws for
    every shared weight, so per-seed differences cancel most of the seed noise."""
    seeds = sorted(s for s in set(by_seed) & set(ref_by_seed)
                   if by_seed[s] is not None and ref_by_seed[s] is not None)
    diffs = [by_seed[s] - ref_by_seed[s] for s in seeds]
    if not diffs:
        return "—"
    m, sd, n = sm.mean_std(diffs)
    if n < 2:
        return f"{m:+.4f} (1 seed)"
    if sd == 0:
        return f"{m:+.4f} (identical gaps)"
    t = m / (sd / math.sqrt(n))
    crit = T_CRIT_95[max(d for d in T_CRIT_95 if d <= n - 1)] if n - 1 <= 30 else 1.96
    verdict = "likely real" if abs(t) >= crit else ("suggestive" if abs(t) >= 1 else "within noise")
    return f"{m:+.4f} ± {sd:.4f}, t={t:+.1f} (95%: ±{crit}): {verdict}"


def summarize(sweep, runs):
    out = sweep["out"]
    os.makedirs(out, exist_ok=True)
    rows = []
    for r in runs:
        if not sm.has_metrics(r["dir"]):
            continue
        s = sm.summarize_run(r["dir"])
        rows.append({"point": r["point"], "seed": r["seed"], **s,
                     "finished": sm.is_finished(r["dir"], r["steps"])})
    fields = ["point", "seed", "final_val_loss", "min_val_loss", "final_train_loss", "steps", "tokens",
              "finished"]
    with open(os.path.join(out, "summary.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore", lineterminator="\n")
        w.writeheader()
        for row in rows:
            w.writerow({k: ("" if row[k] is None else row[k]) for k in fields})

    by_point = {p["name"]: [row for row in rows if row["point"] == p["name"]] for p in sweep["points"]}
    ref = sweep["reference"]

    def finished(prow, key):
        return [row[key] for row in prow if row["finished"]]

    common = ", ".join(f"`{k}={yaml_scalar(v)}`" for k, v in sweep["set"].items()) or "none"
    lines = [
        f"# Sweep `{sweep['name']}`",
        "",
        *([sweep["description"].strip(), ""] if sweep["description"] else []),
        f"- sweep file: `{sweep['path']}`; base config: `{sweep['base']}`; runs in `{out}`",
        f"- seeds: {sweep['seeds']}; overrides common to all points: {common}",
        f"- reference point: `{ref}`",
        f"- written {time.strftime('%Y-%m-%d %H:%M:%S')}",
        "",
        "| point | n | final val loss | min val loss | final train loss | Δ final vs ref (Δ/σ) | "
        "Δ min vs ref (Δ/σ) | note (final val loss) | paired Δ final (same seed) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in sweep["points"]:
        prow = by_point[p["name"]]
        finals, mins, trains = (finished(prow, k) for k in ("final_val_loss", "min_val_loss", "final_train_loss"))
        mf, sf, n = sm.mean_std(finals)
        mn, sn, nn = sm.mean_std(mins)
        mt, st, nt = sm.mean_std(trains)
        if p["name"] == ref:
            dfinal, dmin, note, paired = "reference", "reference", "", ""
        else:
            gap, eff, note = compare(finals, finished(by_point[ref], "final_val_loss"))
            gmin, emin, _ = compare(mins, finished(by_point[ref], "min_val_loss"))
            dfinal = "—" if gap is None else f"{gap:+.4f}" + ("" if eff is None else f" ({eff:+.1f}σ)")
            dmin = "—" if gmin is None else f"{gmin:+.4f}" + ("" if emin is None else f" ({emin:+.1f}σ)")
            paired = compare_paired({row["seed"]: row["final_val_loss"] for row in prow if row["finished"]},
                                    {row["seed"]: row["final_val_loss"] for row in by_point[ref] if row["finished"]})
        unfinished = len(prow) - len(finals)
        ncell = f"{n}" + (f" (+{unfinished} unfinished)" if unfinished else "")
        lines.append(f"| `{p['name']}` | {ncell} | {pm(mf, sf, n)} | {pm(mn, sn, nn)} | {pm(mt, st, nt)} | "
                     f"{dfinal} | {dmin} | {note} | {paired} |")
    lines += [
        "",
        "Mean ± sample std over finished seeds. Δ: point mean minus reference mean (negative is "
        "better); σ: pooled std over seeds of the two points; t: pooled two-sample t statistic, "
        "compared with the two-sided 95% critical value for its degrees of freedom (2.78 for 3 vs 3 "
        "seeds). Paired Δ: mean ± sample std over seeds of (point − reference) at the same seed (same "
        "data order, same initial shared weights), paired t against the 95% value for n−1 degrees of "
        "freedom (4.30 for 3 seeds). A rough guide only: few seeds, no correction for the number of "
        "comparisons.",
        "",
        "## Points",
        "",
        "| point | overrides |",
        "|---|---|",
    ]
    for p in sweep["points"]:
        over = ", ".join(f"`{k}={yaml_scalar(v)}`" for k, v in p["set"].items()) or "(base)"
        lines.append(f"| `{p['name']}` | {over} |")
    missing = [f"{r['point']}/seed{r['seed']}" for r in runs if not sm.is_finished(r["dir"], r["steps"])]
    if missing:
        lines += ["", f"## Not finished ({len(missing)})", "", *[f"- `{m}`" for m in missing]]
    lines += ["", "Curves: `val_loss.png`, `train_loss.png` (EMA "
              f"{TRAIN_LOSS_EMA}); mean over seeds, band: min-max over seeds.", ""]
    with open(os.path.join(out, "summary.md"), "w") as f:
        f.write("\n".join(lines))

    groups = [(p["name"], [r["dir"] for r in runs if r["point"] == p["name"]]) for p in sweep["points"]]
    title = f"sweep {sweep['name']}"
    sm.plot_groups(groups, "val_loss", os.path.join(out, "val_loss.png"), title=title)
    sm.plot_groups(groups, "train_loss", os.path.join(out, "train_loss.png"), smooth=TRAIN_LOSS_EMA, title=title)
    print(f"summary: {out}/summary.csv, {out}/summary.md, {out}/val_loss.png, {out}/train_loss.png "
          f"({len(rows)} runs with metrics)")


# ---------------------------------------------------------------- main

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("sweep", metavar="SWEEP.yaml")
    p.add_argument("--jobs", type=int, default=1, help="runs at a time (default 1)")
    p.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    p.add_argument("--summarize-only", action="store_true", help="only rewrite the summary and plots")
    p.add_argument("--binary", default="build/scalevec", help="scalevec executable (default build/scalevec)")
    p.add_argument("--out", help="output folder (default: out_dir of the sweep file)")
    a = p.parse_args(argv)
    if a.jobs < 1:
        p.error("--jobs must be >= 1")
    try:
        sweep = load_sweep(a.sweep, a.out)
        runs = plan_runs(sweep, a.binary, a.jobs, a.dry_run or a.summarize_only)
    except (SweepError, OSError, yaml.YAMLError) as e:
        print(f"sweep.py: {e}", file=sys.stderr)
        return 2
    counts = {k: sum(r["action"] == k for r in runs) for k in ("run", "resume", "skip")}
    print(f"sweep {sweep['name']}: {len(sweep['points'])} points x {len(sweep['seeds'])} seeds = {len(runs)} runs "
          f"in {sweep['out']}: {counts['run']} to run, {counts['resume']} to resume, "
          f"{counts['skip']} skipped (finished)", flush=True)
    for r in runs:
        if r["action"] == "skip":
            print(f"skip   {r['point']}/seed{r['seed']}: finished ({r['steps']} steps)")
    if a.dry_run:
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)  # `sweep.py --dry-run | head` ends quietly
        for r in runs:
            if r["action"] != "skip":
                print("$ " + shlex.join(r["cmd"]))
        return 0
    failed = []
    if not a.summarize_only:
        if counts["run"] + counts["resume"] and not os.access(a.binary, os.X_OK):
            print(f"sweep.py: {a.binary} is not an executable; build it or pass --binary", file=sys.stderr)
            return 2
        try:
            failed = execute(runs, a.jobs)
        except KeyboardInterrupt:
            return 130
    summarize(sweep, runs)
    if failed:
        print(f"{len(failed)} of {len(runs)} runs FAILED: "
              + ", ".join(f"{r['point']}/seed{r['seed']}" for r in failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
