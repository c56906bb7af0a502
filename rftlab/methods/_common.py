"""Small pieces several methods share."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..zeroshot import fill


def visual_projection(model) -> torch.Tensor:
    """The image tower's final projection as (width, embed_dim), whatever the tower:
    ViT ``visual.proj``, timm towers ``visual.head.proj.weight``^T, ResNet ``attnpool.c_proj``^T."""
    v = model.visual
    if isinstance(getattr(v, "proj", None), torch.Tensor):
        return v.proj
    head = getattr(v, "head", None)
    if head is not None and hasattr(head, "proj") and hasattr(head.proj, "weight"):
        return head.proj.weight.t()
    attn = getattr(v, "attnpool", None)
    if attn is not None:
        return attn.c_proj.weight.t()
    raise ValueError(f"cannot find the visual projection of {type(v).__name__}: CaRot needs one")


def text_projection(model) -> torch.Tensor:
    p = model.text_projection
    return p.weight.t() if hasattr(p, "weight") else p


def step_generator(seed: int, step: int) -> torch.Generator:
    """A generator that depends only on (seed, step): resumed runs draw the same numbers."""
    return torch.Generator().manual_seed(seed * 1_000_003 + step)


class CaptionBank:
    """Tokenised captions, T per class; ``sample`` draws one per label."""

    def __init__(self, tokenizer, captions_per_class: list[list[str]]):
        if not captions_per_class or not captions_per_class[0]:
            raise ValueError("this method trains on captions made from class names; the task has none")
        self.C, self.T = len(captions_per_class), len(captions_per_class[0])
        flat = [c for row in captions_per_class for c in row]
        self.tokens = tokenizer(flat).view(self.C, self.T, -1)

    @classmethod
    def from_templates(cls, tokenizer, classnames, templates) -> "CaptionBank":
        """'<template filled with the class name>' captions (FLYP)."""
        if not classnames:
            raise ValueError("this method trains on captions made from class names; the task has none")
        return cls(tokenizer, [[fill(t, c) for t in templates] for c in classnames])

    def sample(self, labels: torch.Tensor, g: torch.Generator) -> torch.Tensor:
        """Token rows (len(labels), L) on the labels' device; the template draws come from ``g``
        (a CPU generator) and nothing is read back from the device."""
        t = torch.randint(0, self.T, (len(labels),), generator=g)
        if self.tokens.device != labels.device:
            self.tokens = self.tokens.to(labels.device)  # once: the bank then lives beside the labels
        return self.tokens[labels, t.to(labels.device, non_blocking=True)]


def random_texts(tokenizer, m: int, length: int, g: torch.Generator) -> torch.Tensor:
    """Lipsum-FT's random texts: <start>, ``length`` uniform non-special token ids, <end>, padding."""
    if hasattr(tokenizer, "random_texts"):
        return tokenizer.random_texts(m, length, g)
    sot, eot = tokenizer.sot_token_id, tokenizer.eot_token_id
    ctx = getattr(tokenizer, "context_length", 77)
    if length > ctx - 2:
        raise ValueError(f"random text length {length} does not fit context length {ctx}")
    low = 0
    out = torch.zeros(m, ctx, dtype=torch.long)
    out[:, 0] = sot
    out[:, 1:length + 1] = torch.randint(low, min(sot, eot), (m, length), generator=g)
    out[:, length + 1] = eot
    return out


def encode_text(model, tokens: torch.Tensor) -> torch.Tensor:
    device = next(model.parameters()).device
    return F.normalize(model.encode_text(tokens.to(device, non_blocking=True)), dim=-1)


def encode_image(model, images: torch.Tensor) -> torch.Tensor:
    return F.normalize(model.encode_image(images), dim=-1)
