"""A CLIP with a linear head: what fine-tuning trains and what evaluation scores."""
from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from .zeroshot import zeroshot_head


class ClipClassifier(nn.Module):
    """logits = scale * normalize(f(x)) @ head, where head (D, C) starts as the zero-shot head W0.

    It wraps the whole CLIP (``self.clip``) so methods that train the text tower (FLYP,
    CaRot, StarFT) and methods that read it (Lipsum-FT, CAR-FT) work on the same module.
    """

    def __init__(self, clip_model: nn.Module, head: torch.Tensor, scale: float | None = None):
        super().__init__()
        self.clip = clip_model
        self.head = nn.Parameter(head.detach().clone().float())
        if scale is None:
            scale = float(clip_model.logit_scale.exp().item())
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.train(clip_model.training)  # a wrapper must not flip the CLIP it wraps into train mode later

    @classmethod
    def zeroshot(cls, clip, classnames, templates, scale: float | None = None) -> "ClipClassifier":
        """The zero-shot classifier of a :class:`~rftlab.models.ClipModel` for these classes."""
        head = zeroshot_head(clip.model, clip.tokenizer, classnames, templates)
        return cls(clip.model, head, scale)

    @property
    def num_classes(self) -> int:
        return self.head.shape[1]

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.clip.encode_image(images), dim=-1)

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.scale * features @ self.head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits_from_features(self.features(images))

    def frozen_copy(self) -> "ClipClassifier":
        """A deep copy in eval mode with gradients off: a frozen reference (theta0, a teacher)."""
        ref = copy.deepcopy(self)
        ref.eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        return ref
