"""Model soups: average the weights of several fine-tuned runs from one initialisation.

A soup is a :class:`~rftlab.methods.base.Recipe`: ordinary FT runs composed above the Trainer. Its
ingredients are FT runs over the learning-rate grid of ``rftlab.sweep`` (:func:`lr_grid` around the
recipe's lr, one seed), so the ingredients of a soup are exactly the runs of an FT sweep, as in the
model-soups paper; inside ``rftlab.train.reuse_runs()`` (``compare``, ``sweep``) they are trained once.
"""
from __future__ import annotations

import copy
import dataclasses
import time
from pathlib import Path

import torch

from .base import HParam, Recipe, TrainResult, lr_grid
from .ft import FT


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


class Soup(Recipe):
    name = "soup-uniform"
    summary = "uniform average of FT runs over a learning-rate grid (the runs of an FT sweep)"
    world_recipe = FT.world_recipe      # the ingredients are FT runs
    paper_recipe = FT.paper_recipe
    hparams = {"ingredients": HParam(3, None, 1, 64, "number of FT runs, over lr_grid(lr, n): n points in the "
                                     "decade around the recipe's lr")}

    @classmethod
    def grid(cls, budget: int) -> list[dict]:
        return [{"ingredients": budget}]  # nothing to select: the FT sweep's runs are the ingredients

    def fit(self, train, score, config):
        t0 = time.time()
        runs, history, res = [], [], None
        for i, lr in enumerate(lr_grid(config.lr, self.ingredients)):
            ckpt = str(Path(config.checkpoint_dir) / f"ingredient-{i}") if config.checkpoint_dir else None
            res = train("ft", dataclasses.replace(config, lr=lr, checkpoint_dir=ckpt))
            if res.interrupted:   # Stop / Ctrl-C: the soup ends with the ingredient reached
                return dataclasses.replace(res, history=history + res.history, seconds=time.time() - t0)
            val_acc = score(res.classifier)["val_acc"]
            runs.append((val_acc, {k: v.detach().cpu() for k, v in res.classifier.state_dict().items()}))
            last_loss = next((h["loss"] for h in reversed(res.history) if "loss" in h), float("nan"))
            history.append({"step": i + 1, "loss": last_loss, "ingredient_lr": lr, "ingredient_val_acc": val_acc})
        clf = res.classifier
        chosen = self.select(runs, score, clf)
        clf.load_state_dict(average_state_dicts(chosen))
        clf.eval()
        history.append({"step": len(runs), "soup_ingredients": len(chosen), **score(clf)})
        return TrainResult(clf, history, step=len(runs) * config.steps, seconds=time.time() - t0)

    def select(self, runs: list[tuple[float, dict]], score, classifier) -> list[dict]:
        return [sd for _, sd in runs]


class GreedySoup(Soup):
    name = "soup-greedy"
    summary = "add FT runs best-first while held-out (val) accuracy does not drop"

    def select(self, runs, score, classifier):
        runs = sorted(runs, key=lambda r: -r[0])
        chosen, best = [runs[0][1]], runs[0][0]
        probe = copy.deepcopy(classifier)
        for acc, sd in runs[1:]:
            probe.load_state_dict(average_state_dicts(chosen + [sd]))
            val = score(probe)["val_acc"]
            if val >= best:
                chosen.append(sd)
                best = val
        return chosen
