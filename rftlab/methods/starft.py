"""StarFT: FLYP plus a KL that keeps the zero-shot model's view of spuriosity-injected captions."""
from __future__ import annotations

import math

import torch

from ..encode import encode_image, encode_text
from ..losses import clip_loss, spurious_alignment_kl
from ._common import CaptionBank, step_generator
from .base import HParam
from .flyp import FLYP


class StarFT(FLYP):
    name = "starft"
    paper_recipe = {"lr": 1e-5, "weight_decay": 0.1, "batch_size": 512, "epochs": 10, "warmup_steps": 500}  # ImageNet, ViT-B/16
    summary = "FLYP + lambda_e * KL(theta0 || theta) on captions with injected spurious phrases"
    anchor_terms = ("spurious_kl",)
    hparams = {
        "lam": HParam(0.5, 0.5, 0.0, None, "initial weight of the KL; decays linearly over epochs"),
        "caption": HParam("a photo of a {}", "a photo of a {}.", None, None, "the class caption"),
    }

    search = {"lam": (0.15, 0.5, 1.5)}

    def setup(self, classifier, task, clip):
        super().setup(classifier, task, clip)
        self.phrases = task.spurious_phrases()
        self.spurious = CaptionBank(clip.tokenizer, [[self.caption.format(p.format(c)) for p in self.phrases]
                                                     for c in task.classnames])
        self.teacher = classifier.frozen_copy().clip
        self.s0 = self.teacher.logit_scale.exp().item()
        self.steps_per_epoch = max(1, len(task.train) // self.config.batch_size) if self.config else 1

    def caption_templates(self, task) -> list:
        if "{}" not in self.caption:
            raise ValueError(f"caption {self.caption!r} needs '{{}}' where the class name goes")
        return [self.caption]

    def weight(self, step: int, total_steps: int) -> float:
        """lambda_e = lambda * (1 - (e + 1) / E) for epoch e of E."""
        epochs = max(1, math.ceil(total_steps / self.steps_per_epoch))
        e = min(step // self.steps_per_epoch, epochs - 1)
        return self.lam * (1 - (e + 1) / epochs)

    def loss(self, classifier, images, labels, step):
        model = classifier.clip
        g = step_generator(self.seed, step)
        rk = self.ranks  # one process: every rk.* call is the identity
        all_labels = rk.gather(labels)  # captions are drawn for the global batch; each rank takes its rows
        caps = rk.shard(self.bank.sample(all_labels, g))
        spur = rk.shard(self.spurious.sample(all_labels, g))
        img = rk.gather_with_grad(encode_image(model, images))
        txt, stxt = (rk.gather_with_grad(t) for t in encode_text(model, torch.cat([caps, spur])).split(len(labels)))
        flyp = clip_loss(img, txt, model.logit_scale.exp())
        with torch.no_grad():
            t_img = rk.gather(encode_image(self.teacher, images))
            t_stxt = rk.gather(encode_text(self.teacher, spur))
        z = self.s0 * img @ stxt.t()
        z0 = self.s0 * t_img @ t_stxt.t()
        kl = spurious_alignment_kl(z, z0, all_labels)
        total = self.config.steps if self.config else 1
        lam = self.weight(step, total)
        return {"loss": flyp + lam * kl, "clip": flyp, "spurious_kl": kl, "lambda_e": torch.tensor(lam)}
