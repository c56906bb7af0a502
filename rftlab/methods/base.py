"""What a robust fine-tuning method is to the training loop.

A method says which parameters it trains, what frozen references it needs, and what its
loss terms are for a batch. The loop (``rftlab.train``) does everything else: optimiser,
schedule, clipping, evaluation, checkpoints, progress, interruption.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ..distributed import Ranks


@dataclass(frozen=True)
class HParam:
    """One method hyperparameter: the world default, the published default and its valid range."""

    default: Any
    paper: Any = None
    low: float | None = None
    high: float | None = None
    doc: str = ""

    def check(self, name: str, value):
        if value is None and self.default is None:  # None means "derive it" (e.g. the model's own scale)
            return value
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            raise ValueError(f"{name}={value} is out of range [{self.low}, {self.high}]: {self.doc}")
        return value


class Method:
    """Base class. Subclasses set ``name``, ``hparams`` and override ``loss`` (and more if needed)."""

    name: str = "method"
    summary: str = ""
    hparams: dict[str, HParam] = {}
    trains_text: bool = False   # FLYP-style methods train the text tower too
    trainable: bool = True      # False for methods that need no gradient steps (zero-shot)
    anchor_terms: tuple[str, ...] = ()  # loss terms that pull towards theta0 (or a teacher that starts there): 0 at theta0
    world_recipe: dict = {}     # TrainConfig overrides for the embedded world (CPU, about a minute)
    paper_recipe: dict = {}     # the published recipe (ImageNet, ViT-B/16), for real models

    config = None  # the TrainConfig, set by the Trainer before setup()
    ranks = Ranks()  # the data-parallel ranks, set by the Trainer; one process unless under torchrun

    @property
    def seed(self) -> int:
        return self.config.seed if self.config is not None else 0

    def __init__(self, **kwargs):
        unknown = set(kwargs) - set(self.hparams)
        if unknown:
            known = ", ".join(self.hparams) or "none"
            raise ValueError(f"{self.name} has no hyperparameter(s) {sorted(unknown)}; it takes: {known}")
        self.params = {k: h.check(k, kwargs.get(k, h.default)) for k, h in self.hparams.items()}

    def __getattr__(self, item):  # hyperparameters read as attributes
        params = self.__dict__.get("params", {})
        if item in params:
            return params[item]
        raise AttributeError(item)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({args})"

    # ---- hooks the loop calls ------------------------------------------------------
    def setup(self, classifier, task, clip) -> None:
        """Build frozen references (copies of theta0, teachers, text features)."""

    def parameters(self, classifier) -> list[torch.nn.Parameter]:
        """Parameters to train: by default the image tower and the head."""
        params = list(classifier.clip.visual.parameters()) + [classifier.head]
        if self.trains_text:
            params += [p for n, p in classifier.clip.named_parameters() if not n.startswith("visual.")]
        return params

    def loss(self, classifier, images: torch.Tensor, labels: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """Loss terms for one batch; the key ``loss`` is what is minimised."""
        raise NotImplementedError

    def after_step(self, classifier, step: int, total_steps: int) -> None:
        """Called after each optimiser step (EMA teachers and the like)."""

    def refresh_head(self, classifier) -> None:
        """Bring the head up to date before evaluation (FLYP-style methods rebuild it from the
        fine-tuned text tower). Called before validation and at the end."""

    def run(self, trainer):
        """Methods that are not a plain step loop (LP on cached features, soups) return a
        TrainResult here; None lets the trainer run its loop."""
        return None

    def finish(self, classifier):
        """Post-process the trained classifier (WiSE-FT interpolates here). Returns a classifier."""
        return classifier

    def state_dict(self) -> dict | None:
        """Extra state to checkpoint (EMA teachers, ...)."""
        return None

    def load_state_dict(self, state: dict) -> None:
        pass
