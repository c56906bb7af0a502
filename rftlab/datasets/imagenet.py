"""ImageNet (val) and its distribution shifts: ImageNetV2, ImageNet-R, ImageNet-A, ImageNet-Sketch
(and ObjectNet, from :mod:`rftlab.datasets.objectnet`, as an OOD set or through ``variant_split``).

Class index = position of the WNID in the sorted list of ImageNet's 1000 WNIDs (shipped as
package data); class names are open_clip's ``IMAGENET_CLASSNAMES``, templates OpenAI's 80.
ImageNet-R and ImageNet-A cover 200 classes each (two different subsets): ``classes="subset"``
gives a 200-way task over their names, ``classes="imagenet"`` keeps the 1000 classes and scores
the split on its subset only (``Split.class_subset``: the other logits are set to -inf).
"""
from __future__ import annotations

import re

from ..data import Split, Task
from ._common import class_folders, eval_only_task, folder_split, layout_error, natural_info, stratified_parts
from .imagenet_classes import (check_classes, imagenet_classnames, imagenet_templates, imagenet_wnids,
                               subset_indices, subset_wnids)
from .objectnet import objectnet_split

WNID = re.compile(r"^n\d{8}$")
INTEGER = re.compile(r"^\d+$")

IMAGENET_LAYOUT = """\
<root>/                            the val folder (or a folder that holds val/)
├── n01440764/
│   ├── ILSVRC2012_val_00000293.JPEG
│   └── ...
├── n01443537/
└── ...                            1000 WNID folders; class = position in the sorted WNID list
(a flat val folder must first be sorted into WNID folders, e.g. with the usual valprep.sh)"""

V2_LAYOUT = """\
<root>/                            e.g. imagenetv2-matched-frequency-format-val/
├── 0/
│   └── 7e3f…1c.jpeg
├── 1/
├── ...
└── 999/                           folder name = ImageNet class index (read as an integer:
                                   sorted as text, "10" would come before "2")"""

R_LAYOUT = """\
<root>/                            imagenet-r/
├── README.txt                     (ignored)
├── n01443537/
│   ├── art_0.jpg
│   └── ...
└── ...                            200 WNID folders: ImageNet-R's classes"""

A_LAYOUT = """\
<root>/                            imagenet-a/
├── README.txt                     (ignored)
├── n01498041/
│   ├── 0.000116_digital clock _ digital clock_0.865662.jpg
│   └── ...
└── ...                            200 WNID folders: ImageNet-A's classes"""

SKETCH_LAYOUT = """\
<root>/                            ImageNet-Sketch (its archive's sketch/ folder is found too)
├── n01440764/
│   ├── n01440764_10026.JPEG
│   └── ...
└── ...                            1000 WNID folders"""


# ------------------------------------------------------------------ folders -> splits
def _check_known(dataset: str, folders: list[str], known: list[str], layout: str):
    known = set(known)
    unknown = [f for f in folders if f not in known]
    if unknown:
        raise layout_error(dataset, f"{len(unknown)} folder(s) are not {dataset} classes (e.g. {unknown[0]}); "
                                    f"is this another dataset?", layout)


def _wnid_split(name: str, dataset: str, root, layout: str, wnids: list[str], **kw) -> Split:
    root, folders = class_folders(dataset, root, layout, WNID)
    _check_known(dataset, folders, wnids, layout)
    pos = {w: i for i, w in enumerate(wnids)}
    return folder_split(name, root, folders, pos.__getitem__, dataset=dataset, layout=layout, **kw)


def imagenet_split(root, name: str = "imagenet") -> Split:
    """Every image of an ImageNet-style folder of WNID folders (val, train or Sketch), 1000-way labels."""
    return _wnid_split(name, "imagenet", root, IMAGENET_LAYOUT, imagenet_wnids())


def v2_split(root, name: str = "imagenet-v2") -> Split:
    """ImageNetV2: folders named by class index; each name is read as an integer."""
    root, folders = class_folders("imagenet-v2", root, V2_LAYOUT, INTEGER)
    bad = [f for f in folders if not 0 <= int(f) < 1000]
    if bad:
        raise layout_error("imagenet-v2", f"folder {bad[0]!r} is not a class index 0..999", V2_LAYOUT)
    return folder_split(name, root, sorted(folders, key=int), int, dataset="imagenet-v2", layout=V2_LAYOUT)


def sketch_split(root, name: str = "imagenet-sketch") -> Split:
    return _wnid_split(name, "imagenet-sketch", root, SKETCH_LAYOUT, imagenet_wnids())


def subset_split(dataset: str, root, classes: str = "imagenet", name: str | None = None) -> Split:
    """ImageNet-R or ImageNet-A: 1000-way labels with ``class_subset`` (``classes="imagenet"``)
    or labels over the 200 classes (``classes="subset"``)."""
    layout = R_LAYOUT if dataset == "imagenet-r" else A_LAYOUT
    wnids = subset_wnids(dataset)
    if classes == "subset":
        return _wnid_split(name or dataset, dataset, root, layout, wnids)
    check_classes(classes)
    root, folders = class_folders(dataset, root, layout, WNID)
    _check_known(dataset, folders, wnids, layout)
    pos = {w: i for i, w in enumerate(imagenet_wnids())}
    return folder_split(name or dataset, root, folders, pos.__getitem__, dataset=dataset, layout=layout,
                        class_subset=subset_indices(dataset))


