"""LiNeS: fine-tune, then scale each layer's update linearly with its depth (shallow layers stay
near theta0)."""
from __future__ import annotations

import torch

from ..merging import lines
from .base import HParam
from .ft import FT
from .wiseft import ALPHAS


class LiNeS(FT):
    name = "lines"
    summary = "FT, then theta0 + (alpha + beta * l / (L-1)) * (theta - theta0) for block l of L (beta = 1 - alpha)"
    posthoc = {"alpha": ALPHAS}   # swept over each run for free, as the release sweeps it
    hparams = {"alpha": HParam(0.5, None, 0.0, 1.0, "scale of the shallowest block's update (the release "
                               "sweeps 1.0..0.0; no robust-FT default is released)"),
               "beta": HParam(None, None, 0.0, 1.0, "growth of the scale to the deepest block; None: 1 - alpha "
                              "(the release's single-task rule)")}

    def setup(self, classifier, task, clip):
        super().setup(classifier, task, clip)
        self.theta0 = {k: v.detach().clone() for k, v in classifier.state_dict().items()}

    def finish(self, classifier):
        with torch.no_grad():
            classifier.load_state_dict(lines(self.theta0, classifier.state_dict(), self.alpha, self.beta))
        return classifier
