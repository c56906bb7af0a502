"""CelebA as a spurious-correlation task: hair colour against gender (Sagawa et al., 2020)."""
from __future__ import annotations

import csv
from pathlib import Path

import torch

from ..data import Task
from ._common import check_root, first_missing, layout_error, make_split, natural_info, read_json
from .phrases import metadata_text

LAYOUT = """\
<root>/
├── list_attr_celeba.txt        (or the Kaggle list_attr_celeba.csv; also read from Anno/)
├── list_eval_partition.txt     (or list_eval_partition.csv; also read from Eval/)
└── img_align_celeba/           (also img_align_celeba/img_align_celeba/ or Img/img_align_celeba/)
    ├── 000001.jpg
    └── ...
attributes are -1/1 (0/1 accepted); partition 0/1/2 = train/val/test"""

SPLITS = ("train", "val", "test")
_FILE_DIRS = ("", "Anno", "Eval", "celeba", "celeba/Anno", "celeba/Eval")
_IMAGE_DIRS = ("img_align_celeba/img_align_celeba", "img_align_celeba", "Img/img_align_celeba",
               "Img/img_align_celeba/img_align_celeba", "celeba/img_align_celeba",
               "celeba/img_align_celeba/img_align_celeba")


def _find(root: Path, stem: str) -> Path:
    for d in _FILE_DIRS:
        for ext in (".txt", ".csv"):
            p = root / d / f"{stem}{ext}"
            if p.is_file():
                return p
    raise layout_error("celeba", f"neither {stem}.txt nor {stem}.csv found under {root}", LAYOUT)


def _read_attributes(path: Path) -> tuple[list[str], list[str], list[list[int]]]:
    """(attribute names, image ids, rows of values) from the .txt or the Kaggle .csv file."""
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.reader(f))
        header, body = rows[0], [r for r in rows[1:] if r]
        names = header[1:]
        ids = [r[0] for r in body]
        values = [r[1:] for r in body]
    else:
        lines = [ln.split() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        if len(lines[0]) == 1 and lines[0][0].isdigit():  # first line: the number of images
            lines = lines[1:]
        names, body = lines[0], lines[1:]
        if body and len(body[0]) == len(names):  # a header that names the id column too
            names = names[1:]
        ids = [r[0] for r in body]
        values = [r[1:] for r in body]
    bad = next((i for i, v in enumerate(values) if len(v) != len(names)), None)
    if bad is not None:
        raise layout_error("celeba", f"{path.name}: the row for {ids[bad]} has {len(values[bad])} values, "
                                     f"expected {len(names)} (one per attribute)", LAYOUT)
    try:
        ints = [[int(x) for x in v] for v in values]
    except ValueError:
        raise layout_error("celeba", f"{path.name}: attribute values must be -1/1 or 0/1", LAYOUT) from None
    return names, ids, ints


def _read_partition(path: Path) -> dict[str, int]:
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = [r for r in csv.reader(f) if r][1:]
    else:
        rows = [ln.split() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
    try:
        out = {r[0]: int(r[1]) for r in rows}
    except (ValueError, IndexError):
        raise layout_error("celeba", f"{path.name}: lines must be '<image> <0|1|2>'", LAYOUT) from None
    bad = next((k for k, v in out.items() if v not in (0, 1, 2)), None)
    if bad is not None:
        raise layout_error("celeba", f"{path.name}: {bad} has partition {out[bad]}; partitions are 0 (train), "
                                     f"1 (val) and 2 (test)", LAYOUT)
    return out


def _names(attr: str) -> list[str]:
    """Names of an attribute's values 0 and 1 (shipped ones, else "not <attr>" / "<attr>")."""
    table = read_json("prompts.json")["celeba"]["classnames"]
    if attr in table:
        return list(table[attr])
    words = attr.replace("_", " ").lower()
    return [f"not {words}", words]


def celeba(root, target: str = "Blond_Hair", spurious: str = "Male", templates=None) -> Task:
    """CelebA from its folder: label = ``target`` attribute, groups ``2 * label + spurious``
    (default: blond hair against male), the official partition. Attributes are read as -1/1
    and stored as 0/1; every attribute is a metadata tensor (int8) under its CelebA name,
    with ``group`` beside them; ``metadata_names`` names each attribute's values ("female",
    "male"), and ``Male`` is phrased and prompted (``metadata_phrases``, ``metadata_prompts``)."""
    root = check_root("celeba", root, LAYOUT)
    names, ids, values = _read_attributes(_find(root, "list_attr_celeba"))
    for a in (target, spurious):
        if a not in names:
            raise ValueError(f"celeba: unknown attribute {a!r}; CelebA's attributes are: {', '.join(names)}")
    if target == spurious:
        raise ValueError("celeba: the target and the spurious attribute must differ")
    partition = _read_partition(_find(root, "list_eval_partition"))
    attrs = torch.tensor(values, dtype=torch.int8)
    if not bool(((attrs == -1) | (attrs == 0) | (attrs == 1)).all()):
        raise layout_error("celeba", "attribute values must be -1/1 (or 0/1)", LAYOUT)
    attrs = (attrs > 0).to(torch.int8)  # -1/1 -> 0/1
    image_dir = next((root / d for d in _IMAGE_DIRS if (root / d / ids[0]).is_file()), None)
    if image_dir is None:
        raise layout_error("celeba", f"image {ids[0]} not found in any of {', '.join(_IMAGE_DIRS)} under {root}",
                           LAYOUT)
    missing = [i for i in ids if i not in partition]
    if missing:
        raise layout_error("celeba", f"{len(missing)} images of the attribute file have no partition "
                                     f"(e.g. {missing[0]})", LAYOUT)
    part = torch.tensor([partition[i] for i in ids])
    t, s = names.index(target), names.index(spurious)
    splits = {}
    for k, name in enumerate(SPLITS):
        idx = (part == k).nonzero().flatten()
        if len(idx) == 0:
            raise layout_error("celeba", f"the partition file has no images in partition {k} ({name})", LAYOUT)
        paths = [str(image_dir / ids[i]) for i in idx.tolist()]
        gone = first_missing(paths)
        if gone:
            raise layout_error("celeba", f"{gone} is not there", LAYOUT)
        a = attrs[idx]
        y = a[:, t].long()
        meta = {n: a[:, j] for j, n in enumerate(names)}
        meta["group"] = 2 * y + a[:, s].long()
        splits[name] = make_split(name, paths, y, meta)
    prompts = read_json("prompts.json")["celeba"]["templates"]
    classes, spur = _names(target), _names(spurious)
    return Task("celeba", classes, list(templates or prompts.get(target, prompts["default"])),
                splits["train"], splits["val"], splits["test"],
                group_names=[f"{c}/{p}" for c in classes for p in spur], id_domain="celeba",
                info=natural_info(root=str(root), target=target, spurious=spurious, image_dir=str(image_dir)),
                **metadata_text("celeba", {n: _names(n) for n in names}, classes))
