"""FT: cross-entropy on the image tower and a head initialised from the zero-shot head."""
import torch.nn.functional as F

from .base import Method


class FT(Method):
    name = "ft"
    paper_recipe = {"lr": 3e-5, "weight_decay": 0.1, "batch_size": 512, "epochs": 10, "warmup_steps": 500, "grad_clip": 1.0}  # ImageNet, ViT-B/16
    summary = "cross-entropy fine-tuning of the image tower and the zero-shot-initialised head"

    def loss(self, classifier, images, labels, step):
        ce = F.cross_entropy(classifier(images), labels)
        return {"loss": ce, "ce": ce}
