"""WiSE-FT: fine-tune, then interpolate every floating-point weight with theta0."""
from __future__ import annotations

import torch

from .base import HParam
from .ft import FT

ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))   # the alphas of a WiSE-FT curve, unless told otherwise


def wise_ft(state_dict0: dict, state_dict1: dict, alpha: float) -> dict:
    """(1 - alpha) * theta0 + alpha * theta1 over floating tensors; other tensors (integer
    buffers such as BatchNorm's step counter) are copied from the nearer endpoint. Tensors equal
    at both ends are copied bit for bit (an unchanged image tower keeps its feature-cache key)."""
    if not 0.0 <= float(alpha) <= 1.0:
        raise ValueError(f"alpha must lie in [0, 1] (0 = theta0, 1 = fine-tuned); got {alpha}")
    if state_dict0.keys() != state_dict1.keys():
        only0 = sorted(set(state_dict0) - set(state_dict1))[:3]
        only1 = sorted(set(state_dict1) - set(state_dict0))[:3]
        raise ValueError(f"the two state dicts come from different architectures "
                         f"(only in the first: {only0}, only in the second: {only1})")
    out = {}
    for k, a in state_dict0.items():
        b = state_dict1[k]
        if a.shape != b.shape:
            raise ValueError(f"tensor {k!r} has shape {tuple(a.shape)} in one state dict and "
                             f"{tuple(b.shape)} in the other: different architectures")
        if a.is_floating_point() and alpha not in (0, 1) and not torch.equal(a, b.to(a.device)):
            out[k] = (1 - alpha) * a + alpha * b.to(a.dtype)
        else:
            out[k] = (a if alpha < 0.5 else b).clone()
    return out


class WiSEFT(FT):
    name = "wise-ft"
    summary = "FT, then weight-space interpolation with the zero-shot model"
    posthoc = {"alpha": ALPHAS}  # swept over each run for free
    hparams = {"alpha": HParam(0.5, 0.5, 0.0, 1.0, "mixing weight: 0 = zero-shot, 1 = fine-tuned")}

    def setup(self, classifier, task, clip):
        self.theta0 = {k: v.detach().clone() for k, v in classifier.state_dict().items()}

    def finish(self, classifier):
        with torch.no_grad():
            classifier.load_state_dict(wise_ft(self.theta0, classifier.state_dict(), self.alpha))
        return classifier
