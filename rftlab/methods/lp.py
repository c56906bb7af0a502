"""LP: logistic regression on frozen, cached image features (head only)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..cache import cached_encode_split
from .base import HParam, Method


def fit_linear_probe(classifier, features: torch.Tensor, labels: torch.Tensor, weight_decay: float,
                     iters: int) -> list[dict]:
    """Fit ``classifier.head`` by full-batch L-BFGS on CE(scale * features @ head) + wd * ||head||^2,
    starting from the current head (the zero-shot head). Returns the loss history."""
    head = classifier.head
    device = head.device
    x, y = features.to(device), labels.to(device)
    scale = classifier.scale
    opt = torch.optim.LBFGS([head], lr=1.0, max_iter=iters, history_size=20, line_search_fn="strong_wolfe")
    history = []

    def closure():
        opt.zero_grad()
        ce = F.cross_entropy(scale * x @ head, y)
        loss = ce + weight_decay * head.pow(2).sum()
        loss.backward()
        history.append({"step": len(history) + 1, "loss": loss.item(), "ce": ce.item()})
        return loss

    head.requires_grad_(True)
    opt.step(closure)
    return history


def probe_head(trainer, weight_decay: float, iters: int) -> list[dict]:
    """Encode the training split once with the frozen tower, then fit the head on those features.
    The features come from disk when ``TrainConfig.feature_cache`` names a cache that already holds them."""
    feats = cached_encode_split(trainer.classifier, trainer.task.train, trainer.clip.preprocess,
                                cache=trainer.config.feature_cache)
    return fit_linear_probe(trainer.classifier, feats, trainer.task.train.labels, weight_decay, iters)


class LP(Method):
    name = "lp"
    summary = "linear probe: the head alone, by L-BFGS on cached frozen features"
    trainable = False
    hparams = {
        "weight_decay": HParam(1e-4, None, 0.0, None, "L2 penalty on the head (the inverse of sklearn's C)"),
        "iters": HParam(100, None, 1, 10_000, "L-BFGS iterations"),
    }

    def run(self, trainer):
        from ..train import TrainResult
        clf = trainer.classifier
        hist = probe_head(trainer, self.weight_decay, self.iters)
        trainer.history.extend(hist)
        trainer.validate()
        clf.eval()
        return TrainResult(clf, trainer.history, step=len(hist))
