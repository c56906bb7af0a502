"""``rftlab probe``: find the shortcuts of a checkpoint, a run or a fresh fine-tuning, and write
``probe.json`` and a self-contained ``probe.html`` (ranking, bar chart, thumbnails).

The discovery itself is :func:`rftlab.analysis.discover_shortcuts`; this module loads the models
(the probed classifier and its reference theta0, whose towers judge) and writes the report.
"""
from __future__ import annotations

import base64
import html
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

PROBE_JSON, PROBE_HTML = "probe.json", "probe.html"


@dataclass
class Probed:
    """What :func:`load_probed` returns: the classifier probed, its reference (or None), the CLIP
    whose tokenizer and transform read the task, the task, and a description of both models."""

    classifier: object
    reference: object | None
    clip: object
    task: object
    about: dict = field(default_factory=dict)


def _same_file(a, b) -> bool:
    try:
        return a is not None and b is not None and Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def load_probed(run: str | os.PathLike | None = None, model: str | None = None, pretrained: str | None = None,
                base_pretrained: str | None = None, task: str | None = None, root: str | None = None,
                task_args: dict | None = None, finetune: dict | None = None, log: Callable = print) -> Probed:
    """The models to probe, from one of three sources:

    * ``run``: a finished run folder (``rftlab finetune --out``): its final classifier, and the
      zero-shot classifier of the model it started from as the reference;
    * ``finetune``: a run config (``rftlab finetune``'s settings: method, model, pretrained, task,
      steps...): fine-tune from the zero-shot model first, which is then the reference;
    * ``model`` / ``pretrained``: a checkpoint read with its own zero-shot head; the reference is
      ``base_pretrained`` (same architecture), by default the shipped weights for the world model
      and none for other architectures (the probed model then judges itself).
    """

    from .classifier import ClipClassifier
    from .files import load_torch
    from .models.factory import DEFAULT_MODEL
    from .models.loading import load_model
    from .run_config import load_parts, open_task, resolve_config, train_config
    from .run_folder import MODEL_FILE, load_run_classifiers, read_run_config
    if run is not None:
        if any(v is not None for v in (model, pretrained, base_pretrained, task, root, finetune)) or task_args:
            raise ValueError("--run probes the run's own model on its own task: drop --model, --pretrained, "
                             "--base-pretrained, --task, --root, --task-arg and --method")
        clip, task_obj, zs, ft = load_run_classifiers(run, device="cpu")
        saved = load_torch(Path(run) / MODEL_FILE, "run model",
                           f"run the fine-tuning again into a new folder (rftlab finetune --out DIR), then probe it")
        ft.load_state_dict(saved["classifier"])   # the run's final model (after WiSE-FT mixing, if any)
        resolved = read_run_config(run)
        about = {"probed": {"run": str(run), "method": resolved["method"], "model": clip.arch,
                            "pretrained": clip.pretrained},
                 "reference": {"model": clip.arch, "pretrained": clip.pretrained, "head": "zero-shot"}}
        return Probed(ft, zs, clip, task_obj, about)
    if finetune is not None:
        from .train import finetune as train
        resolved = resolve_config(finetune)
        clip, task_obj = load_parts(resolved)
        log(f"fine-tuning {resolved['method']} on {task_obj.name} for {resolved['steps']} steps, then probing")
        res = train(resolved["method"], clip, task_obj, train_config(resolved, progress=False), **resolved["hparams"])
        if res.interrupted:
            raise ValueError("fine-tuning was interrupted: nothing to probe")
        zs = ClipClassifier.zeroshot(clip, task_obj.classnames, task_obj.templates)
        ft = res.classifier.to("cpu").eval()
        about = {"probed": {"method": resolved["method"], "model": clip.arch, "pretrained": clip.pretrained,
                            "steps": res.step, "seed": resolved["seed"], "hparams": resolved["hparams"]},
                 "reference": {"model": clip.arch, "pretrained": clip.pretrained, "head": "zero-shot"}}
        return Probed(ft, zs, clip, task_obj, about)
    if task is None:
        raise ValueError("no task: give --task NAME (a world task or a dataset with --root), or --run RUN")
    model = model or DEFAULT_MODEL
    clip = load_model(model, pretrained)
    task_obj = open_task(task, root, task_args)
    clf = ClipClassifier.zeroshot(clip, task_obj.classnames, task_obj.templates)
    base = base_pretrained
    if base is None and model == DEFAULT_MODEL and pretrained not in (None, "random", "none"):
        from .models.factory import DEFAULT_WEIGHTS
        base = str(DEFAULT_WEIGHTS)
    about = {"probed": {"model": clip.arch, "pretrained": clip.pretrained, "head": "zero-shot"}, "reference": None}
    reference = None
    if base is not None and not _same_file(base, pretrained):
        try:
            ref_clip = load_model(model, base)
        except ValueError as err:
            raise ValueError(f"--base-pretrained: {err}") from None
        reference = ClipClassifier.zeroshot(ref_clip, task_obj.classnames, task_obj.templates)
        about["reference"] = {"model": ref_clip.arch, "pretrained": ref_clip.pretrained, "head": "zero-shot"}
    return Probed(clf, reference, clip, task_obj, about)


