"""LP: logistic regression on frozen, cached image features (head only), its L2 strength chosen on val."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import PROBE_GRID, HParam, Method, Probe, probe_grid


def fit_linear_probe(classifier, features: torch.Tensor, labels: torch.Tensor, weight_decay: float,
                     iters: int) -> list[dict]:
    """Fit ``classifier.head`` by full-batch L-BFGS on CE(scale * features @ head) + wd * ||head||^2,
    starting from the current head. Returns the loss history. (The Trainer's probe stage.)"""
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


def probe_weight_decays(value) -> tuple[float, ...]:
    """``"val"`` -> the grid chosen from on val; a number -> that one."""
    return PROBE_GRID if value == "val" else (float(value),)


class LP(Method):
    name = "lp"
    summary = "linear probe: the head alone, by L-BFGS on cached frozen features; L2 strength chosen on val"
    trainable = False
    tunes_lr = False
    hparams = {
        "weight_decay": HParam("val", None, 0.0, None, "L2 penalty on the head (the inverse of sklearn's C); "
                               "'val': the best on val accuracy of 1e-1, 1e-2, ..., 1e-6", choices=("val",)),
        "iters": HParam(100, None, 1, 10_000, "L-BFGS iterations"),
    }

    @classmethod
    def grid(cls, budget: int) -> list[dict]:
        return [{"weight_decay": wd} for wd in probe_grid(budget)]  # no learning rate: the budget goes to L2

    def probe(self) -> Probe:
        return Probe(probe_weight_decays(self.weight_decay), self.iters)
