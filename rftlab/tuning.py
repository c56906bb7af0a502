"""Hyperparameter selection as the papers do it: a small grid per method, chosen on val only, then
the chosen configuration retrained over seeds and scored on test.

The budget: every method trains the same number of configurations, ``budget``, each with the same
settings (its recipe for this model plus the caller's overrides, so the same number of steps on the
world). A configuration is a combination of the method's key hyperparameters (``search`` on its
class) and a learning rate from :func:`rftlab.methods.base.lr_factors` around the recipe's lr: a
method with 3 key-hyperparameter values gets 2 learning rates, a method with none gets ``budget``
(``Method.grid``). Not counted as configurations, because they train nothing more:

* WiSE-FT's alpha (``posthoc``): applied to each trained run at 0, 0.1, ..., 1 and scored on val;
* LP's and LP-FT's probe strength: chosen on val inside a run (head fits on cached features); LP
  has no learning rate, so its ``budget`` configurations are ``budget`` probe strengths;
* soups: their ingredients are the ``budget`` runs of the FT learning-rate grid (the model-soups
  paper's hyperparameter sweep), shared with FT when both are swept in one call; nothing to select;
* zero-shot: nothing to train.

Test data never selects: configurations are scored with :func:`rftlab.evaluation.evaluate_val`,
and :func:`rftlab.evaluation.evaluate` runs only on the selected configuration's seeds.

Runs are shared through :func:`rftlab.train.reuse_runs`: the seed-0 run of the selected configuration is
the sweep's own; a method's runs are freed when its row is done, except FT's (the soups' ingredients).
"""
from __future__ import annotations

import copy
import dataclasses
import itertools
import statistics
import time

from . import train
from .classifier import ClipClassifier
from .compare import _flatten
from .evaluation import evaluate, evaluate_val
from .methods import METHODS, Method, get_method
from .metrics import TABLE_COLUMNS
from .recipes import recipe_config

SELECT = ("val_acc", "val_worst_group_acc")


def selection_metric(task, select: str | None = None) -> str:
    """``select`` checked; None or "auto": worst-group val accuracy on tasks with groups (as the
    group-robustness literature selects), val accuracy otherwise."""
    if select in (None, "auto"):
        return "val_worst_group_acc" if task.has_groups and "group" in task.val.meta else "val_acc"
    if select not in SELECT:
        raise ValueError(f"select={select!r}: choose 'auto', 'val_acc' or 'val_worst_group_acc' (test data never selects)")
    if select == "val_worst_group_acc" and not (task.has_groups and "group" in task.val.meta):
        raise ValueError(f"task {task.name!r} has no groups on val: select on 'val_acc'")
    return select


def budget_text(methods, budget: int, seeds, metric: str, settings: dict) -> str:
    s = ", ".join(f"{k}={v}" for k, v in settings.items())
    lines = [f"budget: {budget} configurations per method, each trained with its recipe for this model"
             + (f" and {s}" if s else "") + f"; selected on {metric} (val only); the selected one retrained "
             f"with seeds {list(seeds)} (seed {seeds[0]}: the sweep's run) and scored on test"]
    for m in methods:
        cls = METHODS[m]
        if m == "zeroshot":
            lines.append(f"  {m}: nothing to train")
        elif not isinstance(get_method(m), Method):
            lines.append(f"  {m}: ingredients = the {budget} runs of the FT learning-rate grid (shared with ft "
                         f"when both are swept); nothing to select")
        else:
            grid = cls.grid(budget)
            lrs = len({g.get("lr_factor") for g in grid}) if cls.tunes_lr else 0
            axes = [f"{', '.join(k) if isinstance(k, tuple) else k} in {list(v)}" for k, v in cls.search.items()] \
                if cls.search else [f"{k} in {sorted({g[k] for g in grid})}" for k in grid[0] if k != "lr_factor"]
            free = [f"{k} in {list(v)} post hoc over each run" for k, v in cls.posthoc.items()]
            probe = get_method(m, **{k: v for k, v in grid[0].items() if k != "lr_factor"}).probe()
            if probe is not None and len(probe.weight_decays) > 1:
                free.append(f"the probe's weight decay chosen on val among {len(probe.weight_decays)} inside each run")
            lines.append(f"  {m}: {len(grid)} configurations = " + " x ".join(
                axes + ([f"{lrs} learning rates"] if lrs else [])) + ("; free: " + "; ".join(free) if free else ""))
    return "\n".join(lines)


