"""ImageNet-1k's classes, shared by every loader of the ImageNet family (ImageNet and its shifts,
ObjectNet): the 1000 WNIDs (shipped as package data; class index = position in the sorted list),
open_clip's class names, OpenAI's 80 templates and the 200-class subsets of ImageNet-R and -A."""
from __future__ import annotations

import torch

from ._common import read_lines


def imagenet_wnids() -> list[str]:
    """ImageNet-1k's 1000 WNIDs, sorted: class ``i`` is ``imagenet_wnids()[i]``."""
    return list(read_lines("imagenet_wnids.txt"))


def subset_wnids(name: str) -> list[str]:
    """The 200 WNIDs of ``"imagenet-r"`` or ``"imagenet-a"`` (sorted)."""
    files = {"imagenet-r": "imagenet_r_wnids.txt", "imagenet-a": "imagenet_a_wnids.txt"}
    if name not in files:
        raise ValueError(f"no 200-class WNID list for {name!r}; choose imagenet-r or imagenet-a")
    return list(read_lines(files[name]))


def subset_indices(name: str) -> torch.Tensor:
    """Indices (into the 1000 ImageNet classes) of ImageNet-R's or ImageNet-A's 200 classes."""
    pos = {w: i for i, w in enumerate(imagenet_wnids())}
    return torch.tensor([pos[w] for w in subset_wnids(name)])


def imagenet_classnames() -> list[str]:
    """open_clip's 1000 ImageNet class names, in class index order."""
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES
    return list(IMAGENET_CLASSNAMES)


def imagenet_templates() -> list[str]:
    """OpenAI's 80 ImageNet templates (open_clip's, as ``get_templates("imagenet")`` gives them) as
    format strings ('{}' for the class)."""
    from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES
    return [t("{}") if callable(t) else t for t in OPENAI_IMAGENET_TEMPLATES]


def check_classes(classes: str):
    if classes not in ("subset", "imagenet"):
        raise ValueError(f"classes must be 'subset' (a head over the dataset's own classes) or 'imagenet' "
                         f"(a 1000-way head, scored on the dataset's classes); got {classes!r}")
