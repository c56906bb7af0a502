"""FT: cross-entropy on the image tower and a head initialised from the zero-shot head (or at random)."""
import torch
import torch.nn.functional as F

from .base import HParam, Method


class FT(Method):
    name = "ft"
    world_recipe = {"lr": 3e-4, "weight_decay": 0.1}
    paper_recipe = {"lr": 3e-5, "weight_decay": 0.1, "batch_size": 512, "epochs": 10, "warmup_steps": 500, "grad_clip": 1.0}  # ImageNet, ViT-B/16
    summary = "cross-entropy fine-tuning of the image tower and the zero-shot-initialised head"
    hparams = {"head_init": HParam("zeroshot", "zeroshot", doc="the head's start: the zero-shot head, or random "
                                   "unit-norm columns (the FT that Kumar et al. compare LP-FT with)",
                                   choices=("zeroshot", "random"))}

    def setup(self, classifier, task, clip):
        if self.params.get("head_init") == "random":  # subclasses without the hyperparameter keep the zero-shot head
            g = torch.Generator().manual_seed(self.seed)
            head = F.normalize(torch.randn(tuple(classifier.head.shape), generator=g), dim=0)
            with torch.no_grad():
                classifier.head.copy_(head.to(classifier.head.device))

    def loss(self, classifier, images, labels, step):
        ce = F.cross_entropy(classifier(images), labels)
        return {"loss": ce, "ce": ce}
