"""SPD: FT with selective projection decay (an Adam that pulls a tensor back towards theta0 only
when its step moves it away)."""
from ..optim import AdamSPD
from .base import HParam
from .ft import FT


class SPD(FT):
    name = "spd"
    world_recipe = {"lr": 3e-4, "weight_decay": 0.0}   # FT's lr; SPD replaces weight decay by its own decay
    paper_recipe = {"lr": 3e-5, "weight_decay": 0.0, "batch_size": 512, "epochs": 10, "warmup_steps": 500, "grad_clip": 1.0}
    summary = "cross-entropy FT with AdamSPD: where a step's gradient points away from theta0, take back lam times the share of the deviation the step added"
    hparams = {"lam": HParam(0.1, None, 0.0, None, "decay strength (the release's weight_decay; its default 0 "
                             "is plain Adam; no CLIP value is released)")}
    search = {"lam": (0.01, 0.1, 1.0)}

    def build_optimizer(self, params, config):
        return AdamSPD(params, lr=config.lr, lam=self.lam)
