"""Model Stock: merge two (or more) FT runs with theta0, tensor by tensor, by the angle between
their updates."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from ..merging import model_stock
from .base import HParam, Recipe, TrainResult
from .ft import FT

SEED_STRIDE = 1000   # run i of a Model Stock at seed s trains with seed s + 1000 i (run 0 is FT at seed s)


class ModelStock(Recipe):
    name = "model-stock"
    summary = "FT runs that differ only in their seed, merged with theta0: t * mean(w_i) + (1 - t) * w0, t from their angle"
    world_recipe = FT.world_recipe      # the runs are FT runs
    paper_recipe = FT.paper_recipe
    hparams = {"runs": HParam(2, 2, 2, 16, "number of FT runs (seeds s, s + 1000, ...); the paper's headline uses 2"),
               "ratio": HParam(None, None, 0.0, 1.0, "None: t from the angle (Model Stock); a number: that t for "
                               "every tensor (1 = the plain average of the runs, the ablation)")}

    def fit(self, train, score, config):
        t0 = time.time()
        theta0 = train("zeroshot", dataclasses.replace(config, checkpoint_dir=None)).classifier.state_dict()
        runs, history, res = [], [], None
        for i in range(self.runs):
            ckpt = str(Path(config.checkpoint_dir) / f"run-{i}") if config.checkpoint_dir else None
            res = train("ft", dataclasses.replace(config, seed=config.seed + SEED_STRIDE * i, checkpoint_dir=ckpt))
            if res.interrupted:   # Stop / Ctrl-C: the runs so far and the run reached are kept
                return dataclasses.replace(res, history=history + res.history, seconds=time.time() - t0)
            runs.append({k: v.detach().cpu() for k, v in res.classifier.state_dict().items()})
            last_loss = next((h["loss"] for h in reversed(res.history) if "loss" in h), float("nan"))
            history.append({"step": i + 1, "loss": last_loss, "run_seed": config.seed + SEED_STRIDE * i,
                            **{f"run_{k}": v for k, v in score(res.classifier).items()}})
        clf = res.classifier
        clf.load_state_dict(model_stock({k: v.cpu() for k, v in theta0.items()}, runs, self.ratio))
        clf.eval()
        history.append({"step": len(runs), "merged_runs": len(runs), **score(clf)})
        return TrainResult(clf, history, step=len(runs) * config.steps, seconds=time.time() - t0)
