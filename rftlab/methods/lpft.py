"""LP-FT: a linear probe first (its L2 strength chosen on val), then full fine-tuning from the probed head."""
from .base import HParam, Probe
from .ft import FT
from .lp import probe_weight_decays


class LPFT(FT):
    name = "lp-ft"
    world_recipe = {"lr": 1e-4, "weight_decay": 0.1}  # FT's, lr / 3 (paper: 1e-5 against FT's 3e-5)
    paper_recipe = {"lr": 1e-5, "weight_decay": 0.1, "batch_size": 512, "epochs": 10, "warmup_steps": 500, "grad_clip": 1.0}  # ImageNet, ViT-B/16
    summary = "LP to convergence (L2 chosen on val), then FT from the LP head (less feature distortion)"
    hparams = {
        "lp_weight_decay": HParam("val", None, 0.0, None, "L2 penalty of the LP stage; 'val': the best on val "
                                  "accuracy of 1e-1, ..., 1e-6", choices=("val",)),
        "lp_iters": HParam(100, None, 1, 10_000, "L-BFGS iterations of the LP stage"),
    }

    def probe(self) -> Probe:
        return Probe(probe_weight_decays(self.lp_weight_decay), self.lp_iters)
