"""Compare methods on a task over seeds: a table of mean and spread, and JSON rows."""
from __future__ import annotations

import statistics
import time

from . import train
from .evaluation import evaluate
from .methods import METHODS
from .metrics import TABLE_COLUMNS
from .recipes import recipe_config

SCALARS = ("id_acc", "mean_ood_acc", "avg_acc", "worst_group_acc", "weighted_acc", "ece", "nll")


def _flatten(metrics: dict) -> dict:
    out = {k: metrics[k] for k in SCALARS if metrics.get(k) is not None}
    for dom, acc in (metrics.get("ood_acc") or {}).items():
        out[f"ood_acc/{dom}"] = acc
    for g, acc in (metrics.get("group_acc") or {}).items():
        out[f"group_acc/{g}"] = acc
    for dom, e in (metrics.get("ood_ece") or {}).items():
        out[f"ood_ece/{dom}"] = e
    return out


def compare(clip, task, methods=None, seeds=(0, 1, 2), log=print, **overrides) -> list[dict]:
    """Train and evaluate each method with each seed, with its recipe for this model
    (``rftlab.recipes``) and ``overrides`` (TrainConfig fields) on top; rows of
    {"method", metric: {mean, std}}."""
    methods = list(methods or METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; registered methods: {', '.join(METHODS)}")
    rows = []
    with train.reuse_runs():  # the uniform and the greedy soup share their FT runs
        for m in methods:
            runs, t0 = [], time.time()
            for seed in seeds:
                cfg = recipe_config(m, clip, task, **{"progress": False, **overrides, "seed": seed})
                res = train.finetune(m, clip, task, cfg)
                runs.append(_flatten(evaluate(res.classifier, task, clip.preprocess)))
            row = {"method": m, "seconds_per_run": round((time.time() - t0) / len(seeds), 2)}
            for k in runs[0]:
                vals = [r[k] for r in runs if k in r]
                row[k] = {"mean": statistics.fmean(vals), "std": statistics.pstdev(vals) if len(vals) > 1 else 0.0}
            rows.append(row)
            log(format_row(row))
    return rows


def format_row(row: dict) -> str:
    cells = []
    for k in TABLE_COLUMNS:
        v = row.get(k)
        cells.append(f"{v['mean']:.3f}±{v['std']:.3f}" if v else "-")
    return f"{row['method']:<13}" + "".join(f"{c:>16}" for c in cells)


def header() -> str:
    return f"{'method':<13}" + "".join(f"{c:>16}" for c in TABLE_COLUMNS)


def markdown_table(rows: list[dict]) -> str:
    cols = [c for c in TABLE_COLUMNS if any(c in r for r in rows)]
    lines = ["| method | " + " | ".join(cols) + " | s/run |", "|---" * (len(cols) + 2) + "|"]
    for r in rows:
        cells = [f"{r[c]['mean']:.3f} ± {r[c]['std']:.3f}" if c in r else "-" for c in cols]
        lines.append(f"| {r['method']} | " + " | ".join(cells) + f" | {r['seconds_per_run']} |")
    return "\n".join(lines)
