"""Context awareness (CAR-FT): each image's distribution over contexts under theta0 and theta,
the KL between them, the contexts a fine-tuned model stopped seeing, and zero-shot
recognition of the context itself (style, background) before and after fine-tuning.

Contexts are the task's contexts (``Task.context_templates``: on the world, 81 style, place and
colour phrases such as "a sketch of a {}", "a {} on the grass"; otherwise its templates), as
CAR-FT uses. Context weights W_ctx (D, K) are :func:`rftlab.methods.carft.context_weights` from
theta0's text tower; an image's context distribution is p_ctx(x) = softmax(s * W_ctx^T phi(x)),
with s the model's own logit scale by default (CAR-FT's default in rftlab; 100 for OpenAI CLIP).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from ..data import Split, Task
from ..encode import check_tokenizer, clip_of
from ._common import check_pair, group_key
from .inputs import image_features, resolve_split


def _weights(model, tokenizer, task: Task | None, templates, classnames, weights) -> tuple[torch.Tensor, list]:
    templates = list(templates if templates is not None else (task.context_templates if task is not None else []))
    if weights is not None:
        weights = torch.as_tensor(weights).float().cpu()
        return weights, templates or [f"context {k}" for k in range(weights.shape[1])]
    classnames = list(classnames if classnames is not None else (task.classnames if task is not None else []))
    if len(templates) < 2 or not classnames:
        raise ValueError("context distributions need several templates (the contexts) and the class names: "
                         "pass a Task, or templates=[...] and classnames=[...] (or weights=W_ctx)")
    from ..methods.carft import context_weights
    check_tokenizer(model, tokenizer)
    return context_weights(clip_of(model), tokenizer, classnames, templates).float().cpu(), templates


def own_scale(model, scale: float | None = None) -> float:
    """``scale``, or the model's own logit scale (exp of its ``logit_scale``) when it is None."""
    return float(scale) if scale is not None else clip_of(model).logit_scale.exp().item()


def context_kl_per_image(features: torch.Tensor, features0: torch.Tensor, weights: torch.Tensor,
                         scale: float) -> torch.Tensor:
    """KL(p_ctx(x; theta0) || p_ctx(x; theta)) per image, (N,); its mean is
    :func:`rftlab.losses.context_kl`."""
    logp = F.log_softmax(scale * features @ weights, dim=-1)
    logp0 = F.log_softmax(scale * features0 @ weights, dim=-1)
    return (logp0.exp() * (logp0 - logp)).sum(-1)


def context_distribution(model, data: Task | Split, tokenizer, transform=None, *, split: str = "test",
                         templates: Sequence[str] | None = None, classnames: Sequence[str] | None = None,
                         weights: torch.Tensor | None = None, scale: float | None = None,
                         features: torch.Tensor | None = None) -> torch.Tensor:
    """p_ctx(x) per image, (N, K), over the K contexts (the task's by default). W_ctx comes from
    ``model``'s own text tower unless ``weights`` is given; ``scale`` None: the model's own."""
    s, task = resolve_split(data, split)
    w, _ = _weights(model, tokenizer, task, templates, classnames, weights)
    f = image_features(model, s, transform, features)
    if w.shape[0] != f.shape[1]:
        raise ValueError(f"context weights are {w.shape[0]}-dimensional but the features are {f.shape[1]}-dimensional")
    return F.softmax(own_scale(model, scale) * f @ w, dim=-1)


@dataclass
class ContextShift:
    """theta0's and theta's context distributions on one split, and the per-image KL."""

    contexts: list[str]
    p0: torch.Tensor            # (N, K) under theta0
    p: torch.Tensor             # (N, K) under theta
    kl: torch.Tensor            # (N,) KL(p0 || p)
    weights: torch.Tensor = field(repr=False, default=None)  # W_ctx (D, K)

    @property
    def mean_kl(self) -> float:
        return self.kl.mean().item()

    def table(self) -> list[dict]:
        """Per context: mean probability under theta0 (``p0``) and theta (``p``), ``change``,
        ``ratio`` ((p + 1e-8) / (p0 + 1e-8)), and the share of images whose most likely context it is (``top1_0``, ``top1``)."""
        m0, m1 = self.p0.mean(0), self.p.mean(0)
        K = len(self.contexts)
        t0 = torch.bincount(self.p0.argmax(1), minlength=K).float() / len(self.p0)
        t1 = torch.bincount(self.p.argmax(1), minlength=K).float() / len(self.p)
        return [{"context": c, "p0": m0[k].item(), "p": m1[k].item(), "change": (m1[k] - m0[k]).item(),
                 "ratio": ((m1[k] + 1e-8) / (m0[k] + 1e-8)).item(), "top1_0": t0[k].item(), "top1": t1[k].item()}
                for k, c in enumerate(self.contexts)]

    def stopped_seeing(self, ratio: float = 0.5, min_p0: float = 0.01) -> list[dict]:
        """Contexts theta0 saw (mean probability at least ``min_p0``) whose mean probability under
        theta fell below ``ratio`` times theta0's, most diminished first (rows of :meth:`table`)."""
        rows = [r for r in self.table() if r["p0"] >= min_p0 and r["ratio"] < ratio]
        return sorted(rows, key=lambda r: r["ratio"])


