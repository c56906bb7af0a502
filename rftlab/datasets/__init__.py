"""Real datasets from disk as :class:`rftlab.data.Task` objects, behind the world tasks' interface.

Every loader takes the dataset's folder as it comes from its archive (see docs/datasets.md for
each layout), lists image paths without decoding them (``Split.load_image`` opens one as an RGB
PIL image, for open_clip's preprocess) and fills labels, class names, templates, per-sample
metadata (``group``, ``domain``...) and the StarFT phrase pool ``task.info["spurious_phrases"]``.

>>> task = load_dataset("waterbirds", "~/data/waterbird_complete95_forest2water2")
>>> task = load_dataset("imagenet", "~/data/imagenet/val", ood={"imagenet-r": "~/data/imagenet-r"})
"""
from __future__ import annotations

from ..data import Task
from .images import drop_unreadable, open_rgb
from .celeba import celeba
from .domainnet import domainnet
from .folder import csv_dataset, image_folder
from .imagenet import VARIANTS, imagenet_a, imagenet_r, imagenet_sketch, imagenet_task, imagenet_v2, variant_split
from .imagenet_classes import imagenet_classnames, imagenet_templates, imagenet_wnids, subset_indices, subset_wnids
from .objectnet import objectnet, objectnet_mapping, objectnet_split
from .phrases import natural_spurious_phrases
from .waterbirds import waterbirds

DATASETS = {
    "waterbirds": waterbirds,
    "celeba": celeba,
    "domainnet": domainnet,
    "imagenet": imagenet_task,
    "imagenet-v2": imagenet_v2,
    "imagenet-r": imagenet_r,
    "imagenet-a": imagenet_a,
    "imagenet-sketch": imagenet_sketch,
    "objectnet": objectnet,
    "imagefolder": image_folder,
    "csv": csv_dataset,
}


def load_dataset(name: str, root=None, skip_bad_images: bool = False, **kwargs) -> Task:
    """The dataset ``name`` (a key of ``DATASETS``) read from ``root``; ``kwargs`` go to its loader.

    An image that cannot be read stops whatever reads it with an
    :class:`~rftlab.errors.ImageReadError` naming the file and the dataset. With
    ``skip_bad_images=True`` every image is opened once now and the unreadable ones are left
    out of the task: listed in ``task.info["skipped_images"]``, counted in a warning (and in a
    run's log and ``metrics.json``)."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; datasets are: {', '.join(DATASETS)}")
    if not isinstance(skip_bad_images, bool):
        raise ValueError(f"skip_bad_images is true or false; got {skip_bad_images!r}")
    task = DATASETS[name](root, **kwargs)
    return drop_unreadable(task) if skip_bad_images else task


__all__ = ["DATASETS", "load_dataset", "drop_unreadable", "open_rgb", "natural_spurious_phrases",
           "waterbirds", "celeba", "domainnet", "imagenet_task", "imagenet_v2", "imagenet_r", "imagenet_a",
           "imagenet_sketch", "objectnet", "image_folder", "csv_dataset", "imagenet_wnids", "imagenet_classnames",
           "imagenet_templates", "subset_wnids", "subset_indices", "variant_split", "objectnet_split",
           "objectnet_mapping", "VARIANTS"]
