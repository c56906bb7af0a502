"""Shared pieces of the dataset loaders: roots, layouts in errors, lazy image paths, class-folder
splits, holdouts and evaluation-only tasks."""
from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Callable, Sequence

import torch

from ..data import Split, Task
from ..errors import DatasetLayoutError
from .images import open_rgb

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


def layout_error(dataset: str, problem: str, layout: str) -> DatasetLayoutError:
    return DatasetLayoutError(f"{dataset}: {problem}\n\nExpected layout:\n{layout.rstrip()}\n"
                              f"(docs/datasets.md describes every dataset's layout)")


def check_root(dataset: str, root, layout: str) -> Path:
    """``root`` as an existing folder, or a :class:`DatasetLayoutError` that shows the layout."""
    if root is None:
        raise layout_error(dataset, "no root given: pass the folder that holds the dataset", layout)
    path = Path(root).expanduser()
    if not path.exists():
        raise layout_error(dataset, f"{path} does not exist", layout)
    if not path.is_dir():
        raise layout_error(dataset, f"{path} is a file; give the folder that holds the dataset", layout)
    return path


def is_image(name: str) -> bool:
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def subdirs(path: Path) -> list[str]:
    """Names of the visible sub-folders of ``path``, sorted; files (README, archives) are ignored."""
    with os.scandir(path) as it:
        return sorted(e.name for e in it if not e.name.startswith(".") and e.is_dir())


def image_files(path: Path, recursive: bool = False) -> list[str]:
    """Image file paths under ``path`` (sorted; hidden files such as macOS ``._x.jpg`` skipped)."""
    if not recursive:
        with os.scandir(path) as it:
            return sorted(os.path.join(path, e.name) for e in it if is_image(e.name) and e.is_file())
    out = []
    for d, dirs, files in os.walk(path):
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        out.extend(os.path.join(d, f) for f in sorted(files) if is_image(f))
    return out


def first_missing(paths: Sequence[str], k: int = 3) -> str | None:
    """The first of the first ``k`` paths that is not a file (a cheap check of a list's root)."""
    for p in list(paths)[:k]:
        if not os.path.isfile(p):
            return str(p)
    return None


def make_split(name: str, paths: Sequence[str], labels, meta: dict | None = None, load_image=open_rgb,
               **kw) -> Split:
    meta = {k: torch.as_tensor(v) for k, v in (meta or {}).items()}
    return Split(name, [str(p) for p in paths], torch.as_tensor(labels, dtype=torch.long), meta,
                 load_image, **kw)


# ------------------------------------------------------------------ class folders -> splits
def class_folders(dataset: str, root, layout: str, pattern: re.Pattern) -> tuple[Path, list[str]]:
    """The folder holding the class folders (``root``, or the one sub-folder of ``root`` that
    holds them, as archives often add) and the class folder names matching ``pattern``.
    Files and other folders (README.txt, __MACOSX/) are ignored."""
    root = check_root(dataset, root, layout)
    names = [d for d in subdirs(root) if pattern.match(d)]
    if not names:
        inner = [root / d for d in subdirs(root) if any(pattern.match(x) for x in subdirs(root / d))]
        if len(inner) == 1:
            root, names = inner[0], [d for d in subdirs(inner[0]) if pattern.match(d)]
        elif (root / "val").is_dir() and any(pattern.match(x) for x in subdirs(root / "val")):
            root, names = root / "val", [d for d in subdirs(root / "val") if pattern.match(d)]
    if not names:
        raise layout_error(dataset, f"no class folders in {root}", layout)
    return root, names


def folder_split(name: str, root: Path, folders: list[str], label_of: Callable[[str], int],
                 load_image=None, dataset: str | None = None, layout: str = "", **kw) -> Split:
    """A lazy split: every image of each class folder, labelled ``label_of(folder)``."""
    paths, labels = [], []
    for folder in folders:
        files = image_files(root / folder)
        paths.extend(files)
        labels.extend([label_of(folder)] * len(files))
    if not paths:
        raise layout_error(dataset or name, f"the class folders under {root} hold no images "
                                            f"(.jpg, .jpeg, .png ...)", layout)
    extra = {"load_image": load_image} if load_image else {}
    return make_split(name, paths, labels, **extra, **kw)


# ------------------------------------------------------------------ holdouts
def stratified_parts(labels: torch.Tensor, fractions: Sequence[float], seed: int = 0,
                     names: Sequence[str] | None = None) -> list[torch.Tensor]:
    """Split indices 0..N-1 class by class into ``len(fractions) + 1`` parts: part i takes about
    ``fractions[i]`` of every class, the last part the rest. Deterministic in ``seed``."""
    fr = [float(f) for f in fractions]
    if any(f < 0 for f in fr) or sum(fr) >= 1:
        raise ValueError(f"holdout fractions must be >= 0 and sum below 1 (the rest is the last part); got {fr}")
    labels = torch.as_tensor(labels)
    g = torch.Generator().manual_seed(int(seed))
    parts: list[list[torch.Tensor]] = [[] for _ in range(len(fr) + 1)]
    bounds = torch.tensor([0.0] + list(torch.tensor(fr, dtype=torch.float64).cumsum(0)), dtype=torch.float64)
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels - labels.min()) if len(labels) else torch.zeros(0, dtype=torch.long)
    for idx in torch.split(order, counts[counts > 0].tolist()):
        idx = idx[torch.randperm(len(idx), generator=g)]
        cut = (bounds * len(idx)).round().long().tolist() + [len(idx)]
        for i in range(len(parts)):
            parts[i].append(idx[cut[i]:cut[i + 1]])
    out = [torch.cat(p).sort().values if p else torch.zeros(0, dtype=torch.long) for p in parts]
    names = names or [f"part {i}" for i in range(len(out))]
    for n, p in zip(names, out):
        if len(p) == 0:
            raise ValueError(f"holding out fractions {fr} of {len(labels)} images leaves split {n!r} empty: "
                             f"give more images per class or a larger fraction")
    return out


# ------------------------------------------------------------------ evaluation-only tasks
def eval_only_task(name: str, split: Split, classnames: list[str], templates, holdout=(0.1, 0.1),
                   seed: int = 0, info: dict | None = None) -> Task:
    """A task from an evaluation-only set: train and val are class-stratified ``holdout``
    fractions of it, test is the rest (``task.info["eval_only"]`` is True)."""
    tr, va, te = stratified_parts(split.labels, holdout, seed, names=("train", "val", "test"))
    note = (f"evaluation-only set: train and val are {holdout[0]:.0%} and {holdout[1]:.0%} holdouts "
            f"of it (per class), test is the rest")
    return Task(name, classnames, list(templates), split.select(tr, "train"), split.select(va, "val"),
                split.select(te, "test"), id_domain=name,
                info=natural_info(eval_only=True, holdout=list(holdout), note=note, **(info or {})))


# ------------------------------------------------------------------ package data
def _metadata(name: str):
    return resources.files("rftlab.datasets").joinpath("metadata", name)


@lru_cache(maxsize=None)
def read_json(name: str) -> dict:
    return json.loads(_metadata(name).read_text(encoding="utf-8"))


@lru_cache(maxsize=None)
def read_lines(name: str) -> tuple[str, ...]:
    text = _metadata(name).read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


def class_name(folder: str) -> str:
    """A class name for prompts from a folder name: underscores become spaces."""
    return folder.replace("_", " ").strip()


def natural_info(**extra) -> dict:
    from .phrases import natural_spurious_phrases
    return {"spurious_phrases": natural_spurious_phrases(), **extra}
