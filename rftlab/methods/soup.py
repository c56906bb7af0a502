"""Model soups: average the weights of several fine-tuned runs from one initialisation."""
from __future__ import annotations

import contextlib
import copy
import dataclasses

import torch

from ..evaluation import evaluate_val
from .base import HParam, Method


def average_state_dicts(state_dicts: list[dict]) -> dict:
    """Uniform average of floating tensors; other tensors from the first state dict."""
    if not state_dicts:
        raise ValueError("a soup needs at least one state dict")
    keys = state_dicts[0].keys()
    for sd in state_dicts[1:]:
        if sd.keys() != keys or any(sd[k].shape != state_dicts[0][k].shape for k in keys):
            raise ValueError("soup ingredients come from different architectures")
    out = {}
    for k, v in state_dicts[0].items():
        out[k] = torch.stack([sd[k].float() for sd in state_dicts]).mean(0).to(v.dtype) \
            if v.is_floating_point() else v.clone()
    return out


_shared: dict | None = None  # ingredient runs shared between soups, inside shared_ingredients()


@contextlib.contextmanager
def shared_ingredients():
    """Inside this block, soups trained from the same model on the same task with the same
    recipe reuse each other's ingredient runs (the uniform and the greedy soup of
    ``rftlab compare`` then cost three FT runs, not six). Only for one model: the key is the
    task and the recipe, not the weights."""
    global _shared
    outer, _shared = _shared, {}
    try:
        yield
    finally:
        _shared = outer


class Soup(Method):
    name = "soup-uniform"
    summary = "uniform average of FT runs with different seeds and learning rates"
    hparams = {
        "ingredients": HParam(3, None, 1, 64, "number of fine-tuned runs"),
        "lr_spread": HParam(2.0, None, 1.0, 100.0, "learning rates spread geometrically over [lr/s, lr*s]"),
    }
    greedy = False

    def run(self, trainer):
        from ..train import TrainResult, finetune
        base = trainer.config
        n = self.ingredients
        lrs = [base.lr * self.lr_spread ** (2 * i / max(1, n - 1) - 1) for i in range(n)]
        runs = []
        for i, lr in enumerate(lrs):
            cfg = dataclasses.replace(base, seed=base.seed + i, lr=lr, progress=False)
            key = (id(trainer.task), tuple(sorted(dataclasses.asdict(cfg).items())))
            if _shared is not None and key in _shared:
                val_acc, state, last_loss = _shared[key]
            else:
                res = finetune("ft", trainer.clip, trainer.task, cfg)
                val_acc = evaluate_val(res.classifier, trainer.task, trainer.clip.preprocess)["val_acc"]
                state = {k: v.detach().cpu() for k, v in res.classifier.state_dict().items()}
                last_loss = next((h["loss"] for h in reversed(res.history) if "loss" in h), float("nan"))
                if _shared is not None:
                    _shared[key] = (val_acc, state, last_loss)
            runs.append((val_acc, state))
            trainer.history.append({"step": i + 1, "loss": last_loss, "ingredient_lr": lr,
                                    "ingredient_val_acc": val_acc})
        chosen = self.select(trainer, runs)
        trainer.classifier.load_state_dict(average_state_dicts(chosen))
        trainer.classifier.eval()
        trainer.validate()
        return TrainResult(trainer.classifier, trainer.history, step=n * base.steps)

    def select(self, trainer, runs):
        return [sd for _, sd in runs]


class GreedySoup(Soup):
    name = "soup-greedy"
    summary = "add FT runs best-first while held-out (val) accuracy does not drop"
    greedy = True

    def select(self, trainer, runs):
        runs = sorted(runs, key=lambda r: -r[0])
        chosen, best = [runs[0][1]], runs[0][0]
        probe = copy.deepcopy(trainer.classifier)
        for acc, sd in runs[1:]:
            probe.load_state_dict(average_state_dicts(chosen + [sd]))
            val = evaluate_val(probe, trainer.task, trainer.clip.preprocess)["val_acc"]
            if val >= best:
                chosen.append(sd)
                best = val
        trainer.history.append({"step": len(runs), "greedy_ingredients": len(chosen)})
        return chosen
