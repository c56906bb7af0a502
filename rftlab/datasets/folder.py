"""Your own images: a folder per class (ImageFolder) or a CSV of ``path,label[,group]``."""
from __future__ import annotations

import csv
import re
from pathlib import Path

import torch

from ..data import Task
from ._common import (check_root, class_name, first_missing, image_files, layout_error, make_split, natural_info,
                      read_json, stratified_parts, subdirs)

FOLDER_LAYOUT = """\
<root>/                            either one folder per class ...
├── cat/
│   ├── 0001.jpg
│   └── ...
└── dog/
    └── ...
<root>/                            ... or split folders, each with one folder per class
├── train/cat/ train/dog/
├── val/...                        (optional: else held out from train; also valid/ or validation/)
└── test/...                       (optional: else held out from train)
class names = folder names, underscores read as spaces; labels follow the sorted folder names"""

CSV_LAYOUT = """\
<folder>/
├── labels.csv                     path,label[,group][,split]   (a header row is optional)
└── images/...                     paths are relative to the CSV's folder (or absolute)
label: class names or integers 0..C-1; group: names or integers; split: train/val/test (or 0/1/2)
example:
    path,label,group
    images/a.jpg,cat,indoor
    images/b.jpg,dog,outdoor"""

_SPLIT_NAMES = {"train": "train", "0": "train", "val": "val", "valid": "val", "validation": "val", "1": "val",
                "test": "test", "2": "test"}
_INT = re.compile(r"^-?\d+$")


def _generic_templates(templates):
    return list(templates or read_json("prompts.json")["generic"]["templates"])


def _fill_missing(have: dict, val_fraction: float, test_fraction: float, seed: int) -> dict:
    """Carve the missing val / test splits (class-stratified) out of ``have["train"]``."""
    missing = [s for s in ("val", "test") if s not in have]
    if not missing:
        return have
    train = have["train"]
    fractions = [val_fraction if s == "val" else test_fraction for s in missing]
    parts = stratified_parts(train.labels, fractions, seed, names=[*missing, "train"])
    out = dict(have)
    for s, idx in zip([*missing, "train"], parts):
        out[s] = train.select(idx, s)
    return out


def image_folder(root, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 0, templates=None,
                 name: str | None = None) -> Task:
    """A task from class folders (``<root>/<class>/...``, or ``train/``, ``val/``, ``test/``
    folders of class folders). Missing val / test splits are class-stratified holdouts of train
    (``val_fraction``, ``test_fraction``). Folders without images are ignored."""
    root = check_root("imagefolder", root, FOLDER_LAYOUT)
    top = subdirs(root)
    split_dirs = {}
    for d in top:
        if d.lower() in ("train", "val", "valid", "validation", "test") and subdirs(root / d):
            split_dirs[_SPLIT_NAMES[d.lower()]] = root / d
    if split_dirs and "train" not in split_dirs:
        raise layout_error("imagefolder", f"{root} has {', '.join(sorted(split_dirs))}/ but no train/", FOLDER_LAYOUT)
    bases = split_dirs or {"train": root}
    files = {s: {c: image_files(b / c, recursive=True) for c in subdirs(b)} for s, b in bases.items()}
    classes = sorted({c for per in files.values() for c, f in per.items() if f})
    if not classes:
        raise layout_error("imagefolder", f"no class folder with images under {root}", FOLDER_LAYOUT)
    have = {}
    for s, per in files.items():
        paths = [p for c in classes for p in per.get(c, [])]
        labels = [k for k, c in enumerate(classes) for _ in per.get(c, [])]
        if not paths:
            raise layout_error("imagefolder", f"{bases[s]} holds no images in class folders", FOLDER_LAYOUT)
        have[s] = make_split(s, paths, labels)
    splits = _fill_missing(have, val_fraction, test_fraction, seed)
    ignored = sorted({c for per in files.values() for c, f in per.items() if not f} - set(classes))
    if ignored:
        import warnings
        warnings.warn(f"imagefolder {root}: ignored {len(ignored)} folder(s) without images: {', '.join(ignored[:5])}"
                      f"{' ...' if len(ignored) > 5 else ''} (a class folder must hold images to be a class)",
                      stacklevel=2)
    return Task(name or root.name, [class_name(c) for c in classes], _generic_templates(templates),
                splits["train"], splits["val"], splits["test"], id_domain=name or root.name,
                info=natural_info(root=str(root), folders=classes, ignored_folders=ignored,
                                  split_folders=sorted(split_dirs)))


