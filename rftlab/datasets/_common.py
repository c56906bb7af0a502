"""Shared pieces of the dataset loaders: roots, layouts in errors, lazy image paths, holdouts."""
from __future__ import annotations

import json
import os
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Sequence

import torch

from ..data import Split, Task
from ..errors import RftlabError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm")


class DatasetLayoutError(RftlabError, ValueError):
    """A dataset root that is missing or not laid out as its loader expects; the message
    draws the expected layout."""


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


# ------------------------------------------------------------------ images, read lazily
def open_rgb(path) -> "PIL.Image.Image":  # noqa: F821
    """The image at ``path`` as an RGB PIL image (what open_clip's preprocess takes), decoded
    whole (a truncated file fails here, not later); see :func:`to_rgb` for other modes."""
    from PIL import Image
    with Image.open(path) as im:
        im.load()
        return to_rgb(im)


def to_rgb(im) -> "PIL.Image.Image":  # noqa: F821
    """8-bit RGB from any PIL mode: grey and palette images are expanded; 16-bit and 32-bit
    integer images (``I;16``, ``I``: 16-bit PNG and TIFF) are scaled from 0..65535 to 0..255
    instead of clipped (PIL's own conversion would turn them nearly white); float images
    (``F``) are read as 0..1 when they lie there, else 0..255; transparent pixels (RGBA, LA,
    palette or colour-key transparency) are composited onto white."""
    from PIL import Image
    if im.mode == "RGB":
        return im
    if im.mode in ("I", "F") or im.mode.startswith("I;16"):
        import numpy as np
        a = np.asarray(im, dtype=np.float64)
        if im.mode == "F":
            a = a * 255 if a.size and np.nanmin(a) >= 0 and np.nanmax(a) <= 1 else a
        else:
            a = a / 257
        im = Image.fromarray(np.clip(np.nan_to_num(a).round(), 0, 255).astype(np.uint8), "L")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return im.convert("RGB")


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


# ------------------------------------------------------------------ unreadable images
def drop_unreadable(task: Task, workers: int | None = None) -> Task:
    """``task`` without the images that cannot be read: every image of every split is opened
    once (in ``workers`` threads; default one per core) and the unreadable ones are left out.
    They are listed in ``task.info["skipped_images"]`` (split name -> paths) and counted in a
    warning; a split left with no image raises :class:`DatasetLayoutError`."""
    import dataclasses
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    splits = {"train": task.train, "val": task.val, "test": task.test, **task.ood}
    jobs = {}
    for split in splits.values():
        if not isinstance(split.images, torch.Tensor) and split.load_image is not None:
            for p in split.images:
                jobs.setdefault((p, split.load_image), None)

    def readable(job):
        path, load = job
        try:
            load(path)
            return True
        except Exception:
            return False

    with ThreadPoolExecutor(max_workers=workers or min(32, os.cpu_count() or 1)) as pool:
        ok = dict(zip(jobs, pool.map(readable, jobs)))
    kept, skipped = {}, {}
    for key, split in splits.items():
        if isinstance(split.images, torch.Tensor) or split.load_image is None:
            kept[key] = split
            continue
        good = [i for i, p in enumerate(split.images) if ok[(p, split.load_image)]]
        bad = [p for p in split.images if not ok[(p, split.load_image)]]
        if not good:
            raise DatasetLayoutError(f"{task.name}: no image of split {split.name!r} can be read "
                                     f"(e.g. {split.images[0]}): is the folder complete?")
        kept[key] = split.select(good) if bad else split
        if bad:
            skipped[split.name] = bad
    if not skipped:
        return dataclasses.replace(task, info={**task.info, "skipped_images": {}})
    n = sum(len(v) for v in skipped.values())
    first = next(iter(skipped.values()))[0]
    warnings.warn(f"{task.name}: skipped {n} unreadable image(s) (skip_bad_images=True), e.g. {first}; "
                  f"they are listed in task.info['skipped_images']", stacklevel=2)
    return dataclasses.replace(task, train=kept["train"], val=kept["val"], test=kept["test"],
                               ood={k: kept[k] for k in task.ood}, info={**task.info, "skipped_images": skipped})
