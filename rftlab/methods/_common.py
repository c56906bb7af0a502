"""Small pieces several methods share."""
from __future__ import annotations

import torch

from ..zeroshot import fill


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
