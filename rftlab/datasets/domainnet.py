"""DomainNet: 345 classes in six domains (Peng et al., 2019), with its official split files."""
from __future__ import annotations

from pathlib import Path

import torch

from ..data import Task
from ._common import (check_root, class_name, first_missing, layout_error, make_split, natural_info,
                      read_json, stratified_parts, subdirs)
from .phrases import metadata_text

DOMAINS = ("clipart", "infograph", "painting", "quickdraw", "real", "sketch")

LAYOUT = """\
<root>/
├── clipart/  infograph/  painting/  quickdraw/  real/  sketch/    (the domains you have)
│   └── <class>/<file>.jpg          e.g. real/aircraft_carrier/real_001_000001.jpg
├── real_train.txt                  lines "<domain>/<class>/<file> <label>"
├── real_test.txt
└── ...                             one <domain>_train.txt / <domain>_test.txt pair per domain
                                    (also read from <root>/splits/ or <root>/txt/)
labels are taken from the split files: their order is not sorted(folder names)"""

_SPLIT_DIRS = ("", "splits", "txt")


def _split_file(root: Path, domain: str, split: str) -> Path | None:
    for d in _SPLIT_DIRS:
        p = root / d / f"{domain}_{split}.txt"
        if p.is_file():
            return p
    return None


def _read_split(root: Path, path: Path, names: dict[int, str]) -> tuple[list[str], list[int]]:
    """Paths and labels of one split file; records label -> class folder in ``names`` and checks
    that every file agrees on it."""
    paths, labels = [], []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rel, label = line.rsplit(maxsplit=1)
            label = int(label)
            folder = rel.strip().split("/")[-2]
        except (ValueError, IndexError):
            raise layout_error("domainnet", f"{path.name} line {n}: expected '<domain>/<class>/<file> <label>', "
                                            f"got {line!r}", LAYOUT) from None
        known = names.setdefault(label, folder)
        if known != folder:
            raise layout_error("domainnet", f"{path.name} line {n}: label {label} is class {folder!r} here but "
                                            f"{known!r} in another line or split file", LAYOUT)
        paths.append(str(root / rel.strip()))
        labels.append(label)
    if not paths:
        raise layout_error("domainnet", f"{path} is empty", LAYOUT)
    gone = first_missing(paths)
    if gone:
        raise layout_error("domainnet", f"{path.name} names {gone}, which is not there", LAYOUT)
    return paths, labels


def domainnet(root, id_domain: str = "real", ood_domains=None, val_fraction: float = 0.1, seed: int = 0,
              templates=None) -> Task:
    """DomainNet from its folder: train and ID test from ``id_domain``'s official split files,
    val a class-stratified ``val_fraction`` of its train file (DomainNet has no val split),
    one OOD test set per other domain present (or ``ood_domains``). Labels come from the
    split files. Metadata: ``domain`` (index into ``task.info["domains"]``, which
    ``metadata_names["domain"]`` names; phrased and prompted per domain)."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"domainnet: val_fraction is the share of the ID train file held out as val, "
                         f"between 0 and 1; got {val_fraction}")
    root = check_root("domainnet", root, LAYOUT)
    present = [d for d in subdirs(root) if _split_file(root, d, "test") is not None]
    if id_domain not in present:
        have = f"domains with a folder and a test split file: {', '.join(present)}" if present else \
            "no domain has both a folder and a <domain>_test.txt"
        raise layout_error("domainnet", f"ID domain {id_domain!r} not found under {root} ({have})", LAYOUT)
    if _split_file(root, id_domain, "train") is None:
        raise layout_error("domainnet", f"no {id_domain}_train.txt under {root}", LAYOUT)
    if ood_domains is None:
        ood_domains = [d for d in present if d != id_domain]
    ood_domains = list(ood_domains)
    bad = [d for d in ood_domains if d not in present or d == id_domain]
    if bad:
        raise ValueError(f"domainnet: OOD domains {bad} are not available; present besides the ID domain "
                         f"{id_domain!r}: {', '.join(d for d in present if d != id_domain) or 'none'}")
    domains = [id_domain] + ood_domains
    names: dict[int, str] = {}
    train_paths, train_labels = _read_split(root, _split_file(root, id_domain, "train"), names)
    tests = {d: _read_split(root, _split_file(root, d, "test"), names) for d in domains}
    n_classes = max(names) + 1
    gaps = [k for k in range(n_classes) if k not in names]
    if gaps or min(names) < 0:
        raise layout_error("domainnet", f"the split files never use labels {gaps[:10]}: labels must run "
                                        f"0..{n_classes - 1}", LAYOUT)
    classnames = [class_name(names[k]) for k in range(n_classes)]

    def split(name, paths, labels, domain):
        return make_split(name, paths, labels, {"domain": torch.full((len(labels),), domains.index(domain))})

    full_train = split("train", train_paths, train_labels, id_domain)
    tr, va = stratified_parts(full_train.labels, [1 - val_fraction], seed, names=("train", "val"))
    test = split("test", *tests[id_domain], id_domain)
    ood = {d: split(d, *tests[d], d) for d in ood_domains}
    prompts = read_json("prompts.json")["domainnet"]
    return Task("domainnet", classnames, list(templates or prompts["templates"]),
                full_train.select(tr, "train"), full_train.select(va, "val"), test, ood,
                id_domain=id_domain, info=natural_info(root=str(root), domains=domains, val_fraction=val_fraction),
                **metadata_text("domainnet", {"domain": domains}, classnames))
