"""Spuriosity: per-group accuracy, and how strongly a model ties images of each group to a
free-text description (``"on the water"``, ``"a sketch of a {}"``) before and after fine-tuning.

Alignment of description t with an image x under a model: cos(phi(x), psi(t)), phi the
normalised image feature and psi the normalised text feature from the same model's text
tower. A description with ``{}`` is filled with each image's own class name, so the class
word does not favour one class. The alignment of t with a group is its mean over the group's images.
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch

from ..data import Split, Task
from ..encode import check_tokenizer, clip_of, text_features
from ._common import check_classes, check_pair, check_texts, group_key, known_texts, logit_scale, value_names
from .inputs import image_features, resolve_split


def _need_groups(task: Task | None, split: Split) -> None:
    if task is None or not task.has_groups or "group" not in split.meta:
        name = task.name if task is not None else split.name
        raise ValueError(f"{name!r} has no group metadata (group_names and meta['group']): group metrics need a "
                         "task with groups, e.g. rftlab.load_task('spurious') or make_task(correlation=0.95)")


def _logits(model, split: Split, transform, logits, features=None) -> torch.Tensor:
    if logits is not None:
        logits = torch.as_tensor(logits)
        if len(logits) != len(split):
            raise ValueError(f"logits have {len(logits)} rows but split {split.name!r} has {len(split)} samples")
        return logits.float()
    f = image_features(model, split, transform, features)
    return model.logits_from_features(f.to(model.head.device)).detach().float().cpu()


def group_accuracy(model, task: Task, transform=None, *, split: str = "test",
                   logits: torch.Tensor | None = None, features: torch.Tensor | None = None) -> dict:
    """Accuracy per group from :meth:`rftlab.Task.group_metrics`, plus ``avg_acc`` (over the
    split's images) and ``gap`` (avg_acc - worst_group_acc). Pass ``logits`` or ``features`` to skip encoding."""
    if not isinstance(task, Task):
        raise TypeError("group_accuracy needs a Task (it knows the group names)")
    if split not in ("train", "val", "test", "id"):
        raise ValueError(f"group metrics are defined on train, val or test; got split={split!r}")
    s, _ = resolve_split(task, split)
    _need_groups(task, s)
    check_classes(model, task)
    lg = _logits(model, s, transform, logits, features)
    if lg.shape[1] != task.num_classes:
        raise ValueError(f"logits have {lg.shape[1]} classes but task {task.name!r} has {task.num_classes}")
    out = task.group_metrics(lg, split="test" if split == "id" else split)
    out["avg_acc"] = (lg.argmax(1) == s.labels).float().mean().item()
    out["gap"] = out["avg_acc"] - out["worst_group_acc"]
    return out


def group_table(models: Mapping[str, object], task: Task, transform=None, *, split: str = "test") -> list[dict]:
    """Rows ``model, group, acc, n, worst`` for each model (e.g. {"zero-shot": zs, "FT": ft})
    and group; ``worst`` marks each model's worst group. For bar charts before/after."""
    s, _ = resolve_split(task, split)
    rows = []
    for name, model in models.items():
        m = group_accuracy(model, task, transform, split=split)
        worst = min(m["group_acc"], key=m["group_acc"].get)
        g = s.meta["group"]
        for k, gname in enumerate(task.group_names):
            if gname in m["group_acc"]:
                rows.append({"model": name, "group": gname, "acc": m["group_acc"][gname],
                             "n": int((g == k).sum()), "worst": gname == worst})
    return rows


def zeroshot_group_accuracy(model, task: Task, tokenizer, transform=None, *, templates=None,
                            split: str = "test", features: torch.Tensor | None = None) -> dict:
    """Group accuracy of the zero-shot classifier rebuilt from ``model``'s own towers (class
    names through ``templates``, default the task's): zero-shot group robustness, which a
    fine-tuned image tower can gain or lose."""
    from ..classifier import ClipClassifier
    from ..zeroshot import zeroshot_head
    clip = clip_of(model)
    check_tokenizer(clip, tokenizer)
    head = zeroshot_head(clip, tokenizer, task.classnames, templates or task.templates)
    zs = ClipClassifier(clip, head.cpu(), logit_scale(clip))
    s, _ = resolve_split(task, split)
    f = image_features(model, s, transform, features)
    return group_accuracy(zs, task, split=split, logits=zs.logits_from_features(f.to(zs.head.device)).detach().cpu())


def _alignment(model, split: Split, task: Task | None, descriptions: Sequence[str], tokenizer,
               features: torch.Tensor) -> torch.Tensor:
    """(N, K): cos(phi(x_i), psi(t_k)), t_k filled with x_i's class name where it holds '{}'."""
    from ..zeroshot import fill
    out = torch.empty(len(split), len(descriptions))
    plain = [k for k, d in enumerate(descriptions) if "{}" not in d]
    if plain:
        out[:, plain] = features @ text_features(model, tokenizer, [descriptions[k] for k in plain]).cpu().t()
    templated = [k for k, d in enumerate(descriptions) if "{}" in d]
    if templated:
        if task is None:
            raise ValueError(f"descriptions with '{{}}' ({descriptions[templated[0]]!r}) are filled with each image's "
                             "class name: pass the Task (it has the class names), not a bare Split")
        names = task.classnames
        texts = [fill(descriptions[k], c) for k in templated for c in names]
        t = text_features(model, tokenizer, texts).cpu().view(len(templated), len(names), -1)  # K', C, D
        per_class = torch.einsum("nd,kcd->nkc", features, t)                            # N, K', C
        out[:, templated] = per_class.gather(2, split.labels.view(-1, 1, 1).expand(-1, len(templated), 1)).squeeze(2)
    return out


def description_alignment(model, data: Task | Split, descriptions: str | Sequence[str], tokenizer,
                          transform=None, *, by: str | None = "group", split: str = "test",
                          features: torch.Tensor | None = None) -> list[dict]:
    """Mean alignment cos(phi(x), psi(t)) of each description with the images of each value of
    ``by`` (a metadata key such as group, place, background, style, domain, or ``label``;
    ``None`` pools every image). Rows: ``description, group, value, alignment, n``.

    Raises when a description is empty or made only of words the tokenizer does not know.
    """
    descriptions = check_texts(tokenizer, descriptions)
    s, task = resolve_split(data, split)
    f = image_features(model, s, transform, features)
    a = _alignment(model, s, task, descriptions, tokenizer, f)
    return _group_rows(a, s, task, descriptions, by, "alignment")


def _group_rows(values: torch.Tensor, s: Split, task, descriptions, by, column: str) -> list[dict]:
    if by is None:
        return [{"description": d, "group": "all", "value": -1, column: values[:, k].mean().item(), "n": len(s)}
                for k, d in enumerate(descriptions)]
    key = group_key(s, by)
    names = value_names(by, task, key)
    rows = []
    for k, d in enumerate(descriptions):
        for v, vname in names.items():
            m = key == v
            rows.append({"description": d, "group": vname, "value": v, column: values[m, k].mean().item(),
                         "n": int(m.sum())})
    return rows


def description_shift(theta0, theta, data: Task | Split, descriptions: str | Sequence[str], tokenizer,
                      transform=None, *, by: str | None = "group", split: str = "test",
                      features0: torch.Tensor | None = None, features: torch.Tensor | None = None) -> list[dict]:
    """:func:`description_alignment` under theta0 (``before``) and theta (``after``), each with
    its own towers, per value of ``by``. Rows: ``description, group, value, before, after, change, n``."""
    check_pair(theta0, theta)
    descriptions = check_texts(tokenizer, descriptions)
    s, task = resolve_split(data, split)
    a0 = _alignment(theta0, s, task, descriptions, tokenizer, image_features(theta0, s, transform, features0))
    a1 = _alignment(theta, s, task, descriptions, tokenizer, image_features(theta, s, transform, features))
    before = _group_rows(a0, s, task, descriptions, by, "before")
    after = _group_rows(a1, s, task, descriptions, by, "after")
    return [{**b, "after": a["after"], "change": a["after"] - b["before"]} for b, a in zip(before, after)]


def candidate_descriptions(task: Task | None = None, tokenizer=None,
                           sources: Sequence[str] | Callable = ("factors", "phrases")) -> list[str]:
    """Candidate descriptions to rank, without any network.

    ``factors``: the phrases of the task's metadata values as class templates
    (:meth:`rftlab.data.Task.descriptions`; on world tasks every background phrase, colour and
    style prefix: ``"{} on the water"``, ``"blue {}"``, ``"a sketch of a {}"``; none without a
    task). ``phrases``: rftlab's StarFT-style pools (:data:`rftlab.phrases.PHRASE_POOLS`). A
    callable is called with the task (or None) and returns a list of strings. With a tokenizer
    that knows its vocabulary (the world's), candidates with unknown words are dropped.
    """
    if callable(sources):
        out = list(sources(task))
    else:
        if isinstance(sources, str):
            sources = [sources]
        out = []
        for src in sources:
            if src == "factors":
                out += task.descriptions() if task is not None else []
            elif src == "phrases":
                from ..phrases import phrase_pool
                out += phrase_pool()
            else:
                raise ValueError(f"unknown candidate source {src!r}; choose 'factors', 'phrases' or pass a callable")
    out = list(dict.fromkeys(out))
    if tokenizer is not None:
        out = known_texts(tokenizer, out)
    if not out:
        raise ValueError("no candidate descriptions left (every one has words the tokenizer does not know)")
    return out


def _gap(a: torch.Tensor, s: Split, by: str) -> torch.Tensor:
    """(K,) within-class spread of mean alignment over the values of ``by``, averaged over classes
    (over all images at once when ``by`` is the label itself)."""
    key = group_key(s, by)

    def spread(mask):
        vals = torch.unique(key[mask])
        m = torch.stack([a[mask & (key == v)].mean(0) for v in vals])
        return m.max(0).values - m.min(0).values

    if by in ("label", "class"):
        return spread(torch.ones(len(key), dtype=torch.bool))
    per_class = [spread(s.labels == c) for c in torch.unique(s.labels) if len(torch.unique(key[s.labels == c])) > 1]
    if not per_class:
        raise ValueError(f"no class has two values of {by!r} in split {s.name!r}: the gap is undefined; "
                         "use by=None or another key")
    return torch.stack(per_class).mean(0)


def rank_descriptions(theta0, theta, data: Task | Split, tokenizer, transform=None, *,
                      candidates: Sequence[str] | Callable | None = None, by: str | None = "group",
                      split: str = "test", features0: torch.Tensor | None = None,
                      features: torch.Tensor | None = None, top: int | None = None,
                      sort: str = "change") -> list[dict]:
    """Candidate descriptions ranked by how much fine-tuning increased their pull.

    The pull of t under a model is its mean alignment over the split's images. Rows (largest
    ``change`` first): ``rank, description, before, after, change`` and, when ``by`` names a
    metadata key, ``gap_before`` / ``gap_after`` and ``gap_change``: how strongly t separates
    images of the same class by ``by`` (per class, the largest minus the smallest mean alignment
    over the values of ``by``, averaged over classes; for ``by="label"``, over classes instead).
    With ``by="group"`` or ``"place"`` on a Waterbirds-like task that is the spurious attribute. ``candidates``: a list,
    a callable (called with the task), or None for :func:`candidate_descriptions`. ``sort``:
    ``"change"`` (the pull) or ``"gap_change"`` (the separation, which needs ``by``).
    """
    if sort not in ("change", "gap_change") or (sort == "gap_change" and by is None):
        raise ValueError(f"sort={sort!r}: choose 'change', or 'gap_change' together with a metadata key in by=")
    check_pair(theta0, theta)
    s, task = resolve_split(data, split)
    if candidates is None or callable(candidates):
        candidates = candidate_descriptions(task, tokenizer, candidates or ("factors", "phrases"))
    candidates = check_texts(tokenizer, candidates)
    a0 = _alignment(theta0, s, task, candidates, tokenizer, image_features(theta0, s, transform, features0))
    a1 = _alignment(theta, s, task, candidates, tokenizer, image_features(theta, s, transform, features))
    before, after = a0.mean(0), a1.mean(0)
    rows = [{"description": d, "before": before[k].item(), "after": after[k].item(),
             "change": (after[k] - before[k]).item()} for k, d in enumerate(candidates)]
    if by is not None:
        gap0, gap1 = _gap(a0, s, by), _gap(a1, s, by)
        for k, r in enumerate(rows):
            r.update(gap_before=gap0[k].item(), gap_after=gap1[k].item(), gap_change=(gap1[k] - gap0[k]).item())
    rows.sort(key=lambda r: r[sort], reverse=True)
    for i, r in enumerate(rows):
        r["rank"] = i + 1
    return rows[:top] if top else rows
