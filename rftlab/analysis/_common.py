"""Checks and small helpers the analyses share (models, texts, metadata), with clear errors."""
from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import torch

from ..classifier import ClipClassifier, check_head
from ..data import Split, Task
from ..encode import clip_of, embed_dim


def logit_scale(model) -> float:
    """exp(logit_scale) of the CLIP inside ``model`` (the multiplier, e.g. 100)."""
    return float(clip_of(model).logit_scale.exp().item())


def check_pair(model0, model1) -> None:
    """theta0 and theta must share an embedding width (and class count when both have heads)."""
    d0, d1 = embed_dim(model0), embed_dim(model1)
    if d0 != d1:
        raise ValueError(f"the two models embed into different widths ({d0} vs {d1}): compare a "
                         "fine-tuned model with the model it started from")
    h0, h1 = getattr(model0, "head", None), getattr(model1, "head", None)
    if isinstance(h0, torch.Tensor) and isinstance(h1, torch.Tensor) and h0.shape != h1.shape:
        raise ValueError(f"the two classifiers have heads of shape {tuple(h0.shape)} and {tuple(h1.shape)}: "
                         "they were built for different tasks")


def check_classes(model, task: Task | None) -> None:
    """A classifier's head must have one column per class of the task."""
    if task is None or not isinstance(model, ClipClassifier):
        return
    check_head(model, task)


def check_texts(tokenizer, texts: Sequence[str], what: str = "description") -> list[str]:
    """Texts as a list; raises when one is empty or made only of words the tokenizer does not know."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise ValueError(f"give at least one {what}")
    unknown_words = getattr(tokenizer, "unknown_words", None)
    for t in texts:
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"{what} {t!r} is empty: give some words, e.g. 'on the water'")
        if unknown_words is None:
            continue
        text = t.replace("{}", " ")
        unknown = unknown_words(text)
        encode, unk = getattr(tokenizer, "encode", None), getattr(tokenizer, "unk_token_id", None)
        if encode is not None and unk is not None:
            nothing = all(i == unk for i in encode(text))
        else:
            nothing = bool(unknown) and len(unknown) >= len(text.split())
        if nothing:
            raise ValueError(f"{what} {t!r} tokenises to nothing: the tokenizer knows none of its words "
                             f"{unknown}. Use words it knows, e.g. {', '.join(_suggest(tokenizer, unknown))}")
        if unknown:
            warn(f"{what} {t!r}: the tokenizer does not know {unknown}; they become <unk> tokens")
    return texts


def _suggest(tokenizer, unknown: Sequence[str], n: int = 12) -> list[str]:
    """Known words close to the unknown ones, then a spread over the vocabulary."""
    import difflib
    known = [w for w in getattr(tokenizer, "words", []) if len(w) > 2]
    close = [m for w in unknown for m in difflib.get_close_matches(w, known, n=2, cutoff=0.6)]
    spread = known[:: max(1, len(known) // n)]
    return list(dict.fromkeys(close + spread))[:n]


def known_texts(tokenizer, texts: Sequence[str]) -> list[str]:
    """The texts whose every word the tokenizer knows (all texts for tokenizers without a vocabulary check)."""
    unknown_words = getattr(tokenizer, "unknown_words", None)
    if unknown_words is None:
        return list(texts)
    return [t for t in texts if not unknown_words(t.replace("{}", " "))]


def value_names(key: str, task: Task | None, values: torch.Tensor) -> dict[int, str]:
    """Readable names for the values of a metadata key (:meth:`rftlab.data.Task.value_names`:
    groups, classes, the task's ``metadata_names``); a value the task does not name is its number."""
    vals = [int(v) for v in torch.unique(torch.as_tensor(values))]
    table = task.value_names(key) if task is not None else None
    return {v: (table[v] if table is not None and 0 <= v < len(table) else str(v)) for v in vals}


def group_key(split: Split, by: str) -> torch.Tensor:
    """The per-sample values of ``by``: a metadata key, or ``label``/``class`` for the labels."""
    if by in ("label", "class"):
        return split.labels
    if by not in split.meta:
        raise ValueError(f"split {split.name!r} has no metadata {by!r}; it has: "
                         f"{', '.join(['label', *split.meta]) }. Group metadata comes with world tasks made "
                         "with a correlation (rftlab.spurious_task / make_task(correlation=...))")
    return torch.as_tensor(split.meta[by]).long()


def warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)


def first_value(v):
    """A metric value from an evaluate() dict or a compare() row ({"mean": ...})."""
    if isinstance(v, Mapping):
        return v.get("mean")
    return v
