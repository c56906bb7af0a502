"""LP-FT: a linear probe first, then full fine-tuning from the probed head."""
from .base import HParam
from .ft import FT
from .lp import probe_head


class LPFT(FT):
    name = "lp-ft"
    paper_recipe = {"lr": 1e-5, "weight_decay": 0.1, "batch_size": 512, "epochs": 10, "warmup_steps": 500, "grad_clip": 1.0}  # ImageNet, ViT-B/16
    summary = "LP to convergence, then FT from the LP head (less feature distortion)"
    hparams = {
        "lp_weight_decay": HParam(1e-4, None, 0.0, None, "L2 penalty of the LP stage"),
        "lp_iters": HParam(100, None, 1, 10_000, "L-BFGS iterations of the LP stage"),
    }

    def run(self, trainer):
        if trainer.step_count == 0:  # a resumed run already has its probed head
            hist = probe_head(trainer, self.lp_weight_decay, self.lp_iters)
            trainer.history.append({"step": 0, "lp_loss": hist[-1]["loss"]})
        return None  # then the ordinary FT loop
