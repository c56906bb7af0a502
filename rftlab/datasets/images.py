"""Reading dataset images from disk: :func:`open_rgb` (what every lazy split's ``load_image``
defaults to), :func:`to_rgb` for any PIL mode, and :func:`drop_unreadable` for a task whose
folder holds broken files."""
from __future__ import annotations

import dataclasses
import os
import warnings
from concurrent.futures import ThreadPoolExecutor

import torch

from ..data import Task
from ..errors import DatasetLayoutError


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


def drop_unreadable(task: Task, workers: int | None = None) -> Task:
    """``task`` without the images that cannot be read: every image of every split is opened
    once (in ``workers`` threads; default one per core) and the unreadable ones are left out.
    They are listed in ``task.info["skipped_images"]`` (split name -> paths) and counted in a
    warning; a split left with no image raises :class:`DatasetLayoutError`."""
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
