"""Training recipes as data, resolved in one place.

Every method carries two recipes, both TrainConfig overrides: ``world_recipe`` for the embedded
world model (CPU, under a minute a run) and ``paper_recipe``, the published one (ImageNet, ViT-B/16,
given in epochs). :func:`train_settings` is the one function that turns a method, a model and the
caller's overrides into TrainConfig settings; ``rftlab.finetune``, ``compare``, ``sweep``, run
configs (``rftlab finetune``) and the TrainPanel all call it. By default the world recipe applies to
the embedded model (``rftlab-world``) and the paper recipe to every other model.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

RECIPES = ("world", "paper")


def _method_class(method):
    from .methods import METHODS
    if isinstance(method, str):
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; registered methods: {', '.join(METHODS)}")
        return METHODS[method]
    return method if isinstance(method, type) else type(method)


def is_world_model(model) -> bool:
    """Whether ``model`` (a ClipModel, a model name, or None for the default) is the embedded world CLIP."""
    from .models.factory import DEFAULT_MODEL
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
    from .train import TrainConfig
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
    from .train import TrainConfig
    size = (lambda: len(task.train)) if task is not None else None
    return TrainConfig(**train_settings(method, clip, overrides, size, which))
