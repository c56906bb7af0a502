"""Lipsum-FT: FT plus a penalty on the change of image-text energies on random texts."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..encode import encode_text
from ..losses import lipsum_regularizer
from ._common import step_generator
from .base import HParam, Method


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


class LipsumFT(Method):
    name = "lipsum-ft"
    world_recipe = {"lr": 1e-4, "weight_decay": 0.0}  # FT's lr / 3 and no weight decay, as the paper
    paper_recipe = {"lr": 1e-5, "weight_decay": 0.0, "batch_size": 256, "epochs": 10, "warmup": 0.1}  # ImageNet, ViT-B/16
    summary = "cross-entropy + lambda * energy gap to theta0 on M fresh random texts per step"
    anchor_terms = ("lipsum",)
    hparams = {
        "lam": HParam(1.0, 1.0, 0.0, None, "weight of the energy-gap regulariser"),
        "m": HParam(80, 80, 1, 4096, "random texts per step"),
        "length": HParam(8, 8, 1, 64, "tokens per random text"),
    }

    search = {"lam": (0.3, 1.0, 3.0)}

    def setup(self, classifier, task, clip):
        self.ref = classifier.frozen_copy()            # theta0: image tower and text tower
        self.scale = clip.model.logit_scale.exp().item()  # the pretrained model's s, inside the square
        self.tokenizer = clip.tokenizer

    def loss(self, classifier, images, labels, step):
        feats = classifier.features(images)
        ce = F.cross_entropy(classifier.logits_from_features(feats), labels)
        tokens = random_texts(self.tokenizer, self.m, self.length, step_generator(self.seed, step))
        with torch.no_grad():  # one frozen image forward and one frozen text forward per step
            feats0 = self.ref.features(images)
            text = encode_text(self.ref.clip, tokens)
        reg = lipsum_regularizer(feats, feats0, text, self.scale)
        return {"loss": ce + self.lam * reg, "ce": ce, "lipsum": reg}
