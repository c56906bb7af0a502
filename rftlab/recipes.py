"""Training recipes as data, resolved in one place.

Every method carries two recipes, both TrainConfig overrides: ``world_recipe`` for the embedded
world model (CPU, under a minute a run) and ``paper_recipe``, the published one (ImageNet, ViT-B/16,
given in epochs). :func:`train_settings` is the one function that turns a method, a model and the
caller's overrides into TrainConfig settings; ``rftlab.finetune``, ``compare``, ``sweep``, run
configs (``rftlab finetune``) and the TrainPanel all call it. By default the world recipe applies to
the embedded model (``rftlab-world``) and the paper recipe to every other model.

:class:`TrainConfig`, the settings of one training run that recipes fill in, is defined here, below
the training loop (``rftlab.train``) that reads it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable

import torch

from .methods import METHODS
from .models.factory import DEFAULT_MODEL

RECIPES = ("world", "paper")


def parse_device(device) -> torch.device:
    """``torch.device(device)``, or a ValueError that lists what a device is."""
    try:
        return torch.device(device)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device {device!r} is not a device: give cpu, cuda, cuda:1, mps, "
                         f"or nothing (CUDA when present)") from err


@dataclass
class TrainConfig:
    """The settings of one training run (``rftlab.train.Trainer``); :func:`recipe_config` gives a
    method's recipe as one."""
    steps: int = 150             # world defaults: about half a minute of FT on 2 CPU cores
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 0.1
    warmup: float = 0.1          # a fraction of steps (< 1) or a number of steps
    grad_clip: float = 1.0
    eval_every: int = 50
    select: str = "last"         # "last", "val_acc" or "val_worst_group_acc"
    seed: int = 0
    device: str | None = None    # None: CUDA when present, else CPU
    checkpoint_dir: str | None = None
    checkpoint_every: int = 0    # 0: only at the end (when checkpoint_dir is set)
    progress: bool = True
    feature_cache: object = None  # image features the probe stage (LP, LP-FT) reads instead of re-encoding: a folder, True or a FeatureCache
    distributed: bool | None = None  # None: data-parallel when launched by torchrun; True: required; False: never
    workers: int | None = None   # loader processes; None: rftlab.data.default_workers (0 for in-memory images)
    pin_memory: bool | None = None   # page-locked batches; None: when training on CUDA
    sync_every: int | None = None    # steps between host reads of the loss; None: 1 on CPU, 10 on CUDA
    channels_last: bool | None = None  # NHWC convolutions; None: for convolutional image towers (world CNN, ResNets)

    def __post_init__(self):
        checks = [("steps", self.steps >= 0), ("batch_size", self.batch_size >= 1),
                  ("lr", self.lr > 0), ("weight_decay", self.weight_decay >= 0),
                  ("warmup", self.warmup >= 0), ("grad_clip", self.grad_clip >= 0),
                  ("eval_every", self.eval_every >= 0), ("checkpoint_every", self.checkpoint_every >= 0),
                  ("workers", self.workers is None or self.workers >= 0),
                  ("sync_every", self.sync_every is None or self.sync_every >= 1)]
        for name, ok in checks:
            if not ok:
                raise ValueError(f"TrainConfig.{name}={getattr(self, name)!r} is out of range")
        if self.select not in ("last", "val_acc", "val_worst_group_acc"):
            raise ValueError(f"select={self.select!r}: choose 'last', 'val_acc' or 'val_worst_group_acc'")
        if self.device:
            parse_device(self.device)  # its spelling now; whether this machine has it, when training starts
        if self.distributed not in (None, True, False):
            raise ValueError(f"distributed={self.distributed!r}: choose None (automatic under torchrun), True or False")

    @property
    def warmup_steps(self) -> int:
        return int(self.warmup * self.steps) if self.warmup < 1 else int(self.warmup)


def _method_class(method):
    if isinstance(method, str):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; registered methods: {', '.join(METHODS)}")
        return METHODS[method]
    return method if isinstance(method, type) else type(method)


def is_world_model(model) -> bool:
    """Whether ``model`` (a ClipModel, a model name, or None for the default) is the embedded world CLIP."""
    return getattr(model, "arch", model) in (None, DEFAULT_MODEL)


def recipe_of(method, model=None, which: str | None = None) -> dict:
    """The recipe that applies, as written on the method: ``which`` = "world" or "paper"; None
    picks the world recipe on the embedded world model and the paper recipe on any other."""
    if which is None:
        which = "world" if is_world_model(model) else "paper"
    if which not in RECIPES:
        raise ValueError(f"recipe {which!r}: choose 'world' or 'paper' (or None: by the model)")
    cls = _method_class(method)
    return dict(cls.world_recipe if which == "world" else cls.paper_recipe)


def train_settings(method, model=None, overrides: dict | None = None,
                   train_size: int | Callable[[], int] | None = None, which: str | None = None) -> dict:
    """Every TrainConfig field: its default, then the method's recipe (:func:`recipe_of`), then
    ``overrides``. A recipe's ``warmup_steps`` becomes ``warmup`` (a number of steps) and its
    ``epochs`` become ``steps = epochs * max(1, train_size // batch_size)``, with the batch size
    after the overrides, unless the overrides give ``steps``. ``train_size`` (the task's number of
    training images, or a function returning it) is needed only then."""
    cls = _method_class(method)
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    recipe = recipe_of(cls, model, which)
    epochs = recipe.pop("epochs", None)
    if "warmup_steps" in recipe:
        recipe["warmup"] = recipe.pop("warmup_steps")
    overrides = dict(overrides or {})
    unknown = sorted((set(recipe) | set(overrides)) - set(fields))
    if unknown:
        raise ValueError(f"{unknown} are not TrainConfig settings ({cls.name}'s recipe or the overrides); "
                         f"valid: epochs, warmup_steps (in recipes) and {', '.join(fields)}")
    out = {**fields, **recipe, **overrides}
    if epochs is not None and "steps" not in overrides:
        size = train_size() if callable(train_size) else train_size
        if size is None:
            raise ValueError(f"{cls.name}'s recipe is {epochs} epochs: give the task (its number of training "
                             f"images turns epochs into steps) or the number of steps")
        out["steps"] = int(epochs * max(1, size // out["batch_size"]))
    return out


def recipe_config(method, clip=None, task=None, which: str | None = None, **overrides):
    """The TrainConfig of ``method``'s recipe for this model and task, with ``overrides``
    (TrainConfig fields) on top: :func:`train_settings` as a TrainConfig."""
    size = (lambda: len(task.train)) if task is not None else None
    return TrainConfig(**train_settings(method, clip, overrides, size, which))
