"""L2-SP: FT plus a pull towards the pretrained weights."""
import torch.nn.functional as F

from ..losses import l2sp
from .base import HParam, Method


class L2SP(Method):
    name = "l2-sp"
    world_recipe = {"lr": 3e-4, "weight_decay": 0.1}  # FT's
    paper_recipe = {"lr": 3e-5, "weight_decay": 0.1, "batch_size": 512, "epochs": 10, "warmup_steps": 500, "grad_clip": 1.0}  # ImageNet, ViT-B/16
    summary = "cross-entropy + (alpha/2) * ||theta - theta0||^2 over every trained tensor"
    anchor_terms = ("l2sp",)
    hparams = {"alpha": HParam(0.1, None, 0.0, None, "weight of the pull to theta0 (paper: a grid 1e-4..1e-1)")}

    search = {"alpha": (1e-3, 1e-2, 1e-1)}

    def setup(self, classifier, task, clip):
        self._params = self.parameters(classifier)
        self._params0 = [p.detach().clone() for p in self._params]

    def loss(self, classifier, images, labels, step):
        ce = F.cross_entropy(classifier(images), labels)
        reg = l2sp(self._params, self._params0)  # 0.5 * sum ||theta - theta0||^2
        return {"loss": ce + self.alpha * reg, "ce": ce, "l2sp": reg}
