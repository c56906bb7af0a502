"""What a robust fine-tuning method is to the training loop.

A :class:`Method` says which parameters it trains, what frozen references it needs, and what its
loss terms are for a batch. The loop (``rftlab.train.Trainer``) does everything else: optimiser,
schedule, clipping, evaluation, checkpoints, progress, interruption, and the linear-probe stage
a method asks for with :meth:`Method.probe`. The Trainer calls only the hooks below, with explicit
arguments; no method sees the Trainer.

A :class:`Recipe` is a method made of several ordinary Trainer runs, composed above the Trainer
(model soups): ``rftlab.finetune`` hands it a function that trains one run and one that scores a
classifier on val.

Both carry their recipes as data: ``world_recipe`` and ``paper_recipe`` are TrainConfig overrides
(resolved by :func:`rftlab.recipes.train_settings`, the one place where epochs become steps), and
``search`` is the grid of key hyperparameters that ``rftlab.sweep`` tunes on validation data.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from ..classifier import ClipClassifier
from ..distributed import Ranks


@dataclass(frozen=True)
class HParam:
    """One method hyperparameter: the world default, the published default and its valid range.
    ``choices``: values allowed besides the range (a string option such as LP's ``"val"``), or the
    only values allowed when there is no range."""

    default: Any
    paper: Any = None
    low: float | None = None
    high: float | None = None
    doc: str = ""
    choices: tuple = ()

    def check(self, name: str, value):
        if value is None and self.default is None:  # None means "derive it" (e.g. the model's own scale)
            return value
        if value in self.choices:
            return value
        ranged = self.low is not None or self.high is not None
        if self.choices and ranged and isinstance(value, str):  # "1e-4" typed where "val" also goes
            try:
                value = float(value)
            except ValueError:
                pass
        numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
        if self.choices and not (ranged and numeric):
            options = " or ".join(repr(c) for c in self.choices) + (f" or a number in [{self.low}, {self.high}]"
                                                                    if ranged else "")
            raise ValueError(f"{name}={value!r}: choose {options} ({self.doc})")
        if self.low is not None and value < self.low or self.high is not None and value > self.high:
            raise ValueError(f"{name}={value} is out of range [{self.low}, {self.high}]: {self.doc}")
        return value


@dataclass(frozen=True)
class Probe:
    """A linear probe the Trainer fits before its step loop (LP, LP-FT's first stage): the frozen
    image tower encodes train (and val) once, through ``TrainConfig.feature_cache``; full-batch
    L-BFGS fits the head on CE + weight_decay * ||head||^2 for each weight decay, starting from
    the head the method set up; the best val accuracy wins (ties: the first, the strongest)."""

    weight_decays: tuple[float, ...]
    iters: int = 100


def probe_grid(n: int) -> tuple[float, ...]:
    """``n`` probe weight decays spaced evenly in log from 1e-1 down to 1e-6, strongest first."""
    return tuple(10 ** (-1 - 5 * k / max(1, n - 1)) for k in range(n)) if n > 1 else (1e-3,)


PROBE_GRID = probe_grid(6)  # the weight decays LP and LP-FT choose from on val: 1e-1, 1e-2, ..., 1e-6


def lr_factors(n: int) -> list[float]:
    """``n`` learning-rate factors that split the decade [1/sqrt(10), sqrt(10)] into ``n`` equal
    log-cells and take their midpoints: 1 -> [1]; 2 -> [0.56, 1.78]; 3 -> [0.46, 1, 2.15]; a
    larger ``n`` is a finer grid over the same decade."""
    return [10 ** ((k + 0.5) / n - 0.5) for k in range(n)]


def lr_grid(lr: float, n: int) -> list[float]:
    """``lr`` times :func:`lr_factors` (soup ingredients and ``rftlab.sweep`` share this grid)."""
    return [lr * f for f in lr_factors(n)]


class Configured:
    """What methods and recipes share: a name, hyperparameters (validated), recipes and a search grid."""

    name: str = "method"
    summary: str = ""
    hparams: dict[str, HParam] = {}
    world_recipe: dict = {}     # TrainConfig overrides on the embedded world model (CPU, under a minute)
    paper_recipe: dict = {}     # the published recipe (ImageNet, ViT-B/16) for real models; may give epochs
    search: dict = {}           # key hyperparameter grids for rftlab.sweep: {"lam": (0.3, 1.0, 3.0)};
    #                             a tuple of names varies them together: {("a", "b"): ((1, 2), (3, 4))}
    posthoc: dict = {}          # hyperparameters finish() applies to a trained run, swept for free over it
    tunes_lr: bool = True       # False: rftlab.sweep grids no learning rate (no gradient steps)

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

    @classmethod
    def grid(cls, budget: int) -> list[dict]:
        """The configurations ``rftlab.sweep`` trains for this method: every combination of
        ``search`` times a learning-rate grid (``lr_factor``, on the recipe's lr) that fills the
        budget, so every method trains ``budget`` configurations."""
        axes = [[dict(zip(k, v)) for v in vals] if isinstance(k, tuple) else [{k: v} for v in vals]
                for k, vals in cls.search.items()]
        combos = [dict(kv for d in c for kv in d.items()) for c in itertools.product(*axes)] or [{}]
        if not cls.tunes_lr:
            return combos
        if budget % len(combos):
            raise ValueError(f"budget {budget} is not a multiple of {cls.name}'s {len(combos)} key-hyperparameter "
                             f"combinations: give a budget that every method's grid divides (e.g. 6 or 12)")
        return [{**c, "lr_factor": f} for c in combos for f in lr_factors(budget // len(combos))]


class Method(Configured):
    """Base class of a method trained by the loop. Subclasses set ``name``, ``hparams`` and
    override ``loss`` (and more hooks if needed)."""

    trains_text: bool = False   # FLYP-style methods train the text tower too
    trainable: bool = True      # False: no gradient steps (zero-shot; LP fits its head in the probe stage)
    anchor_terms: tuple[str, ...] = ()  # loss terms that pull towards theta0 (or a teacher that starts there): 0 at theta0

    config = None  # the TrainConfig, set by the Trainer before setup()
    ranks = Ranks()  # the data-parallel ranks, set by the Trainer; one process unless under torchrun

    @property
    def seed(self) -> int:
        return self.config.seed if self.config is not None else 0

    # ---- hooks the loop calls, in this order --------------------------------------
    def setup(self, classifier, task, clip) -> None:
        """Build frozen references (copies of theta0, teachers, text features); may set the head."""

    def parameters(self, classifier) -> list[torch.nn.Parameter]:
        """Parameters to train: by default the image tower and the head."""
        params = list(classifier.clip.visual.parameters()) + [classifier.head]
        if self.trains_text:
            params += [p for n, p in classifier.clip.named_parameters() if not n.startswith("visual.")]
        return params

    def build_optimizer(self, params: list[torch.nn.Parameter], config) -> torch.optim.Optimizer:
        """The optimiser of the step loop: AdamW with the recipe's lr and weight decay (SPD brings
        its own). The loop sets each group's lr every step from the schedule."""
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)

    def probe(self) -> Probe | None:
        """A linear-probe stage the Trainer runs before the first step (:class:`Probe`); None: none."""
        return None

    def loss(self, classifier, images: torch.Tensor, labels: torch.Tensor, step: int) -> dict[str, torch.Tensor]:
        """Loss terms for one batch; the key ``loss`` is what is minimised."""
        raise NotImplementedError

    def after_step(self, classifier, step: int, total_steps: int) -> None:
        """Called after each optimiser step (EMA teachers and the like)."""

    def refresh_head(self, classifier) -> None:
        """Bring the head up to date before evaluation (FLYP-style methods rebuild it from the
        fine-tuned text tower). Called before validation and at the end."""

    def finish(self, classifier):
        """Post-process the trained classifier (WiSE-FT interpolates here). Returns a classifier."""
        return classifier

    def state_dict(self) -> dict | None:
        """Extra state to checkpoint (EMA teachers, ...)."""
        return None

    def load_state_dict(self, state: dict) -> None:
        pass


class Recipe(Configured):
    """A method made of ordinary Trainer runs, composed above the Trainer (model soups).
    ``rftlab.finetune`` calls :meth:`fit`; the Trainer refuses a Recipe."""

    def fit(self, train: Callable, score: Callable, config) -> Any:
        """Return a ``TrainResult``. ``train(method, config, **hparams)`` trains one ordinary run
        (a TrainResult; it resumes from ``config.checkpoint_dir`` when the caller resumes);
        ``score(classifier)`` returns its val metrics (``rftlab.evaluation.evaluate_val``)."""
        raise NotImplementedError


@dataclass
class TrainResult:
    """What one training run returns (the Trainer's, or a Recipe's of several runs): the classifier
    and the history of every logged step."""
    classifier: ClipClassifier
    history: list[dict] = field(default_factory=list)
    step: int = 0
    interrupted: bool = False
    stopped: str | None = None       # why training stopped early (non-finite loss...), None if it did not
    seconds: float = 0.0
    selected_step: int | None = None
    endpoint: dict | None = None     # the fine-tuned weights before the method's finish() changed them (WiSE-FT)