def variant_split(name: str, root, classes: str = "imagenet") -> tuple[Split, list[str]]:
    """(split, class names) of an ImageNet distribution shift by name (see ``VARIANTS``)."""
    check_classes(classes)
    if name not in VARIANTS:
        raise ValueError(f"unknown ImageNet variant {name!r}; choose from: {', '.join(VARIANTS)}")
    if name == "imagenet-v2":
        return v2_split(root), imagenet_classnames()
    if name == "imagenet-sketch":
        return sketch_split(root), imagenet_classnames()
    if name in ("imagenet-r", "imagenet-a"):
        split = subset_split(name, root, classes)
        if classes == "subset":
            all_names = imagenet_classnames()
            return split, [all_names[i] for i in subset_indices(name).tolist()]
        return split, imagenet_classnames()
    if name == "objectnet":
        return objectnet_split(root, classes)


VARIANTS = ("imagenet-v2", "imagenet-r", "imagenet-a", "imagenet-sketch", "objectnet")


# ------------------------------------------------------------------ tasks
def _standalone(name: str, root, classes: str, holdout, seed: int, templates) -> Task:
    split, classnames = variant_split(name, root, classes)
    return eval_only_task(name, split, classnames, templates or imagenet_templates(), holdout, seed,
                          {"root": str(root), "classes": classes})


def imagenet_v2(root, holdout=(0.1, 0.1), seed: int = 0, templates=None) -> Task:
    """ImageNetV2 on its own (evaluation-only: train/val are holdouts of it, see ``eval_only_task``)."""
    return _standalone("imagenet-v2", root, "imagenet", holdout, seed, templates)


def imagenet_r(root, classes: str = "subset", holdout=(0.1, 0.1), seed: int = 0, templates=None) -> Task:
    """ImageNet-R on its own: a 200-way task (``classes="subset"``) or 1000-way with the split
    scored on the 200 classes (``"imagenet"``). Evaluation-only: train/val are holdouts of it."""
    return _standalone("imagenet-r", root, classes, holdout, seed, templates)


def imagenet_a(root, classes: str = "subset", holdout=(0.1, 0.1), seed: int = 0, templates=None) -> Task:
    """ImageNet-A on its own; as :func:`imagenet_r`."""
    return _standalone("imagenet-a", root, classes, holdout, seed, templates)


def imagenet_sketch(root, holdout=(0.1, 0.1), seed: int = 0, templates=None) -> Task:
    """ImageNet-Sketch on its own (evaluation-only: train/val are holdouts of it)."""
    return _standalone("imagenet-sketch", root, "imagenet", holdout, seed, templates)


def imagenet_task(root, ood: dict | None = None, train_root=None, holdout=(0.1, 0.1),
                  val_fraction: float = 0.01, seed: int = 0, templates=None) -> Task:
    """ImageNet with its distribution shifts: the ID test set is ImageNet val, each entry of
    ``ood`` (name -> root, names as ``VARIANTS``; or name -> a ready 1000-way Split such as
    ``objectnet_split(root, mapping=...)[0]``) an OOD set scored 1000-way.

    With ``train_root`` (ImageNet's train folder) train is it minus a class-stratified
    ``val_fraction`` held out as val. Without it the task is evaluation-only: train and val
    are ``holdout`` fractions of ImageNet val (per class) and the ID test set is the rest
    (``task.info["eval_only"]``)."""
    classnames = imagenet_classnames()
    val = imagenet_split(root, "test")
    info = {"root": str(root), "ood_roots": {k: (v.name if isinstance(v, Split) else str(v))
                                             for k, v in (ood or {}).items()}}
    if train_root is not None:
        if not 0 < val_fraction < 1:
            raise ValueError(f"val_fraction is the share of train held out as val, between 0 and 1; got {val_fraction}")
        full = imagenet_split(train_root, "train")
        tr, va = stratified_parts(full.labels, [1 - val_fraction], seed, names=("train", "val"))
        train, valid, test = full.select(tr, "train"), full.select(va, "val"), val
        info.update(eval_only=False, train_root=str(train_root), val_fraction=val_fraction)
    else:
        tr, va, te = stratified_parts(val.labels, holdout, seed, names=("train", "val", "test"))
        train, valid, test = val.select(tr, "train"), val.select(va, "val"), val.select(te, "test")
        info.update(eval_only=True, holdout=list(holdout),
                    note=f"no train_root: train and val are {holdout[0]:.0%} and {holdout[1]:.0%} holdouts of "
                         f"ImageNet val (per class), the ID test set is the rest")
    splits = {}
    for name, r in (ood or {}).items():
        splits[name] = r if isinstance(r, Split) else variant_split(name, r, "imagenet")[0]
    return Task("imagenet", classnames, list(templates or imagenet_templates()), train, valid, test, splits,
                id_domain="imagenet", info=natural_info(**info))
