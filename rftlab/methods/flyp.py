"""FLYP: fine-tune like you pretrain, with the contrastive loss on class captions."""
from __future__ import annotations

import torch

from ..encode import encode_image, encode_text
from ..losses import clip_loss
from ..zeroshot import zeroshot_head
from ._common import CaptionBank, step_generator
from .base import Method


class FLYP(Method):
    name = "flyp"
    world_recipe = {"lr": 1e-4, "weight_decay": 0.1}  # FT's lr / 3 (paper: 1e-5 against FT's 3e-5)
    paper_recipe = {"lr": 1e-5, "weight_decay": 0.1, "batch_size": 512, "epochs": 10, "warmup_steps": 500}  # ImageNet, ViT-B/16
    summary = "contrastive loss between images and '<template> <class>' captions; both towers trained"
    trains_text = True

    def setup(self, classifier, task, clip):
        self.tokenizer, self.classnames, self.templates = clip.tokenizer, task.classnames, task.templates
        self.bank = CaptionBank.from_templates(clip.tokenizer, task.classnames, self.caption_templates(task))

    def caption_templates(self, task) -> list:
        """Templates that turn a class name into a training caption."""
        return task.templates

    def parameters(self, classifier):
        # every CLIP parameter (logit_scale too); the head is rebuilt from the text tower
        return list(classifier.clip.parameters())

    def captions(self, labels, step):
        # drawn for the global batch, then sliced: each rank gets the captions of its rows
        return self.ranks.shard(self.bank.sample(self.ranks.gather(labels), step_generator(self.seed, step)))

    def contrastive(self, classifier, images, captions):
        model = classifier.clip
        img = self.ranks.gather_with_grad(encode_image(model, images))  # the global batch's features
        txt = self.ranks.gather_with_grad(encode_text(model, captions))
        scale = model.logit_scale.exp()
        return img, txt, scale, clip_loss(img, txt, scale)

    def loss(self, classifier, images, labels, step):
        *_, loss = self.contrastive(classifier, images, self.captions(labels, step))
        return {"loss": loss, "clip": loss}

    def refresh_head(self, classifier):
        with torch.no_grad():
            head = zeroshot_head(classifier.clip, self.tokenizer, self.classnames, self.templates)
            classifier.head.data.copy_(head.to(classifier.head.device))
            classifier.scale.fill_(classifier.clip.logit_scale.exp().item())
