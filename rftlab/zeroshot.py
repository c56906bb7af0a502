"""Zero-shot heads: class names and templates through the text tower."""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F

from .encode import text_features


def prompt_head(model, tokenizer: Callable, prompts: Mapping[str, Sequence[str]] | Sequence[Sequence[str]]) -> torch.Tensor:
    """Head of shape (D, C): column c is the normalised mean of class c's normalised prompt features
    (:func:`rftlab.encode.text_features` of ``model``, a CLIP or anything holding one)."""
    groups = list(prompts.values()) if isinstance(prompts, Mapping) else list(prompts)
    if not groups or any(len(g) == 0 for g in groups):
        raise ValueError("every class needs at least one prompt")
    flat = [p for g in groups for p in g]
    emb = text_features(model, tokenizer, flat)
    cols, i = [], 0
    for g in groups:
        cols.append(F.normalize(emb[i:i + len(g)].mean(0), dim=-1))
        i += len(g)
    return torch.stack(cols, dim=1)


def get_templates(name: str) -> list:
    """Named template sets: ``world`` (rftlab's), ``imagenet`` (OpenAI's 80) and
    ``imagenet-simple`` (OpenAI's 7-template subset)."""
    if name == "world":
        from .world.captions import WORLD_TEMPLATES
        return list(WORLD_TEMPLATES)
    from open_clip import zero_shot_metadata as meta
    sets = {"imagenet": meta.OPENAI_IMAGENET_TEMPLATES, "imagenet-simple": meta.SIMPLE_IMAGENET_TEMPLATES}
    if name not in sets:
        raise ValueError(f"unknown template set {name!r}; choose world, imagenet or imagenet-simple")
    return list(sets[name])


def fill(template, classname: str) -> str:
    """A template is a format string with '{}' or a callable (open_clip's style)."""
    return template(classname) if callable(template) else template.format(classname)


def zeroshot_head(model, tokenizer: Callable, classnames: Sequence[str], templates: Sequence) -> torch.Tensor:
    """CLIP's template-ensembled zero-shot head W0 (D, C)."""
    if not classnames:
        raise ValueError("a zero-shot head needs class names")
    if not templates:
        raise ValueError("a zero-shot head needs at least one template, e.g. 'a photo of a {}.'")
    bad = [t for t in templates if not callable(t) and "{}" not in t]
    if bad:
        raise ValueError(f"templates must contain '{{}}' where the class name goes; these do not: {bad[:3]}")
    return prompt_head(model, tokenizer, [[fill(t, c) for t in templates] for c in classnames])