def check_readable(p: Probed) -> None:
    """A clear error when the probed model cannot read the task's images."""
    from .evaluation import check_compatible
    check_compatible(p.clip, p.task, p.classifier)


def run_probe(p: Probed, split: str = "val", candidates=None, **kwargs):
    """:func:`rftlab.analysis.discover_shortcuts` on a :class:`Probed`."""
    from .analysis.shortcuts import discover_shortcuts
    check_readable(p)
    return discover_shortcuts(p.classifier, p.task, p.clip.tokenizer, p.clip.preprocess, reference=p.reference,
                              candidates=candidates, split=split, **kwargs)


def read_candidates(path: str | os.PathLike) -> list[str]:
    """Descriptions from a text file, one a line (blank lines and lines starting with # skipped)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"candidates file {path} does not exist (one description per line)")
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    out = [ln for ln in lines if ln and not ln.startswith("#")]
    if not out:
        raise ValueError(f"candidates file {path} holds no description (one per line)")
    return out


# --------------------------------------------------------------------------- the report
def report_dict(result, about: dict | None = None) -> dict:
    """probe.json: the discovery (``ranking`` strongest first, ``found``, ``judge``, ``rule``...)
    plus which models were probed and judged."""
    return {**result.to_dict(), **(about or {})}


def _img_tag(split, index: int, size: int = 72) -> str:
    from .plots import thumbnail_png
    data = base64.b64encode(thumbnail_png(split.open(index), size)).decode()
    return f"<img src='data:image/png;base64,{data}' style='margin:1px'>"


def report_html(result, about: dict | None = None, top: int = 10, n_images: int = 8) -> str:
    """A self-contained HTML page: the ranking, a bar chart (plotly.js inlined) and thumbnails of
    the images each top description picks out (base64 PNG)."""
    from .plots import plot_shortcuts
    esc = html.escape
    rows = result.ranking[:top]
    fig = plot_shortcuts(result, top=top)
    chart = fig.to_html(include_plotlyjs=True, full_html=False)
    models = ""
    for key in ("probed", "reference"):
        if about and about.get(key):
            models += f"<li><b>{key}</b>: {esc(json.dumps(about[key]))}</li>"
    verdict = ("<p style='color:#b00'><b>Finding:</b> " + esc(result.findings[0]["description"]) + " &rarr; "
               + esc(result.findings[0]["toward"]) + "</p>") if result.found else \
        "<p><b>Nothing found</b>: no description passes the rule.</p>"
    head = ["#", "description", "toward", "score", "± stderr", "z", "hurts", "acc in group", "acc of rest", "n",
            "also"]
    table = "<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"
    for r in rows:
        style = " style='font-weight:bold'" if r["significant"] else ""
        cells = [r["rank"], r["description"], r["toward"], f"{r['score']:+.3f}", f"{r['stderr']:.3f}",
                 f"{r['z']:.1f}", r["class"], f"{r['group_acc']:.2f}", f"{r['rest_acc']:.2f}", r["n"],
                 ", ".join(r["synonyms"][:4]) + (" ..." if len(r["synonyms"]) > 4 else "")]
        table += f"<tr{style}>" + "".join(f"<td>{esc(str(c))}</td>" for c in cells) + "</tr>"
    thumbs = ""
    if result.data is not None:
        for r in rows[:5]:
            imgs = "".join(_img_tag(result.data, i) for i in r["images"][:n_images])
            thumbs += (f"<h3>{r['rank']}. {esc(r['description'])}: {esc(r['class'])} images it fits best "
                       f"(accuracy {r['group_acc']:.2f} vs {r['rest_acc']:.2f} on the rest)</h3><div>{imgs}</div>")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>rftlab probe: {esc(result.task)}</title>
<style>body{{font-family:sans-serif;margin:20px}} td,th{{padding:2px 8px;text-align:left}}
table{{border-collapse:collapse;font-size:13px}} tr:nth-child(even){{background:#f4f4f4}}</style></head>
<body><h1>Shortcuts of the model on {esc(result.task)}</h1>
<p>{result.n_images} {esc(result.split)} images, {result.n_errors} misclassified (accuracy {result.accuracy:.3f}).
Judge: {esc(result.judge)}. Score: {esc(result.settings.get('score', ''))}. Rule: {esc(result.rule)}.</p>
<ul>{models}</ul>{verdict}
<table>{table}</table>{chart}{thumbs}</body></html>"""


def write_report(result, out: str | os.PathLike, about: dict | None = None, top: int = 10) -> list[Path]:
    """Write ``probe.json`` and ``probe.html`` into the folder ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / PROBE_JSON).write_text(json.dumps(report_dict(result, about), indent=1))
    (out / PROBE_HTML).write_text(report_html(result, about, top=top))
    return [out / PROBE_JSON, out / PROBE_HTML]
