"""Calibration: ECE and reliability-diagram data, confidence histograms, temperature scaling,
CaRot's smallest singular value of the ID feature covariance, and ID calibration against OOD
error across methods.

Binning everywhere is :func:`rftlab.metrics.ece`'s: top-label confidence, ``n_bins`` equal-width
bins over [0, 1], right-closed, a confidence of exactly 0 in the first bin.
"""
from __future__ import annotations

import copy
import math
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from ..data import Task
from ..metrics import ece
from ._common import check_classes, first_value, warn
from .inputs import image_features, resolve_split


def _check(logits: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    logits = torch.as_tensor(logits).float().cpu()
    if logits.ndim != 2:
        raise ValueError(f"logits must be (N, C); got shape {tuple(logits.shape)}")
    if labels is not None and len(labels) != len(logits):
        raise ValueError(f"{len(logits)} logits but {len(labels)} labels")
    return logits


def _bin_index(conf: torch.Tensor, n_bins: int) -> torch.Tensor:
    return torch.clamp(torch.ceil(conf * n_bins).long() - 1, 0, n_bins - 1)


def reliability(logits: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> dict:
    """Reliability-diagram data: ``ece`` (:func:`rftlab.metrics.ece`), ``n``, and ``bins``, one row
    per bin: ``lower, upper, count, confidence`` (mean top-label probability; NaN when empty),
    ``accuracy`` (NaN when empty), ``gap`` (accuracy - confidence). Log-probabilities work as logits."""
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    logits = _check(logits, labels)
    labels = torch.as_tensor(labels).long().cpu()
    probs = logits.softmax(1)
    conf, pred = probs.max(1)
    right = (pred == labels).float()
    b = _bin_index(conf, n_bins)
    count = torch.bincount(b, minlength=n_bins).float()
    c_sum = torch.zeros(n_bins).index_add_(0, b, conf)
    a_sum = torch.zeros(n_bins).index_add_(0, b, right)
    rows = []
    for k in range(n_bins):
        n = int(count[k])
        c = (c_sum[k] / n).item() if n else math.nan
        a = (a_sum[k] / n).item() if n else math.nan
        rows.append({"lower": k / n_bins, "upper": (k + 1) / n_bins, "count": n, "confidence": c,
                     "accuracy": a, "gap": a - c})
    return {"ece": ece(probs, labels, n_bins=n_bins), "n": len(labels), "bins": rows}


def confidence_histogram(logits: torch.Tensor | Mapping[str, torch.Tensor],
                         labels: torch.Tensor | Mapping[str, torch.Tensor] | None = None,
                         n_bins: int = 20) -> list[dict]:
    """Histogram of top-label confidence per set (a tensor, or {name: logits}, e.g. id and OOD sets).
    Rows: ``split, lower, upper, count, fraction`` and, with labels, ``accuracy`` (NaN when empty)."""
    if not isinstance(logits, Mapping):
        logits = {"all": logits}
        labels = {"all": labels} if labels is not None else None
    rows = []
    for name, lg in logits.items():
        y = labels.get(name) if isinstance(labels, Mapping) else None
        lg = _check(lg, y)
        conf, pred = lg.softmax(1).max(1)
        b = _bin_index(conf, n_bins)
        count = torch.bincount(b, minlength=n_bins)
        right = torch.zeros(n_bins).index_add_(0, b, (pred == torch.as_tensor(y)).float()) if y is not None else None
        for k in range(n_bins):
            r = {"split": name, "lower": k / n_bins, "upper": (k + 1) / n_bins, "count": int(count[k]),
                 "fraction": count[k].item() / len(lg)}
            if right is not None:
                r["accuracy"] = (right[k] / count[k]).item() if count[k] else math.nan
            rows.append(r)
    return rows


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, max_iter: int = 100) -> float:
    """The temperature T > 0 minimising the NLL of softmax(logits / T), by L-BFGS on log T.

    Fit on held-out logits (val), never on the test set. When every held-out prediction is
    right the NLL keeps falling as T shrinks, so T comes out small: a held-out set with some
    errors gives a meaningful temperature."""
    logits = _check(logits, labels).double()
    labels = torch.as_tensor(labels).long().cpu()
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    opt.step(closure)
    t = float(log_t.detach().exp())
    if not math.isfinite(t):
        raise ValueError("temperature fit diverged (are the logits constant or the labels all predicted perfectly?)")
    return t


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """logits / T."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive; got {temperature}")
    return torch.as_tensor(logits) / temperature


def with_temperature(classifier, temperature: float):
    """A copy of a ClipClassifier whose logits are divided by ``temperature`` (its scale is)."""
    if not temperature > 0:
        raise ValueError(f"temperature must be positive; got {temperature}")
    out = copy.deepcopy(classifier)
    out.scale.div_(temperature)
    return out


def covariance_spectrum(features: torch.Tensor, centered: bool = True) -> torch.Tensor:
    """Singular values, largest first, of the feature covariance (1/N) Fc^T Fc (D, D), Fc the
    features minus their mean (``centered``). Warns when N <= D (the covariance is then rank-deficient)."""
    f = torch.as_tensor(features).double().cpu()
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"features must be (N, D) with N >= 2; got {tuple(f.shape)}")
    if len(f) <= f.shape[1]:
        warn(f"{len(f)} samples for {f.shape[1]}-dimensional features: the covariance is rank-deficient, so "
             "its smallest singular value is ~0 whatever the model; use more samples than dimensions")
    if centered:
        f = f - f.mean(0)
    return torch.linalg.svdvals(f.t() @ f / len(f))


def covariance_sigma_min(features: torch.Tensor, centered: bool = True) -> float:
    """CaRot's sigma_min: the smallest singular value of the ID feature covariance
    (the last of :func:`covariance_spectrum`)."""
    return float(covariance_spectrum(features, centered)[-1])


def calibration_report(model, task: Task, transform=None, *, n_bins: int = 15,
                       temperature: float | str | None = None,
                       features: Mapping[str, torch.Tensor] | None = None) -> dict:
    """Every test set's calibration from one encoding: :meth:`rftlab.Task.evaluate` (``id_acc``,
    ``ece``, ``ood_acc``, ``ood_ece``, ``nll``...) plus ``mean_ood_ece``, ``mean_ood_error``,
    ``sigma_min`` (:func:`covariance_sigma_min` of the ID test features), ``temperature``
    (``"fit"`` fits it on val logits; logits are divided by it before scoring).
    ``features``: {"id": ..., ood name: ..., "val": ...} precomputed, to skip encoding."""
    check_classes(model, task)
    features = dict(features or {})
    names = list(task.eval_splits()) + (["val"] if temperature == "fit" else [])
    feats = {n: image_features(model, resolve_split(task, n)[0], transform, features.get(n)) for n in names}
    head = model.head.detach().float().cpu()
    scale = float(model.scale)
    logits = {n: scale * f @ head for n, f in feats.items()}
    t = 1.0
    if temperature == "fit":
        t = fit_temperature(logits.pop("val"), task.val.labels)
    elif temperature is not None:
        t = float(temperature)
    logits = {n: apply_temperature(lg, t) for n, lg in logits.items()}
    out = task.evaluate(logits, n_bins=n_bins)
    out["temperature"] = t
    out["mean_ood_ece"] = (sum(out["ood_ece"].values()) / len(out["ood_ece"])) if out["ood_ece"] else None
    out["mean_ood_error"] = (1 - out["mean_ood_acc"]) if out["mean_ood_acc"] is not None else None
    out["sigma_min"] = covariance_sigma_min(feats["id"])
    return out


def calibration_vs_ood(results: Mapping[str, dict] | Sequence[dict]) -> list[dict]:
    """Rows ``method, id_acc, id_ece, mean_ood_error, mean_ood_ece`` (+ ``sigma_min`` where known)
    for a scatter of ID calibration against OOD error across methods. ``results``:
    {method: evaluate()/calibration_report() dict}, or ``rftlab.compare`` rows (means are used)."""
    items = results.items() if isinstance(results, Mapping) else ((r["method"], r) for r in results)
    rows = []
    for method, m in items:
        ood_acc = first_value(m.get("mean_ood_acc"))
        if isinstance(m.get("ood_ece"), Mapping) and "mean" not in m["ood_ece"]:
            ood_eces = list(m["ood_ece"].values())
        else:
            ood_eces = [first_value(v) for k, v in m.items() if k.startswith("ood_ece/")]
        row = {"method": method, "id_acc": first_value(m.get("id_acc")), "id_ece": first_value(m.get("ece")),
               "mean_ood_error": None if ood_acc is None else 1 - ood_acc,
               "mean_ood_ece": sum(ood_eces) / len(ood_eces) if ood_eces else None}
        if m.get("sigma_min") is not None:
            row["sigma_min"] = first_value(m["sigma_min"])
        if row["id_ece"] is None:
            raise ValueError(f"results for {method!r} have no 'ece': pass rftlab.evaluate() or compare() results")
        rows.append(row)
    return rows
