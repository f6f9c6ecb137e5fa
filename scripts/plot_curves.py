#!/usr/bin/python3
"""Plots curves of one or many scalevec runs from their metrics.csv to a PNG.

usage: plot_curves.py RUN_DIR [RUN_DIR ...] -o out.png [--metric val_loss] [--metric grad_norm]
                      [--smooth 0.9] [--labels A B ...] [--title TEXT]

A RUN_DIR is a `train.out_dir` (it holds metrics.csv), or a folder whose subfolders are runs (a
sweep point with seed1/, seed2/, ...): those are drawn as their mean with a min-max band.
Several --metric give one panel each. Metrics: any metrics.csv column, e.g. train_loss,
val_loss, grad_norm, lr, tokens_per_s, scale.pre_attn.mean, scale.qk.max, and the probe columns
(train.probe_every: probe.sharpness, probe.adam_sharpness, probe.pre_attn.balance, ...; see
docs/probes.md). val_loss and probe.* are sparse measurements and are never smoothed; the
probe.adam_sharpness panel also draws Adam's stability threshold (probe.adam_threshold, 38 for
beta1 = 0.9) as a dashed line. --log-y puts every panel on a log scale.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import scalevec_metrics as sm  # noqa: E402


def runs_in(path):
    if sm.has_metrics(path):
        return [path]
    subs = sorted(os.path.join(path, d) for d in os.listdir(path)) if os.path.isdir(path) else []
    return [d for d in subs if sm.has_metrics(d)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", metavar="RUN_DIR")
    p.add_argument("-o", "--output", required=True, help="PNG file to write")
    p.add_argument("--metric", action="append", help="metrics.csv column (repeatable; default val_loss)")
    p.add_argument("--log-y", action="store_true", help="log-scale y axes (sharpness, norms)")
    p.add_argument("--smooth", type=float, default=0.0, help="EMA factor in [0, 1) (default 0: off); never applied to val_loss, "
                   "whose sparse evaluations an EMA would only delay")
    p.add_argument("--labels", nargs="+", help="one label per RUN_DIR (default: the paths)")
    p.add_argument("--title")
    a = p.parse_args(argv)
    if not 0.0 <= a.smooth < 1.0:
        p.error("--smooth must be in [0, 1)")
    if a.labels and len(a.labels) != len(a.runs):
        p.error(f"--labels: {len(a.labels)} labels for {len(a.runs)} run dirs")
    labels = a.labels or [os.path.normpath(r) for r in a.runs]
    groups = []
    for label, path in zip(labels, a.runs):
        dirs = runs_in(path)
        if not dirs:
            print(f"plot_curves.py: no metrics.csv in {path} or its subfolders", file=sys.stderr)
            return 1
        groups.append((label, dirs))
    metrics = a.metric or ["val_loss"]
    smooth = {m: (0.0 if sm.is_sparse_metric(m) else a.smooth) for m in metrics}
    drawn = sm.plot_groups(groups, metrics, a.output, smooth=smooth, title=a.title, log_y=a.log_y)
    if drawn == 0:
        print(f"plot_curves.py: no values for {', '.join(metrics)} in the given runs", file=sys.stderr)
        return 1
    print(f"wrote {a.output} ({drawn} curves)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
