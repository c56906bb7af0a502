"""Tiny on-disk dataset trees in the real layouts (a few 8x8 images each), for tests/test_datasets.py."""
from __future__ import annotations

import csv
from pathlib import Path

from PIL import Image

COLORS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (200, 200, 30), (30, 200, 200), (200, 30, 200)]


def image(path: Path, k: int = 0, mode: str = "RGB", size: int = 8) -> Path:
    """A small solid image; JPEG or PNG from the suffix; ``mode="L"`` writes a grey one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    color = COLORS[k % len(COLORS)] if mode == "RGB" else 40 * (k % 6)
    Image.new(mode, (size, size), color).save(path)
    return path


def readme(root: Path, name: str = "README.txt"):
    root.mkdir(parents=True, exist_ok=True)
    (root / name).write_text("This archive holds a dataset.\n")


def waterbirds_tree(root: Path, per_group: dict | None = None) -> Path:
    """metadata.csv + images; ``per_group[(split, y, place)]`` images each (default 2)."""
    readme(root)
    rows, i = [], 0
    for split in (0, 1, 2):
        for y in (0, 1):
            for place in (0, 1):
                for _ in range((per_group or {}).get((split, y, place), 2)):
                    i += 1
                    rel = f"{y:03d}.Bird_{y}/Bird_{i:04d}.jpg"
                    image(root / rel, 2 * y + place)
                    rows.append([i, rel, y, split, place, f"bg/{place}/{i}.jpg"])
    with open(root / "metadata.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["img_id", "img_filename", "y", "split", "place", "place_filename"])
        w.writerows(rows)
    return root


CELEBA_ATTRS = ["5_o_Clock_Shadow", "Blond_Hair", "Male", "Smiling"]


def celeba_rows():
    """(image id, [attributes -1/1], partition) for 12 images: blond x male x partition."""
    out, i = [], 0
    for part in (0, 1, 2):
        for blond in (-1, 1):
            for male in (-1, 1):
                i += 1
                out.append((f"{i:06d}.jpg", [1 if i % 2 else -1, blond, male, -1], part))
    return out


def celeba_tree(root: Path, kind: str = "txt", doubled: bool = True) -> Path:
    """CelebA with the .txt files (count line + header line) or the Kaggle .csv files; images
    in img_align_celeba/img_align_celeba/ (``doubled``) or img_align_celeba/."""
    readme(root)
    rows = celeba_rows()
    img_dir = root / "img_align_celeba" / ("img_align_celeba" if doubled else "")
    for k, (name, _, _) in enumerate(rows):
        image(img_dir / name, k)
    if kind == "txt":
        lines = [str(len(rows)), " ".join(CELEBA_ATTRS)]
        lines += [f"{n} " + " ".join(f"{v:2d}" for v in a) for n, a, _ in rows]
        (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
        (root / "list_eval_partition.txt").write_text("".join(f"{n} {p}\n" for n, _, p in rows))
    else:
        with open(root / "list_attr_celeba.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image_id", *CELEBA_ATTRS])
            w.writerows([[n, *a] for n, a, _ in rows])
        with open(root / "list_eval_partition.csv", "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["image_id", "partition"])
            w.writerows([[n, p] for n, _, p in rows])
    return root


# the official label order is not sorted(folders): zebra 0, hot_air_balloon 1, ant 2
DOMAINNET_CLASSES = ["zebra", "hot_air_balloon", "ant"]


def domainnet_tree(root: Path, domains=("real", "sketch", "clipart"), n_train: int = 5, n_test: int = 2,
                   stray_domain: str | None = "quickdraw") -> Path:
    """Domain folders + <domain>_train.txt / _test.txt; ``stray_domain`` gets a folder but no split files."""
    readme(root)
    for d in domains:
        for split, n in (("train", n_train), ("test", n_test)):
            lines = []
            for label, c in enumerate(DOMAINNET_CLASSES):
                for j in range(n):
                    rel = f"{d}/{c}/{d}_{split}_{label}_{j}.jpg"
                    image(root / rel, label)
                    lines.append(f"{rel} {label}")
            (root / f"{d}_{split}.txt").write_text("\n".join(lines) + "\n")
    if stray_domain:
        image(root / stray_domain / "ant" / "x.jpg")
    return root


def wnid_tree(root: Path, wnids, per_class: int = 3, ext: str = ".JPEG", stray: bool = True) -> Path:
    """<root>/<wnid>/<files> with a README (and a stray non-class folder) in the root."""
    if stray:
        readme(root)
        (root / "__MACOSX").mkdir(parents=True, exist_ok=True)
    for k, w in enumerate(wnids):
        for j in range(per_class):
            image(root / w / f"{w}_{j}{ext}", k)
    return root


def v2_tree(root: Path, classes=(2, 10, 999), per_class: int = 3) -> Path:
    readme(root)
    for c in classes:
        for j in range(per_class):
            image(root / str(c) / f"{c:04d}{j}abc.jpeg", c)
    return root


def objectnet_tree(root: Path, folders=("alarm_clock", "backpack", "squeegee"), per_class: int = 3) -> Path:
    """objectnet-1.0/images/<folder>/*.png (12x12 with a red 2-pixel border); squeegee is not
    an ImageNet class and must be left out."""
    base = root / "objectnet-1.0"
    readme(base)
    (base / "mappings").mkdir(parents=True, exist_ok=True)
    for k, f in enumerate(folders):
        for j in range(per_class):
            im = Image.new("RGB", (12, 12), (255, 0, 0))
            im.paste(Image.new("RGB", (8, 8), COLORS[k]), (2, 2))
            p = base / "images" / f / f"{k}{j}.png"
            p.parent.mkdir(parents=True, exist_ok=True)
            im.save(p)
    return root


def folder_tree(root: Path, classes=("cat", "dog", "red_fox"), per_class: int = 10, splits=None) -> Path:
    """<root>/<class>/ or <root>/<split>/<class>/ with a README, a hidden file and an empty folder."""
    readme(root)
    (root / "notes").mkdir(parents=True, exist_ok=True)  # a folder without images: ignored
    for base in ([root / s for s in splits] if splits else [root]):
        for k, c in enumerate(classes):
            for j in range(per_class):
                image(base / c / f"{j}.png", k, mode="L" if j % 2 else "RGB")
            (base / c / f"._{0}.png").write_bytes(b"not an image")  # macOS resource fork
    return root


def csv_tree(root: Path, rows, name: str = "labels.csv", header=("path", "label", "group")) -> Path:
    """Images under images/ and a CSV of ``rows`` (path relative to the CSV, label, ...)."""
    root.mkdir(parents=True, exist_ok=True)
    for k, r in enumerate(rows):
        image(root / r[0], k)
    with open(root / name, "w", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(header)
        w.writerows(rows)
    return root / name
