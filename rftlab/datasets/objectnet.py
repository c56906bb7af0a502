"""ObjectNet (Barbu et al., 2019): the 113 of its 313 classes that overlap ImageNet-1k.

An ObjectNet class can match several ImageNet classes (alarm clock: analog and digital
clock). With ``classes="subset"`` the task has the 113 ObjectNet class names; with
``classes="imagenet"`` it keeps ImageNet's 1000 classes and the split is scored on merged
classes (``Split.class_pool``): each ObjectNet class takes the largest logit of its ImageNet
classes, every other ImageNet class is left out.
"""
from __future__ import annotations

from pathlib import Path

import torch

from ..data import Split, Task
from ..files import read_json as read_file
from ._common import check_root, eval_only_task, folder_split, layout_error, read_json
from .images import open_rgb
from .imagenet_classes import check_classes, imagenet_classnames, imagenet_templates, imagenet_wnids

LAYOUT = """\
<root>/                            objectnet-1.0/ (or the folder that holds it)
├── images/
│   ├── alarm_clock/
│   │   └── 0a1b2c….png            (every image has a thin red border: 2 pixels are cropped)
│   ├── backpack/
│   └── ...                        313 folders; the 113 that overlap ImageNet-1k are used
└── mappings/                      (not read: rftlab ships the ObjectNet -> ImageNet mapping)"""

BORDER = 2


def open_objectnet(path) -> "PIL.Image.Image":  # noqa: F821
    """An ObjectNet image as RGB with its border (``BORDER`` pixels per side) cropped off."""
    im = open_rgb(path)
    w, h = im.size
    return im.crop((BORDER, BORDER, w - BORDER, h - BORDER)) if min(w, h) > 2 * BORDER else im


def objectnet_mapping(path=None) -> dict[str, dict]:
    """Folder name -> {"name": class name, "imagenet": [ImageNet class indices]} for the 113
    overlapping classes (shipped), or from ``path``: a JSON object folder -> list of ImageNet
    indices or WNIDs (or -> {"name": ..., "imagenet": [...]})."""
    if path is None:
        return read_json("objectnet_imagenet.json")["classes"]
    raw = read_file(path, "objectnet mapping", "It maps ObjectNet folders to ImageNet classes: "
                                               '{"alarm_clock": ["n02694662", 409], ...}.')
    if not isinstance(raw, dict):
        raise ValueError(f"objectnet mapping {path}: expected a JSON object of folder -> ImageNet classes")
    raw = raw.get("classes", raw)
    pos = {w: i for i, w in enumerate(imagenet_wnids())}
    out = {}
    for folder, v in raw.items():
        entry = v if isinstance(v, dict) else {"imagenet": v}
        ids = []
        for x in entry.get("imagenet", entry.get("wnids", [])):
            if isinstance(x, str) and x in pos:
                ids.append(pos[x])
            elif isinstance(x, int) and 0 <= x < 1000:
                ids.append(x)
            else:
                raise ValueError(f"objectnet mapping {path}: {folder!r} maps to {x!r}, neither an ImageNet class "
                                 f"index 0..999 nor an ImageNet WNID")
        if not ids:
            raise ValueError(f"objectnet mapping {path}: {folder!r} maps to no ImageNet class")
        out[folder] = {"name": entry.get("name", folder.replace("_", " ")), "imagenet": ids}
    return out


def _images_root(root) -> Path:
    root = check_root("objectnet", root, LAYOUT)
    for cand in (root / "objectnet-1.0" / "images", root / "images", root):
        if cand.is_dir() and any((cand / f).is_dir() for f in ("alarm_clock", "backpack", "banana", "chair")):
            return cand
    raise layout_error("objectnet", f"no images/ folder with ObjectNet class folders under {root}", LAYOUT)


def objectnet_split(root, classes: str = "imagenet", mapping=None, name: str = "objectnet") -> tuple[Split, list[str]]:
    """(split, class names) of ObjectNet's ImageNet-overlapping classes; see the module docstring."""
    check_classes(classes)
    table = objectnet_mapping(mapping)
    folders = sorted(table)
    images = _images_root(root)
    present = [f for f in folders if (images / f).is_dir()]
    if not present:
        raise layout_error("objectnet", f"none of the {len(folders)} mapped class folders is in {images}", LAYOUT)
    if classes == "subset":
        pos = {f: k for k, f in enumerate(folders)}
        split = folder_split(name, images, present, pos.__getitem__, load_image=open_objectnet, dataset="objectnet",
                             layout=LAYOUT)
        return split, [table[f]["name"] for f in folders]
    pool = torch.full((1000,), -1, dtype=torch.long)
    for k, f in enumerate(folders):
        ids = torch.tensor(table[f]["imagenet"])
        if (pool[ids] >= 0).any():
            raise ValueError(f"objectnet mapping: an ImageNet class of {f!r} is mapped from two ObjectNet classes")
        pool[ids] = k
    first = {f: table[f]["imagenet"][0] for f in folders}
    split = folder_split(name, images, present, first.__getitem__, load_image=open_objectnet, dataset="objectnet",
                         layout=LAYOUT, class_pool=pool)
    return split, imagenet_classnames()


def objectnet(root, classes: str = "subset", mapping=None, holdout=(0.1, 0.1), seed: int = 0,
              templates=None) -> Task:
    """ObjectNet on its own: 113-way (``classes="subset"``) or 1000-way scored on merged classes
    (``"imagenet"``). Evaluation-only: train/val are class-stratified holdouts of it.
    ``mapping``: a JSON file to use instead of the shipped ObjectNet -> ImageNet mapping."""
    split, classnames = objectnet_split(root, classes, mapping)
    return eval_only_task("objectnet", split, classnames, templates or imagenet_templates(), holdout, seed,
                          {"root": str(root), "classes": classes, "border_cropped": BORDER})
