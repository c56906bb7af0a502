"""The task registry: every task name rftlab knows, the world's generated tasks
(``rftlab.world.tasks.WORLD_TASKS``) and the datasets read from disk (``rftlab.datasets.DATASETS``),
behind one entry point, :func:`load_task`.

It sits above both kinds: ``rftlab.world`` and ``rftlab.datasets`` know nothing of each other.
"""
from __future__ import annotations

from functools import lru_cache

from .data import Task
from .datasets import DATASETS, load_dataset
from .world.tasks import WORLD_TASKS


@lru_cache(maxsize=8)
def _world_task(name: str, items: tuple) -> Task:
    return WORLD_TASKS[name](**dict(items))


def load_task(name: str, root=None, **kwargs) -> Task:
    """A task by name: a world task (generated; cached: the same arguments give the same
    object) or a dataset on disk read from ``root`` (``rftlab.datasets.DATASETS``)."""
    if name in WORLD_TASKS:
        if root is not None:
            raise ValueError(f"world task {name!r} is generated, not read from disk: give no root")
        items = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()))
        return _world_task(name, items)
    if name in DATASETS:
        return load_dataset(name, root, **kwargs)
    raise ValueError(f"unknown task {name!r}; world tasks are: {', '.join(WORLD_TASKS)} "
                     f"(or build one with rftlab.make_task); datasets on disk (give root=...) are: "
                     f"{', '.join(DATASETS)}")


__all__ = ["load_task", "WORLD_TASKS", "DATASETS"]
