"""Reading `metrics.csv` files written by `scalevec train`, summarising runs and drawing curves.

Shared by scripts/sweep.py and scripts/plot_curves.py. Standard library plus matplotlib (Agg
backend, imported only when a plot is drawn).

metrics.csv columns: step,tokens,lr,train_loss,grad_norm,val_loss,tokens_per_s,mfu, then
scale.<position>.{mean,std,min,max}. Empty cells (val_loss off eval steps, mfu on CPU, scale
statistics off log steps) are missing values; NaN / Infinity are kept as floats.
"""

import csv
import math
import os
import statistics

METRICS_FILE = "metrics.csv"


def read_metrics(run_dir):
    """Returns {column: [(step, value), ...]} with only the rows where the column has a value."""
    path = os.path.join(run_dir, METRICS_FILE)
    series = {}
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        for name in reader.fieldnames or []:
            series[name] = []
        for row in reader:
            try:
                step = int(row["step"])
            except (KeyError, TypeError, ValueError):
                continue  # a partly written last line
            for name, text in row.items():
                if name is None or text is None or text == "":
                    continue
                try:
                    series[name].append((step, float(text)))
                except ValueError:
                    pass
    return series


def has_metrics(run_dir):
    return os.path.isfile(os.path.join(run_dir, METRICS_FILE))


def last_value(points):
    return points[-1][1] if points else None


def summarize_run(run_dir):
    """Final/min validation loss, final train loss, last step and tokens of one run."""
    m = read_metrics(run_dir)
    val = [v for _, v in m.get("val_loss", []) if not math.isnan(v)]
    step_points = m.get("step", [])
    return {
        "final_val_loss": last_value(m.get("val_loss", [])),
        "final_val_step": m["val_loss"][-1][0] if m.get("val_loss") else None,
        "min_val_loss": min(val) if val else None,
        "final_train_loss": last_value(m.get("train_loss", [])),
        "steps": int(last_value(step_points)) if step_points else 0,
        "tokens": int(last_value(m.get("tokens", []))) if m.get("tokens") else 0,
    }


def is_finished(run_dir, steps):
    """True when metrics.csv reaches `steps` and has a validation loss at that step."""
    if not has_metrics(run_dir):
        return False
    s = summarize_run(run_dir)
    return s["steps"] >= steps and s["final_val_step"] is not None and s["final_val_step"] >= steps


def ema(points, smooth):
    """Debiased exponential moving average (TensorBoard style); smooth in [0, 1), 0 = off."""
    if not smooth:
        return list(points)
    out, acc, weight = [], 0.0, 0.0
    for step, v in points:
        acc = smooth * acc + (1 - smooth) * v
        weight = smooth * weight + (1 - smooth)
        out.append((step, acc / weight))
    return out


def mean_std(values):
    vals = [v for v in values if v is not None and not math.isnan(v)]
    if not vals:
        return None, None, 0
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0), len(vals)


def aggregate(curves):
    """Mean, min and max over runs at the steps that every run has: [(step, mean, lo, hi)]."""
    if not curves:
        return []
    maps = [dict(c) for c in curves]
    common = sorted(set(maps[0]).intersection(*maps[1:]))
    out = []
    for step in common:
        vals = [m[step] for m in maps]
        out.append((step, statistics.fmean(vals), min(vals), max(vals)))
    return out


def is_sparse_metric(name):
    """Measured every so many steps (evaluation, probes): smoothing would mix distant steps."""
    return name == "val_loss" or name.startswith("probe.")


def plot_groups(groups, metrics, out_png, smooth=0.0, title=None, log_y=False):
    """Draws one subplot per metric; each group is (label, [run_dir, ...]).

    A group of one run is a plain line; a group of several runs is their mean with a shaded
    min-max band (over the steps all of them have). `smooth` is an EMA factor, either one number
    or {metric: factor}. Returns the number of curves drawn.
    """
    try:
        import matplotlib
    except ImportError as e:
        raise SystemExit(f"{e}: plots need matplotlib; use /usr/bin/python3 "
                         "(Debian package python3-matplotlib)") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if isinstance(metrics, str):
        metrics = [metrics]
    data = {label: [read_metrics(d) for d in dirs if has_metrics(d)] for label, dirs in groups}
    fig, axes = plt.subplots(len(metrics), 1, figsize=(8, 4.5 * len(metrics)), squeeze=False)
    drawn = 0
    for ax, metric in zip(axes[:, 0], metrics):
        factor = smooth.get(metric, 0.0) if isinstance(smooth, dict) else smooth
        for i, (label, _) in enumerate(groups):
            curves = [ema(m.get(metric, []), factor) for m in data[label]]
            curves = [c for c in curves if c]
            agg = aggregate(curves)
            if not agg:
                continue
            color = f"C{i % 10}"
            steps = [a[0] for a in agg]
            n = f" (n={len(curves)})" if len(curves) > 1 else ""
            ax.plot(steps, [a[1] for a in agg], color=color, label=label + n, linewidth=1.4)
            if len(curves) > 1:
                ax.fill_between(steps, [a[2] for a in agg], [a[3] for a in agg], color=color, alpha=0.2)
            drawn += 1
        if metric == "probe.adam_sharpness":
            limits = [v for m in sum(data.values(), []) for _, v in m.get("probe.adam_threshold", [])]
            if limits:
                ax.axhline(limits[-1], color="0.3", linestyle="--", linewidth=1,
                           label=f"stability threshold {limits[-1]:g}")
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("step")
        ax.set_ylabel(metric + (f" (EMA {factor})" if factor else ""))
        ax.grid(True, alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out_png)), exist_ok=True)
    fig.savefig(out_png, dpi=110)
    plt.close(fig)
    return drawn