def context_shift(theta0, theta, data: Task | Split, tokenizer, transform=None, *, split: str = "test",
                  templates: Sequence[str] | None = None, classnames: Sequence[str] | None = None,
                  weights: torch.Tensor | None = None, scale: float | None = None,
                  features0: torch.Tensor | None = None, features: torch.Tensor | None = None) -> ContextShift:
    """Context distributions of theta0 and theta per image with one W_ctx (theta0's text tower,
    as CAR-FT) and one scale (theta0's own unless ``scale`` is given), and KL(p0 || p) per image
    (:func:`context_kl_per_image`)."""
    check_pair(theta0, theta)
    s, task = resolve_split(data, split)
    w, contexts = _weights(theta0, tokenizer, task, templates, classnames, weights)
    f0 = image_features(theta0, s, transform, features0)
    f = image_features(theta, s, transform, features)
    if w.shape[0] != f.shape[1]:
        raise ValueError(f"context weights are {w.shape[0]}-dimensional but the features are {f.shape[1]}-dimensional")
    scale = own_scale(theta0, scale)
    p0 = F.softmax(scale * f0 @ w, dim=-1)
    p = F.softmax(scale * f @ w, dim=-1)
    return ContextShift(contexts, p0, p, context_kl_per_image(f, f0, w, scale), w)


def context_recognition(model, data: Task | Split, tokenizer, transform=None, *, factor: str = "style",
                        split: str = "all", prompts: Mapping[str, Sequence[str]] | None = None,
                        key: str | None = None, features: torch.Tensor | None = None) -> dict:
    """Zero-shot recognition of a context factor: classify each image among the factor's values
    with a prompt head (:func:`rftlab.zeroshot.prompt_head`, ``model``'s own text tower) and
    score it against the metadata.

    ``factor``: a metadata key whose values the task has prompts for (``task.metadata_prompts``:
    on world tasks style, background, color, shape and place; Waterbirds' place, DomainNet's
    domain...). Otherwise pass ``prompts`` ({value name: texts}, in metadata index order) and
    ``key`` (the metadata key; default ``factor``). ``split="all"`` pools the task's test sets (ID
    and OOD), so every style appears. Returns ``factor, accuracy, per_value`` (name -> accuracy),
    ``n``, ``confusion`` (true value x predicted value counts).
    """
    from ..zeroshot import prompt_head
    key = key or factor
    s, task = resolve_split(data, split)
    truth = group_key(s, key)
    if prompts is None:
        known = task.metadata_prompts if task is not None else {}
        if factor not in known:
            raise ValueError(f"no prompts for the values of {factor!r}: "
                             + (f"task {task.name!r} has prompts for {', '.join(known) or 'no metadata'}"
                                if task is not None else "a bare Split carries none, pass the Task")
                             + "; or pass prompts={value name: [texts]} (in metadata index order) and key=")
        prompts = known[factor]
    check_tokenizer(model, tokenizer)
    head = prompt_head(clip_of(model), tokenizer, prompts).float().cpu()
    f = image_features(model, s, transform, features)
    pred = (f @ head).argmax(1)
    V = head.shape[1]
    if int(truth.max()) >= V:
        raise ValueError(f"metadata {key!r} has values up to {int(truth.max())} but only {V} prompt sets were given")
    names = list(prompts)
    conf = torch.zeros(V, V, dtype=torch.long)
    conf.index_put_((truth, pred), torch.ones_like(truth), accumulate=True)
    per = {names[v]: (conf[v, v] / conf[v].sum()).item() for v in range(V) if conf[v].sum() > 0}
    return {"factor": factor, "accuracy": (pred == truth).float().mean().item(), "per_value": per,
            "n": len(s), "confusion": conf, "values": names}


def context_recognition_table(models: Mapping[str, object], data: Task | Split, tokenizer, transform=None, *,
                              factors: Sequence[str] = ("style", "background"), split: str = "all") -> list[dict]:
    """Rows ``model, factor, accuracy`` for each model (e.g. {"zero-shot": zs, "FT": ft}) and factor."""
    s, _ = resolve_split(data, split)
    rows = []
    for name, model in models.items():
        f = image_features(model, s, transform)  # encoded once per model
        for fac in factors:
            r = context_recognition(model, data, tokenizer, factor=fac, split=split, features=f)
            rows.append({"model": name, "factor": fac, "accuracy": r["accuracy"], "n": r["n"]})
    return rows
