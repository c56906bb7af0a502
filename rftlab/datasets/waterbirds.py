"""Waterbirds: land and water birds pasted on land and water backgrounds (Sagawa et al., 2020)."""
from __future__ import annotations

import csv

from ..data import Task
from ._common import check_root, first_missing, layout_error, make_split, natural_info, read_json, subdirs
from .phrases import metadata_text

LAYOUT = """\
<root>/                              e.g. waterbird_complete95_forest2water2/
├── metadata.csv                     img_id,img_filename,y,split,place,place_filename
├── 001.Black_footed_Albatross/
│   ├── Black_Footed_Albatross_0046_18.jpg
│   └── ...
└── ...                              (img_filename is relative to <root>)
metadata.csv: y 1 = waterbird, place 1 = water background, split 0/1/2 = train/val/test"""

COLUMNS = ("img_filename", "y", "split", "place")
SPLITS = ("train", "val", "test")


def _find_csv(root):
    if (root / "metadata.csv").is_file():
        return root
    # an archive extracted one level deeper: <root>/waterbird_complete95_forest2water2/metadata.csv
    inner = [root / d for d in subdirs(root) if (root / d / "metadata.csv").is_file()]
    if len(inner) == 1:
        return inner[0]
    raise layout_error("waterbirds", f"no metadata.csv in {root}", LAYOUT)


def waterbirds(root, templates=None) -> Task:
    """Waterbirds from its folder: classes landbird / waterbird, groups ``2 * y + place``
    ("landbird/land", "landbird/water", "waterbird/land", "waterbird/water"), the official
    train / val / test split. Metadata: ``group``, ``place`` (0 land, 1 water; named, phrased and
    prompted in ``metadata_names`` / ``metadata_phrases`` / ``metadata_prompts``)."""
    root = _find_csv(check_root("waterbirds", root, LAYOUT))
    prompts = read_json("prompts.json")["waterbirds"]
    with open(root / "metadata.csv", newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise layout_error("waterbirds", f"metadata.csv lacks the column(s) {missing}; "
                                             f"it has {reader.fieldnames}", LAYOUT)
        rows = list(reader)
    parts = {s: ([], [], []) for s in SPLITS}
    for i, r in enumerate(rows):
        try:
            y, split, place = int(float(r["y"])), int(float(r["split"])), int(float(r["place"]))
        except ValueError:
            raise layout_error("waterbirds", f"metadata.csv row {i + 2}: y, split and place must be integers; "
                                             f"got {r['y']!r}, {r['split']!r}, {r['place']!r}", LAYOUT) from None
        if y not in (0, 1) or place not in (0, 1) or split not in (0, 1, 2):
            raise layout_error("waterbirds", f"metadata.csv row {i + 2}: y and place must be 0/1 and split "
                                             f"0/1/2; got y={y}, place={place}, split={split}", LAYOUT)
        paths, labels, places = parts[SPLITS[split]]
        paths.append(str(root / r["img_filename"]))
        labels.append(y)
        places.append(place)
    splits = {}
    for name, (paths, labels, places) in parts.items():
        if not paths:
            raise layout_error("waterbirds", f"metadata.csv has no rows with split={SPLITS.index(name)} ({name})",
                               LAYOUT)
        gone = first_missing(paths)
        if gone:
            raise layout_error("waterbirds", f"metadata.csv names {gone}, which is not there", LAYOUT)
        group = [2 * y + p for y, p in zip(labels, places)]
        splits[name] = make_split(name, paths, labels, {"group": group, "place": places})
    classes, places = prompts["classnames"], prompts["places"]
    return Task("waterbirds", list(classes), list(templates or prompts["templates"]),
                splits["train"], splits["val"], splits["test"],
                group_names=[f"{c}/{p}" for c in classes for p in places], id_domain="waterbirds",
                info=natural_info(root=str(root), places=list(places)),
                **metadata_text("waterbirds", {"place": list(places)}, list(classes)))