def _encode(values: list[str], names, what: str, path) -> tuple[list[int], list[str]]:
    """Integer codes and names for a column of class or group labels (names or integers)."""
    if all(_INT.match(v) for v in values):
        codes = [int(v) for v in values]
        n = max(codes) + 1
        if min(codes) < 0:
            raise ValueError(f"{path}: {what} integers must be >= 0")
        if names is None:
            return codes, [str(i) for i in range(n)]
        if n > len(names):
            raise ValueError(f"{path}: {what} {n - 1} appears but only {len(names)} {what} names were given")
        return codes, list(names)
    names = list(names) if names is not None else sorted(set(values))
    pos = {v: i for i, v in enumerate(names)}
    unknown = sorted(set(values) - set(pos))
    if unknown:
        raise ValueError(f"{path}: {what} values {unknown[:5]} are not among the given names {names[:10]}")
    return [pos[v] for v in values], names


def csv_dataset(path, classnames=None, group_names=None, val_fraction: float = 0.1, test_fraction: float = 0.2,
                seed: int = 0, templates=None, name: str | None = None) -> Task:
    """A task from a CSV of ``path,label[,group][,split]`` (header optional; paths relative to
    the CSV). Labels and groups may be names or integers (give ``classnames`` /
    ``group_names`` to name integers or fix the order; names otherwise sort). Without a
    split column val and test are class-stratified holdouts. A group column gives
    ``meta["group"]`` and per-group metrics."""
    p = Path(path).expanduser() if path is not None else None
    if p is not None and p.is_dir():
        found = sorted(p.glob("*.csv"))
        if len(found) != 1:
            raise layout_error("csv", f"{p} holds {len(found)} .csv files; give the CSV file itself", CSV_LAYOUT)
        p = found[0]
    if p is None or not p.is_file():
        raise layout_error("csv", "no root given: pass the CSV file" if p is None else f"{p} does not exist",
                           CSV_LAYOUT)
    with open(p, newline="", encoding="utf-8") as f:
        rows = [[c.strip() for c in r] for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if not rows:
        raise layout_error("csv", f"{p} is empty", CSV_LAYOUT)
    head = [c.lower() for c in rows[0]]
    if "path" in head and "label" not in head:
        raise layout_error("csv", f"{p}: the header {rows[0]} has no label column", CSV_LAYOUT)
    if "path" in head and "label" in head:
        cols, rows = {c: head.index(c) for c in ("path", "label", "group", "split") if c in head}, rows[1:]
    elif 2 <= len(rows[0]) <= 4:
        cols = dict(zip(("path", "label", "group", "split"), range(len(rows[0]))))
    else:
        raise layout_error("csv", f"{p}: expected the columns path,label[,group][,split]; the first row is "
                                  f"{rows[0]}", CSV_LAYOUT)
    short = next((i for i, r in enumerate(rows) if len(r) <= max(cols.values())), None)
    if short is not None:
        raise layout_error("csv", f"{p}: data row {short + 1} has {len(rows[short])} columns, "
                                  f"expected {max(cols.values()) + 1}", CSV_LAYOUT)
    if not rows:
        raise layout_error("csv", f"{p} has a header but no rows", CSV_LAYOUT)
    base = p.parent
    paths = [str(base / r[cols["path"]]) for r in rows]
    gone = first_missing(paths)
    if gone:
        raise layout_error("csv", f"{p.name} names {gone}, which is not there (paths are relative to the "
                                  f"CSV's folder)", CSV_LAYOUT)
    labels, classes = _encode([r[cols["label"]] for r in rows], classnames, "label", p)
    meta, groups = {}, None
    if "group" in cols:
        meta["group"], groups = _encode([r[cols["group"]] for r in rows], group_names, "group", p)
    full = make_split("all", paths, labels, meta)
    if "split" in cols:
        which = [_SPLIT_NAMES.get(r[cols["split"]].lower()) for r in rows]
        bad = next((r[cols["split"]] for r, w in zip(rows, which) if w is None), None)
        if bad is not None:
            raise layout_error("csv", f"{p}: split value {bad!r} is not train/val/test (or 0/1/2)", CSV_LAYOUT)
        have = {s: full.select(torch.tensor([i for i, w in enumerate(which) if w == s]), s)
                for s in ("train", "val", "test") if s in which}
        if "train" not in have:
            raise layout_error("csv", f"{p}: the split column names no train rows", CSV_LAYOUT)
        splits = _fill_missing(have, val_fraction, test_fraction, seed)
    else:
        val, test, train = stratified_parts(full.labels, [val_fraction, test_fraction], seed,
                                            names=("val", "test", "train"))
        splits = {"train": full.select(train, "train"), "val": full.select(val, "val"),
                  "test": full.select(test, "test")}
    return Task(name or p.stem, classes, _generic_templates(templates), splits["train"], splits["val"],
                splits["test"], group_names=groups, id_domain=name or p.stem,
                info=natural_info(root=str(p)))