def sweep(clip, task, methods=None, budget: int = 6, seeds=(0, 1, 2), select: str | None = None,
          log=print, hparams: dict | None = None, **overrides) -> dict:
    """Tune each method on val with the same budget, then retrain its selected configuration over
    ``seeds`` and score it on test. ``overrides``: TrainConfig fields for every run (``steps``,
    ``batch_size``, ``device``...; ``eval_every`` defaults to 0: selection uses the final model).
    Returns ``{"task", "model", "select", "budget", "seeds", "settings", "budget_text", "rows"}``,
    one row per method: every configuration's val metrics and score, the selected one, test metrics
    (mean and std over seeds; ``test_runs``: each seed's), the runs selection asked for and trained,
    and seconds. ``hparams``: hyperparameters fixed for every configuration of every method (e.g.
    ``{"head_init": "random"}`` for FT from a random head), not tuned."""
    methods = list(methods or METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {unknown}; registered methods: {', '.join(METHODS)}")
    if budget < 1:
        raise ValueError(f"budget={budget}: give at least 1 configuration per method")
    seeds = tuple(seeds)
    if not seeds:
        raise ValueError("give at least one seed")
    metric = selection_metric(task, select)
    fixed = dict(hparams or {})
    settings = {"eval_every": 0, **overrides}
    grids = {m: METHODS[m].grid(budget) for m in methods}  # a budget a grid does not divide fails here, early
    text = budget_text(methods, budget, seeds, metric, settings)
    log(text)
    zeroshot = ClipClassifier.zeroshot(clip, task.classnames, task.templates)

    def run(m: str, point: dict, seed: int):
        """(the run's TrainResult, its lr) for one grid point at one seed."""
        hp = {**fixed, **point}
        factor = hp.pop("lr_factor", None)
        cfg = recipe_config(m, clip, task, **{"progress": False, **settings, "seed": seed})
        if factor is not None:
            cfg = dataclasses.replace(cfg, lr=cfg.lr * factor)
        return train.finetune(m, clip, task, cfg, **hp), cfg

    def finish(m: str, point: dict, result, cfg, values: dict):
        """The classifier with post-hoc values applied to the run's endpoint (WiSE-FT's alpha)."""
        if not values:
            return result.classifier
        method = get_method(m, **fixed, **{k: v for k, v in point.items() if k != "lr_factor"}, **values)
        method.config = cfg
        method.setup(copy.deepcopy(zeroshot), task, clip)
        clf = copy.deepcopy(result.classifier)
        if result.endpoint is not None:
            clf.load_state_dict(result.endpoint)
        return method.finish(clf)

    rows = []
    with train.reuse_runs() as kept:
        for m in methods:
            t0, asked, trained = time.time(), kept.trained + kept.reused, kept.trained
            cls = METHODS[m]
            posthoc = [dict(zip(cls.posthoc, v)) for v in itertools.product(*cls.posthoc.values())]
            configs = []
            for point in grids[m]:
                result, cfg = run(m, point, seeds[0])
                for values in posthoc or [{}]:
                    val = evaluate_val(finish(m, point, result, cfg, values), task, clip.preprocess)
                    hp = {k: v for k, v in point.items() if k != "lr_factor"}
                    configs.append({"point": point, "posthoc": values, "hparams": {**hp, **values},
                                    "lr": cfg.lr if cls.tunes_lr else None, "steps": cfg.steps,
                                    "val": val, "score": val.get(metric, val["val_acc"])})
                    log(f"  {m:<13} {_config_text(configs[-1])}  {metric} {configs[-1]['score']:.4f}")
            asked = kept.trained + kept.reused - asked
            best = max(configs, key=lambda c: c["score"])  # the first of equal scores
            tests = []
            for seed in seeds:
                result, cfg = run(m, best["point"], seed)
                tests.append(_flatten(evaluate(finish(m, best["point"], result, cfg, best["posthoc"]), task,
                                               clip.preprocess)))
            trained = kept.trained - trained   # selection and seeds: the runs trained here, not reused
            row = {"method": m, "select": metric,
                   "configurations": [{k: c[k] for k in ("hparams", "lr", "steps", "val", "score")} for c in configs],
                   "selected": {k: best[k] for k in ("hparams", "lr", "steps", "score")},
                   "fixed": fixed, "selection_runs": asked, "new_runs": trained, "seeds": list(seeds),
                   "test_runs": tests,
                   "test": {k: {"mean": statistics.fmean(r[k] for r in tests if k in r),
                                "std": statistics.pstdev([r[k] for r in tests if k in r])}
                            for k in tests[0]},
                   "seconds": round(time.time() - t0, 2)}
            rows.append(row)
            log(format_row(row))
            if m != "ft":   # FT's runs stay: they are the soups' ingredients; the others are done with
                kept.drop(m)
    return {"task": task.name, "model": getattr(clip, "arch", None), "select": metric, "budget": budget,
            "seeds": list(seeds), "settings": {k: v for k, v in settings.items() if _jsonable(v)},
            "budget_text": text, "rows": rows}


def _jsonable(v) -> bool:
    return v is None or isinstance(v, (bool, int, float, str))


def _config_text(c: dict) -> str:
    parts = [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in c["hparams"].items()]
    if c.get("lr") is not None:
        parts.insert(0, f"lr={c['lr']:.2e}")
    return " ".join(parts) or "-"


def format_row(row: dict) -> str:
    cells = [f"{k} {row['test'][k]['mean']:.3f}±{row['test'][k]['std']:.3f}" for k in TABLE_COLUMNS if k in row["test"]]
    return (f"{row['method']:<13} selected {_config_text(row['selected'])} ({row['select']} "
            f"{row['selected']['score']:.4f}); test " + ", ".join(cells) + f"; {row['seconds']:.0f}s")
