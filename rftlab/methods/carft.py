"""CAR-FT: FT plus a KL that keeps the zero-shot model's distribution over contexts."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..losses import context_kl
from ..zeroshot import prompt_head
from .base import HParam, Method


def context_weights(model, tokenizer, classnames, templates) -> torch.Tensor:
    """W_ctx (D, K): column k is normalize(mean over classes of normalize(g(template_k(c))))."""
    from ..zeroshot import fill
    return prompt_head(model, tokenizer, [[fill(t, c) for c in classnames] for t in templates])


class CARFT(Method):
    name = "car-ft"
    world_recipe = {"lr": 3e-4, "weight_decay": 0.1}  # FT's (the paper: "recipe as FT")
    paper_recipe = {"lr": 3e-5, "weight_decay": 0.1, "batch_size": 512, "epochs": 10, "warmup_steps": 500, "grad_clip": 1.0}  # ImageNet, ViT-B/16
    summary = "cross-entropy + beta * KL(p_ctx(theta0) || p_ctx(theta)) over the task's contexts"
    anchor_terms = ("context_kl",)
    hparams = {
        "beta": HParam(1.0, 1.0, 0.0, None, "weight of the context KL (the paper's exact value is not public)"),
        "context_scale": HParam(None, 100.0, 0.0, None,
                                "s in softmax(s * f @ W_ctx); None: the pretrained model's own scale (100 for OpenAI CLIP)"),
    }

    search = {"beta": (0.3, 1.0, 3.0)}

    def setup(self, classifier, task, clip):
        contexts = task.context_templates
        if len(contexts) < 2:
            raise ValueError(f"CAR-FT needs several contexts (templates); task {task.name!r} has {len(contexts)}: "
                             f"give the task more templates or contexts")
        self.ref = classifier.frozen_copy()
        self.w_ctx = context_weights(self.ref.clip, clip.tokenizer, task.classnames, contexts)
        self.scale = self.context_scale if self.context_scale is not None \
            else self.ref.clip.logit_scale.exp().item()

    def loss(self, classifier, images, labels, step):
        feats = classifier.features(images)
        ce = F.cross_entropy(classifier.logits_from_features(feats), labels)
        with torch.no_grad():
            feats0 = self.ref.features(images)
        kl = context_kl(feats, feats0, self.w_ctx, self.scale)
        return {"loss": ce + self.beta * kl, "ce": ce, "context_kl": kl}
