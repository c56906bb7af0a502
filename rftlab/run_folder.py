"""Long fine-tuning runs kept in a folder: start, resume, and the WiSE-FT curve of a finished run.

A run folder holds::

    config.json          the resolved configuration (:func:`rftlab.run_config.resolve_config`; a
                         valid config file: rerun it with --config)
    checkpoints/last.pt  the Trainer's checkpoint (every ``checkpoint_every`` steps and at the end);
                         a recipe (soup) keeps one per run in checkpoints/ingredient-<i>/
    history.json         every loss and validation record
    metrics.json         the evaluation protocol's metrics of the final model (as ``rftlab zeroshot --json``)
    model.pt             the final classifier, and the fine-tuned endpoint before the method's
                         ``finish`` when they differ (WiSE-FT), for WiSE-FT curves
    loss_curves.html     the history as a plotly figure (plus .png when kaleido is installed)
    wise_curve.json/.html  after :func:`wise_curve_of_run`

Figures are drawn by :mod:`rftlab.plots` and written with :func:`rftlab.plots.save_figure`.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Callable

from .methods.wiseft import ALPHAS
from .run_config import load_parts, resolve_config, train_config

CONFIG_FILE, METRICS_FILE, HISTORY_FILE, MODEL_FILE = "config.json", "metrics.json", "history.json", "model.pt"
CHECKPOINT = Path("checkpoints") / "last.pt"
RUN_FILES = (CONFIG_FILE, METRICS_FILE, HISTORY_FILE, MODEL_FILE, "loss_curves.html", "loss_curves.png",
             "wise_curve.json", "wise_curve.html", "wise_curve.png", "plotly.min.js")


def _write_json(path: Path, data) -> None:
    """Write JSON atomically (temporary file, fsync, then rename)."""
    from .files import write_json
    write_json(path, data)


def has_run(folder: str | os.PathLike) -> bool:
    folder = Path(folder)
    return (folder / CONFIG_FILE).exists() or (folder / CHECKPOINT).exists()


def clear_run(folder: str | os.PathLike) -> None:
    """Delete the files a run writes (only those) from ``folder``."""
    folder = Path(folder)
    for name in RUN_FILES:
        (folder / name).unlink(missing_ok=True)
    (folder / CHECKPOINT).unlink(missing_ok=True)
    for part in (folder / CHECKPOINT.parent).glob("ingredient-*"):   # a soup's runs
        (part / CHECKPOINT.name).unlink(missing_ok=True)
        try:
            part.rmdir()
        except OSError:
            pass
    from .files import stale_temporaries
    for tmp in stale_temporaries(folder / CHECKPOINT):   # left by a process killed while writing
        tmp.unlink(missing_ok=True)
    try:
        (folder / CHECKPOINT.parent).rmdir()
    except OSError:
        pass


def _state_cpu(module) -> dict:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def finetune_run(config: dict, out: str | os.PathLike | None = None, overwrite: bool = False,
                 callbacks: list[Callable] = (), progress: bool = True, log: Callable = print) -> dict:
    """Train as ``config`` says; with ``out``, keep everything in that run folder.

    Returns the metrics record (what ``metrics.json`` holds) with ``status`` "complete", or
    "interrupted" (Ctrl-C: resume with :func:`resume_run`). Never replaces an existing run
    unless ``overwrite``."""
    resolved = resolve_config(config)
    folder = Path(out) if out is not None else None
    if folder is not None and has_run(folder):
        if not overwrite:
            raise ValueError(f"run folder {folder} already holds a run ({CONFIG_FILE}); continue it with "
                             f"`rftlab finetune --resume {folder}`, replace it with --overwrite, "
                             f"or choose another --out")
        clear_run(folder)
    return _execute(resolved, folder, resume=False, callbacks=callbacks, progress=progress, log=log)


def read_run_config(folder: str | os.PathLike) -> dict:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"run folder {folder} does not exist; start a run there with "
                                f"`rftlab finetune --config FILE --out {folder}`")
    if not (folder / CONFIG_FILE).exists():
        raise FileNotFoundError(f"{folder} holds no run ({CONFIG_FILE} is missing); start one with "
                                f"`rftlab finetune --config FILE --out {folder}`")
    from .files import read_json
    fix = (f"Restore it (it holds the run's settings), or start the run over with "
           f"`rftlab finetune --config FILE --out {folder} --overwrite`.")
    config = read_json(folder / CONFIG_FILE, "run config", fix)
    try:
        return resolve_config(config)
    except ValueError as err:
        from .errors import BadFileError
        raise BadFileError(f"run config {folder / CONFIG_FILE} is not a valid config: {err}. {fix}",
                           folder / CONFIG_FILE) from err


def resume_run(folder: str | os.PathLike, device: str | None = None, cache=None, callbacks: list[Callable] = (),
               progress: bool = True, log: Callable = print) -> dict:
    """Continue the run in ``folder`` from its last checkpoint with its saved config (exactly:
    the same batches, random state and optimiser state as an uninterrupted run). ``device`` and
    ``cache`` may differ from the saved ones. A complete run is not trained again."""
    folder = Path(folder)
    resolved = read_run_config(folder)
    if device is not None:
        resolved["device"] = device
    if cache is not None:
        resolved["cache"] = cache
    if (folder / METRICS_FILE).exists():
        from .files import read_json
        record = read_json(folder / METRICS_FILE, "run metrics",
                           f"The run is complete (it wrote {METRICS_FILE} at its end) but the file is damaged: "
                           f"evaluate {folder / MODEL_FILE} again, or run it over with --overwrite.")
        log(f"{folder}: the run is complete (step {record.get('steps')}); nothing to resume")
        return record
    return _execute(resolved, folder, resume=True, callbacks=callbacks, progress=progress, log=log)


_MAY_CHANGE_ON_RESUME = ("device", "cache")


def _started_with(resolved: dict) -> dict:
    """The settings a resume must find unchanged (stored in every checkpoint of a run folder)."""
    return {k: v for k, v in resolved.items() if k not in _MAY_CHANGE_ON_RESUME}


def _resume_checkpoint(folder: Path, resolved: dict) -> tuple[dict, str] | None:
    """(the run's checkpoint, read once and checked against ``config.json``; the advice for
    errors), or None when the run never wrote one (it starts from step 0: nothing is lost). A
    damaged checkpoint or a config changed since the run started raises, saying how to start
    over deliberately."""
    from .errors import ResumeError
    from .train import read_checkpoint
    ckpt = folder / CHECKPOINT
    if not ckpt.exists():
        return None
    fix = (f"Nothing was changed. To start this run over instead: "
           f"`rftlab finetune --config {folder / CONFIG_FILE} --out {folder} --overwrite`.")
    ck = read_checkpoint(ckpt, fix)
    saved = ck.get("run")
    if saved is not None:
        now = _started_with(resolved)
        same = lambda a, b: json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)  # noqa: E731
        changed = [k for k in sorted(set(saved) & set(now)) if not same(saved[k], now[k])]  # keys of one version
        if changed:
            diff = "; ".join(f"{k}: {saved.get(k)!r} when it started, {now.get(k)!r} now" for k in changed)
            raise ResumeError(f"{folder / CONFIG_FILE} changed since the run started ({diff}). Put the "
                              f"values back to continue the run (only --device and --cache may change), "
                              f"start a new run with --out, or start this one over: "
                              f"`rftlab finetune --config {folder / CONFIG_FILE} --out {folder} --overwrite`.")
    return ck, fix


def _execute(resolved: dict, folder: Path | None, resume: bool, callbacks, progress: bool, log) -> dict:
    from .cache import as_cache, weights_fingerprint
    from .distributed import start as start_ranks
    from .evaluation import evaluate
    from .files import save_torch
    from .methods import Recipe, get_method
    from .train import Trainer, finetune, pick_device
    recipe = isinstance(get_method(resolved["method"], **resolved["hparams"]), Recipe)
    # a single run's checkpoint is read and checked before any loading (a refusal is quick); a recipe's
    # runs (soups) each resume from their own checkpoint, checked by their Trainer
    found = _resume_checkpoint(folder, resolved) if resume and not recipe else None
    clip, task = load_parts(resolved)
    start_weights = weights_fingerprint(clip.model)   # wise-curve checks it rebuilds these weights
    cache = as_cache(resolved["cache"])
    ckpt = folder / CHECKPOINT if folder is not None else None
    cfg = train_config(resolved, str(ckpt.parent) if ckpt else None, progress)
    current = {}   # the Trainer of the run going on (a recipe's runs come one after another)

    def save_history(event, info):
        if event == "start":
            current["trainer"] = info["trainer"]
            info["trainer"].checkpoint_extra["run"] = _started_with(resolved)   # a resume checks config.json against it
        elif writes and event in ("eval", "step") and (
                event == "eval" or cfg.checkpoint_every and info["step"] % cfg.checkpoint_every == 0):
            _write_json(folder / HISTORY_FILE, current["trainer"].history)

    hooks = [save_history, *callbacks]
    trainer = None if recipe else Trainer(resolved["method"], clip, task, cfg, callbacks=hooks, **resolved["hparams"])
    main = (trainer.ranks if trainer else start_ranks(cfg.distributed, pick_device(cfg.device))).is_main
    writes = folder is not None and main   # under torchrun, rank 0 writes
    log = log if main else (lambda m: None)
    if recipe and resume:
        log(f"{folder}: resuming the runs of {resolved['method']} from their checkpoints in {ckpt.parent}")
    elif found is not None:
        trainer.load_checkpoint(ckpt, found[1], checkpoint=found[0])
        log(f"{folder}: resuming from {ckpt} (step {trainer.step_count})")
    elif resume:
        log(f"{folder}: no checkpoint yet; training from the start")
    if writes and not resume:
        folder.mkdir(parents=True, exist_ok=True)
        _write_json(folder / CONFIG_FILE, resolved)
    skipped = task.info.get("skipped_images")
    if skipped:
        log(f"{task.name}: {sum(map(len, skipped.values()))} unreadable image(s) left out (skip_bad_images): "
            + ", ".join(f"{len(v)} in {k}" for k, v in skipped.items()))
    per_epoch = max(1, len(task.train) // cfg.batch_size)
    log(f"{resolved['method']} on {task.name} ({len(task.train)} training images, {per_epoch} steps per epoch), "
        f"{cfg.steps} steps" + (f", run folder {folder}" if folder else ""))
    res = trainer.fit() if trainer else finetune(resolved["method"], clip, task, cfg, callbacks=hooks,
                                                  resume=ckpt.parent if resume else None, **resolved["hparams"])
    if writes:
        _write_json(folder / HISTORY_FILE, res.history)
        from .plots import plot_training, save_figure
        save_figure(plot_training(res.history, f"{resolved['method']} on {task.name}"), folder / "loss_curves")
    record = {"task": task.name, "model": clip.arch, "pretrained": clip.pretrained, "method": resolved["method"],
              "hparams": resolved["hparams"], "steps": res.step, "selected_step": res.selected_step,
              "stopped": res.stopped, "seconds": round(res.seconds, 2)}
    if skipped is not None:
        record["skipped_images"] = sum(map(len, skipped.values()))
    if res.interrupted:
        log(f"interrupted at step {res.step}" + (f"; continue with `rftlab finetune --resume {folder}`" if folder else ""))
        return {**record, "status": "interrupted"}
    record["metrics"] = evaluate(res.classifier, task, clip.preprocess, cache=cache)
    record["status"] = "complete"
    if writes:
        final = _state_cpu(res.classifier)
        save_torch({"arch": clip.arch, "pretrained": clip.pretrained, "method": resolved["method"],
                    "task": task.name, "classifier": final, "endpoint": res.endpoint,
                    "start_weights": start_weights}, folder / MODEL_FILE)
        _write_json(folder / METRICS_FILE, record)
        log(f"wrote {folder}: {CONFIG_FILE}, {CHECKPOINT}, {MODEL_FILE}, {HISTORY_FILE}, {METRICS_FILE}, loss_curves.html")
    return record


# ---------------------------------------------------------------------- the WiSE-FT curve of a run
def load_run_classifiers(folder: str | os.PathLike, device: str | None = None):
    """(clip, task, zero-shot classifier, fine-tuned endpoint classifier) of a finished run."""
    from .cache import weights_fingerprint
    from .classifier import ClipClassifier
    from .train import pick_device
    folder = Path(folder)
    resolved = read_run_config(folder)
    if not (folder / MODEL_FILE).exists():
        raise FileNotFoundError(f"the run in {folder} has not finished ({MODEL_FILE} is missing): "
                                f"complete it with `rftlab finetune --resume {folder}`")
    from .errors import BadFileError
    from .files import load_torch
    fix = f"Finish the run again: `rftlab finetune --config {folder / CONFIG_FILE} --out {folder} --overwrite`."
    saved = load_torch(folder / MODEL_FILE, "run model", fix)
    if not isinstance(saved, dict) or "classifier" not in saved:
        raise BadFileError(f"run model {folder / MODEL_FILE} holds no classifier: it was not written by "
                           f"`rftlab finetune`. {fix}", folder / MODEL_FILE)
    clip, task = load_parts(resolved)
    if saved.get("start_weights") not in (None, weights_fingerprint(clip.model)):
        raise ValueError(f"model {resolved['model']!r} (pretrained={resolved['pretrained']!r}) no longer loads the "
                         f"weights the run in {folder} started from (was the weights file replaced?): "
                         f"its zero-shot end of the WiSE-FT curve would be wrong")
    dev = pick_device(device or resolved["device"])
    zs = ClipClassifier.zeroshot(clip, task.classnames, task.templates).to(dev)
    ft = copy.deepcopy(zs)
    try:
        ft.load_state_dict(saved["endpoint"] if saved.get("endpoint") is not None else saved["classifier"])
    except (RuntimeError, TypeError, AttributeError) as err:
        raise BadFileError(f"run model {folder / MODEL_FILE} does not fit the run's model and task "
                           f"({str(err).splitlines()[0]}). {fix}", folder / MODEL_FILE) from err
    return clip, task, zs, ft


def wise_curve_of_run(folder: str | os.PathLike, alphas=ALPHAS, device: str | None = None,
                      cache=None, log: Callable = print) -> dict:
    """The WiSE-FT curve (:func:`rftlab.analysis.wise_curve`) of a finished run, from the zero-shot
    model of its config (alpha 0) to its fine-tuned endpoint (alpha 1); writes ``wise_curve.json``
    (the run, its model and task, and the curve's ``rows``) and ``wise_curve.html``."""
    from .analysis.distortion import wise_curve
    from .plots import plot_wise, save_figure
    folder = Path(folder)
    resolved = read_run_config(folder)
    clip, task, zs, ft = load_run_classifiers(folder, device)
    rows = wise_curve(zs, ft, task, clip.preprocess, alphas, progress=True,
                      cache=cache if cache is not None else resolved["cache"])
    out = {"run": str(folder), "task": task.name, "model": clip.arch, "pretrained": clip.pretrained,
           "method": resolved["method"], "rows": rows}
    _write_json(folder / "wise_curve.json", out)
    y = next(k for k in ("mean_ood_acc", "worst_group_acc", "avg_acc") if rows[0].get(k) is not None)
    fig = plot_wise(rows, y=y)
    fig.update_layout(title=f"WiSE-FT: zero-shot to {resolved['method']} on {task.name}", width=640, height=480)
    save_figure(fig, folder / "wise_curve")
    log(f"wrote {folder / 'wise_curve.json'} and wise_curve.html")
    return out
