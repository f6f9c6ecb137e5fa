#!/usr/bin/python3
"""Tables of the mechanism probes (docs/probes.md) of a finished sweep, per point over seeds.

usage: probe_summary.py SWEEP_OUT_DIR [--reference POINT] [--late K] [-o probes.md]

For each point (a subfolder with seed*/metrics.csv): the final validation loss, and of each
probe column the mean over the last K probe steps of a run (default 3, the late phase of
training), as mean +- std over seeds. Then, over all runs, the Spearman rank correlation between
the late sharpness (and the late Adam-preconditioned sharpness) and the final validation loss,
and per point the paired (same seed) difference to the reference point of the late sharpness.
Standard library only.
"""

import argparse
import math
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scalevec_metrics as sm  # noqa: E402

COLUMNS = [
    ("probe.sharpness", "sharpness"),
    ("probe.hessian_min", "Hessian min"),
    ("probe.adam_sharpness", "Adam sharpness (38)"),
    ("probe.pre_attn.gamma_norm", "pre-attn norm(gamma)"),
    ("probe.pre_attn.balance", "pre-attn balance"),
    ("probe.pre_ffn.balance", "pre-FFN balance"),
    ("probe.final.balance", "final balance"),
    ("probe.pre_attn.w_norm", "pre-attn norm(W)"),
    ("probe.qk.gamma_norm", "QK norm(gamma)"),
    ("probe.branch_out.gamma_norm", "branch-out norm(gamma)"),
]


def late_mean(series, k):
    vals = [v for _, v in series if not math.isnan(v)]
    return statistics.fmean(vals[-k:]) if vals else None


def ranks(values):
    order = sorted(range(len(values)), key=lambda i: values[i])
    r = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for t in range(i, j + 1):
            r[order[t]] = (i + j) / 2.0 + 1
        i = j + 1
    return r


def spearman(x, y):
    if len(x) < 3:
        return None
    rx, ry = ranks(x), ranks(y)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    num = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    den = math.sqrt(sum((a - mx) ** 2 for a in rx) * sum((b - my) ** 2 for b in ry))
    return num / den if den else None


def fmt(mean, std, n, digits=4):
    if mean is None:
        return "-"
    return f"{mean:.{digits}g} ± {std:.2g}" if n > 1 else f"{mean:.{digits}g}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("sweep_dir")
    p.add_argument("--reference", default=None, help="point for paired differences (default: first)")
    p.add_argument("--late", type=int, default=3, help="probe steps averaged at the end (default 3)")
    p.add_argument("-o", "--output", default=None, help="also write the tables to this file")
    a = p.parse_args(argv)

    points = {}
    for point in sorted(os.listdir(a.sweep_dir)):
        pdir = os.path.join(a.sweep_dir, point)
        if not os.path.isdir(pdir):
            continue
        runs = {}
        for seed in sorted(os.listdir(pdir)):
            rdir = os.path.join(pdir, seed)
            if seed.startswith("seed") and sm.has_metrics(rdir):
                m = sm.read_metrics(rdir)
                row = {"val": sm.last_value(m.get("val_loss", []))}
                for col, _ in COLUMNS:
                    row[col] = late_mean(m.get(col, []), a.late)
                runs[seed] = row
        if runs:
            points[point] = runs
    if not points:
        raise SystemExit(f"probe_summary: no runs with metrics.csv under {a.sweep_dir}")
    ref = a.reference or next(iter(points))
    present = [(c, n) for c, n in COLUMNS if any(r[c] is not None for rs in points.values() for r in rs.values())]

    lines = [f"Probes of `{a.sweep_dir}`: mean of the last {a.late} probe steps per run, then mean ± std over seeds.", ""]
    lines.append("| point | seeds | final val loss | " + " | ".join(n for _, n in present) + " |")
    lines.append("|---|---|---|" + "---|" * len(present))
    for point, runs in points.items():
        cells = [point, str(len(runs)), fmt(*sm.mean_std([r["val"] for r in runs.values()]))]
        for col, _ in present:
            cells.append(fmt(*sm.mean_std([r[col] for r in runs.values()])))
        lines.append("| " + " | ".join(cells) + " |")

    lines += ["", f"Paired (same seed) differences to `{ref}` of the late values:", ""]
    lines.append("| point | Δ final val loss | Δ sharpness | Δ Adam sharpness |")
    lines.append("|---|---|---|---|")
    for point, runs in points.items():
        if point == ref:
            continue
        cells = [point]
        for col in ("val", "probe.sharpness", "probe.adam_sharpness"):
            d = [runs[s][col] - points[ref][s][col] for s in runs
                 if s in points[ref] and runs[s][col] is not None and points[ref][s][col] is not None]
            cells.append(fmt(*sm.mean_std(d)))
        lines.append("| " + " | ".join(cells) + " |")

    all_runs = [r for rs in points.values() for r in rs.values() if r["val"] is not None]
    lines += [""]
    for col, name in (("probe.sharpness", "sharpness"), ("probe.adam_sharpness", "Adam sharpness")):
        pairs = [(r[col], r["val"]) for r in all_runs if r[col] is not None]
        rho = spearman([x for x, _ in pairs], [y for _, y in pairs])
        lines.append(f"Spearman rank correlation over {len(pairs)} runs, late {name} vs final val loss: "
                     + ("-" if rho is None else f"{rho:+.2f}"))
    text = "\n".join(lines) + "\n"
    print(text, end="")
    if a.output:
        with open(a.output, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
