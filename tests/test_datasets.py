"""Real-dataset loaders on tiny fixture trees in each real layout: labels, groups, splits, traps."""
import math
from pathlib import Path

import pytest
import torch
from PIL import Image

import rftlab
from rftlab.data import Split, Task
from rftlab.data import named_values
from rftlab.datasets import (DATASETS, imagenet_classnames, imagenet_task, imagenet_wnids, load_dataset,
                             natural_spurious_phrases, objectnet_mapping, subset_indices, subset_wnids, variant_split)
from rftlab.errors import DatasetLayoutError
from rftlab.metrics import ece, nll

from fixtures_datasets import (CELEBA_ATTRS, DOMAINNET_CLASSES, celeba_rows, celeba_tree, csv_tree, domainnet_tree,
                               folder_tree, image, objectnet_tree, v2_tree, waterbirds_tree, wnid_tree)

WN = imagenet_wnids()
R_WNIDS = subset_wnids("imagenet-r")
A_WNIDS = subset_wnids("imagenet-a")
A_ONLY = [w for w in A_WNIDS if w not in R_WNIDS]
HOLD = (1 / 3, 1 / 3)  # three images per class: one each for train, val and test


def _paths_exist(split):
    return all(Path(p).is_file() for p in split.images)


def _everything(task):
    """(labels, images) of train + val + test together."""
    splits = (task.train, task.val, task.test)
    return torch.cat([s.labels for s in splits]), [p for s in splits for p in s.images]


# ---------------------------------------------------------------- package data
def test_wnid_lists_are_the_official_subsets():
    assert len(WN) == 1000 and WN == sorted(WN) and len(set(WN)) == 1000
    assert WN[0] == "n01440764" and WN[999] == "n15075141"
    for sub in (R_WNIDS, A_WNIDS):
        assert len(sub) == 200 and len(set(sub)) == 200 and set(sub) <= set(WN)
    assert set(R_WNIDS) != set(A_WNIDS)
    # ImageNet-R's indices as printed in its authors' eval.py; ImageNet-A's first ones from theirs
    r = subset_indices("imagenet-r").tolist()
    assert r[:10] == [1, 2, 4, 6, 8, 9, 11, 13, 22, 23] and r[-5:] == [967, 980, 981, 983, 988]
    assert A_WNIDS[:4] == ["n01498041", "n01531178", "n01534433", "n01558993"]
    assert len(imagenet_classnames()) == 1000


def test_objectnet_mapping_covers_113_classes_and_125_imagenet_classes():
    m = objectnet_mapping()
    assert len(m) == 113
    ids = [i for v in m.values() for i in v["imagenet"]]
    assert len(ids) == 125 and len(set(ids)) == 125
    for v in m.values():  # the WNIDs and the indices say the same thing
        assert [WN[i] for i in v["imagenet"]] == v["wnids"]
    assert m["alarm_clock"]["imagenet"] == [409, 530]  # analog clock, digital clock
    assert m["alarm_clock"]["name"] == "alarm clock"


def test_natural_spurious_phrases():
    pools = {k: natural_spurious_phrases(k) for k in ("background", "texture", "quality")}
    for k, pool in pools.items():
        assert len(pool) >= 15 and len(set(pool)) == len(pool), k
        assert all(p.count("{}") == 1 for p in pool), k
    assert natural_spurious_phrases() == sum(pools.values(), [])
    with pytest.raises(ValueError, match="background, texture, quality"):
        natural_spurious_phrases("weather")


def test_metadata_phrases_name_one_value_per_word():
    """A description is labelled with the values whose words it uses, so no word may name two values."""
    from rftlab.datasets.phrases import METADATA_PHRASES
    assert set(METADATA_PHRASES) <= set(DATASETS)
    for dataset, keys in METADATA_PHRASES.items():
        for key, per_value in keys.items():
            for value, phrases in per_value.items():
                assert all(p.count("{}") == 1 for p in phrases), (dataset, value)
                for p in phrases:
                    assert named_values(p, keys) == (key, [value]), (dataset, p)


# ---------------------------------------------------------------- Waterbirds
def test_waterbirds_labels_groups_splits(tmp_path):
    counts = {(0, 0, 0): 5, (0, 0, 1): 1, (0, 1, 0): 1, (0, 1, 1): 3}
    task = load_dataset("waterbirds", waterbirds_tree(tmp_path / "wb", counts))
    assert isinstance(task, Task) and task.classnames == ["landbird", "waterbird"]
    assert task.group_names == ["landbird/land", "landbird/water", "waterbird/land", "waterbird/water"]
    assert torch.bincount(task.train.meta["group"], minlength=4).tolist() == [5, 1, 1, 3]
    for s in (task.train, task.val, task.test):
        assert torch.equal(s.meta["group"], 2 * s.labels + s.meta["place"])
        assert _paths_exist(s)
    assert len(task.val) == len(task.test) == 8
    assert "{}" in task.templates[0] and task.info["spurious_phrases"]
    assert task.metadata_names == {"place": ["land", "water"]} and task.value_names("place") == ["land", "water"]
    assert list(task.metadata_phrases["place"]) == ["land", "water"] and "{} on a lake" in task.descriptions()
    assert task.named_values("{} in a kitchen") is None and task.named_values("{} by the lake") == ("place", ["water"])
    assert list(task.metadata_prompts["place"]) == ["land", "water"]
    assert "landbird in a forest" in task.metadata_prompts["place"]["land"]
    assert "waterbird on a lake" in task.metadata_prompts["place"]["water"]
    # the Task's own group evaluation: always "landbird" is right on landbird groups only
    logits = torch.zeros(len(task.test), 2)
    logits[:, 0] = 1
    m = task.evaluate({"id": logits})
    assert m["worst_group_acc"] == 0.0 and m["group_acc"]["landbird/water"] == 1.0
    assert m["weighted_acc"] == pytest.approx(6 / 10)  # train groups 5+1 of 10 are landbirds


def test_waterbirds_found_one_level_down_and_bad_csv_explained(tmp_path):
    waterbirds_tree(tmp_path / "outer" / "waterbird_complete95_forest2water2")
    assert len(load_dataset("waterbirds", tmp_path / "outer").train) == 8
    root = waterbirds_tree(tmp_path / "bad")
    text = (root / "metadata.csv").read_text().replace("place_filename", "pf").replace(",place,", ",where,")
    (root / "metadata.csv").write_text(text)
    with pytest.raises(DatasetLayoutError, match=r"lacks the column\(s\) \['place'\]"):
        load_dataset("waterbirds", root)


# ---------------------------------------------------------------- CelebA
@pytest.mark.parametrize("kind, doubled", [("txt", True), ("csv", False)])
def test_celeba_minus_one_one_and_image_folders(tmp_path, kind, doubled):
    task = load_dataset("celeba", celeba_tree(tmp_path / "c", kind, doubled))
    rows = celeba_rows()
    train_rows = [r for r in rows if r[2] == 0]
    assert task.train.labels.tolist() == [int(a[1] > 0) for _, a, _ in train_rows]
    assert task.train.meta["Male"].tolist() == [int(a[2] > 0) for _, a, _ in train_rows]
    assert set(task.train.meta) == set(CELEBA_ATTRS) | {"group"}
    assert task.train.meta["Smiling"].tolist() == [0] * 4  # -1 everywhere -> 0
    assert torch.equal(task.test.meta["group"], 2 * task.test.labels + task.test.meta["Male"].long())
    assert task.group_names[0] == "non-blond hair/female" and task.group_names[3] == "blond hair/male"
    assert len(task.train) == len(task.val) == len(task.test) == 4
    assert ("img_align_celeba/img_align_celeba" in task.info["image_dir"]) == doubled
    assert _paths_exist(task.train)
    assert set(task.metadata_names) == set(CELEBA_ATTRS)       # every attribute's values are named
    assert task.metadata_names["Male"] == ["female", "male"]
    assert task.metadata_names["5_o_Clock_Shadow"] == ["not 5 o clock shadow", "5 o clock shadow"]
    assert list(task.metadata_phrases) == ["Male"] and task.named_values("a man: {}") == ("Male", ["male"])
    assert "a woman: blond hair" in task.metadata_prompts["Male"]["female"]


def test_celeba_other_target_and_unknown_attribute(tmp_path):
    root = celeba_tree(tmp_path / "c")
    task = load_dataset("celeba", root, target="Male", spurious="5_o_Clock_Shadow")
    assert task.classnames == ["female", "male"]
    assert task.group_names[1] == "female/5 o clock shadow"
    with pytest.raises(ValueError, match="unknown attribute 'Bald'.*Blond_Hair"):
        load_dataset("celeba", root, target="Bald")


# ---------------------------------------------------------------- DomainNet
def test_domainnet_label_order_comes_from_the_split_files(tmp_path):
    task = load_dataset("domainnet", domainnet_tree(tmp_path / "dn"))
    assert task.classnames == ["zebra", "hot air balloon", "ant"]  # not sorted(folders)
    assert sorted(DOMAINNET_CLASSES) != DOMAINNET_CLASSES
    # every image sits in the folder of its class
    for s in (task.train, task.val, task.test, *task.ood.values()):
        assert all(Path(p).parent.name == DOMAINNET_CLASSES[y] for p, y in zip(s.images, s.labels.tolist()))
    assert set(task.ood) == {"clipart", "sketch"}  # quickdraw has a folder but no split files
    assert task.id_domain == "real" and task.info["domains"][0] == "real"
    assert (task.test.meta["domain"] == 0).all()
    for k, s in task.ood.items():
        assert (s.meta["domain"] == task.info["domains"].index(k)).all() and len(s) == 6
    assert task.metadata_names == {"domain": task.info["domains"]} and task.value_names("domain")[0] == "real"
    assert list(task.metadata_phrases["domain"]) == ["real", "clipart", "sketch"]
    assert task.named_values("a pencil sketch of a {}") == ("domain", ["sketch"])
    assert task.metadata_prompts["domain"]["sketch"][:2] == ["a sketch of a zebra", "a pencil sketch of a zebra"]
    # val is held out of the ID train file, class by class
    assert set(task.train.images).isdisjoint(task.val.images) and len(task.train) + len(task.val) == 15
    assert torch.bincount(task.val.labels).tolist() == [1, 1, 1]


def test_domainnet_choices_and_errors(tmp_path):
    root = domainnet_tree(tmp_path / "dn")
    task = load_dataset("domainnet", root, id_domain="sketch", ood_domains=["real"])
    assert list(task.ood) == ["real"] and task.id_domain == "sketch"
    assert task.metadata_names == {"domain": ["sketch", "real"]} and list(task.metadata_prompts["domain"]) == [
        "sketch", "real"]
    with pytest.raises(DatasetLayoutError, match="ID domain 'painting' not found.*clipart, real, sketch"):
        load_dataset("domainnet", root, id_domain="painting")
    with pytest.raises(ValueError, match="quickdraw"):
        load_dataset("domainnet", root, ood_domains=["quickdraw"])
    txt = root / "sketch_test.txt"
    txt.write_text(txt.read_text().replace("sketch/ant/sketch_test_2_0.jpg 2", "sketch/ant/sketch_test_2_0.jpg 0"))
    with pytest.raises(DatasetLayoutError, match="label 0 is class 'ant' here but 'zebra'"):
        load_dataset("domainnet", root)


# ---------------------------------------------------------------- ImageNet family
@pytest.fixture
def imagenet_roots(tmp_path):
    r = {
        "val": wnid_tree(tmp_path / "imagenet" / "val", [WN[0], WN[1], WN[999], R_WNIDS[5]], per_class=10),
        "imagenet-v2": v2_tree(tmp_path / "v2"),
        "imagenet-r": wnid_tree(tmp_path / "imagenet-r", R_WNIDS[:2] + R_WNIDS[-1:]),
        "imagenet-a": wnid_tree(tmp_path / "imagenet-a", A_ONLY[:2]),
        "imagenet-sketch": wnid_tree(tmp_path / "ImageNet-Sketch" / "sketch", [WN[3], WN[500]], stray=False),
        "objectnet": objectnet_tree(tmp_path / "objectnet"),
    }
    readme(tmp_path / "ImageNet-Sketch")
    return r


def readme(p):
    p.mkdir(parents=True, exist_ok=True)
    (p / "README.md").write_text("hi\n")


def test_imagenet_val_labels_are_sorted_wnid_positions(imagenet_roots):
    task = imagenet_task(imagenet_roots["val"])
    assert task.num_classes == 1000 and task.classnames[0] == "tench"
    assert len(task.templates) == 80 and all(t.count("{}") == 1 for t in task.templates)
    every = torch.cat([task.train.labels, task.val.labels, task.test.labels])
    assert sorted(set(every.tolist())) == [0, 1, WN.index(R_WNIDS[5]), 999]
    for s in (task.train, task.val, task.test):
        assert all(Path(p).parent.name == WN[y] for p, y in zip(s.images, s.labels.tolist()))
    # eval-only: train/val/test are disjoint per-class parts of val
    assert task.info["eval_only"] and "holdout" in task.summary()
    assert (len(task.train), len(task.val), len(task.test)) == (4, 4, 32)
    assert len(set(task.train.images) | set(task.val.images) | set(task.test.images)) == 40
    # the parent of val/ works too, and a train folder makes it a full task
    train = wnid_tree(imagenet_roots["val"].parent / "train", [WN[0], WN[1]], per_class=10)
    full = imagenet_task(imagenet_roots["val"].parent, train_root=train, val_fraction=0.2)
    assert not full.info["eval_only"] and len(full.test) == 40 and len(full.val) == 4 and len(full.train) == 16


def test_imagenet_v2_folders_are_integers_not_text(imagenet_roots):
    task = load_dataset("imagenet-v2", imagenet_roots["imagenet-v2"], holdout=HOLD)
    assert sorted(["2", "10", "999"]) == ["10", "2", "999"]  # the trap
    labels, images = _everything(task)
    assert len(images) == 9 and sorted(set(labels.tolist())) == [2, 10, 999]
    assert all(int(Path(p).parent.name) == y for p, y in zip(images, labels.tolist()))


def test_imagenet_r_and_a_subset_heads(imagenet_roots):
    names = imagenet_classnames()
    r = load_dataset("imagenet-r", imagenet_roots["imagenet-r"], holdout=HOLD)
    assert r.num_classes == 200 and r.classnames == [names[i] for i in subset_indices("imagenet-r").tolist()]
    assert sorted(set(r.test.labels.tolist())) == [0, 1, 199] and r.test.class_subset is None
    a = load_dataset("imagenet-a", imagenet_roots["imagenet-a"], holdout=HOLD)
    assert a.classnames != r.classnames
    assert sorted(set(a.test.labels.tolist())) == sorted(A_WNIDS.index(w) for w in A_ONLY[:2])
    r1000 = load_dataset("imagenet-r", imagenet_roots["imagenet-r"], classes="imagenet", holdout=HOLD)
    assert r1000.num_classes == 1000
    assert torch.equal(r1000.test.class_subset, subset_indices("imagenet-r"))
    assert sorted(set(r1000.test.labels.tolist())) == sorted(WN.index(w) for w in R_WNIDS[:2] + R_WNIDS[-1:])
    # ImageNet-A's folders are not all ImageNet-R classes: the loader says so
    with pytest.raises(DatasetLayoutError, match="not imagenet-r classes"):
        load_dataset("imagenet-r", imagenet_roots["imagenet-a"])
    with pytest.raises(ValueError, match="'subset'.*'imagenet'"):
        load_dataset("imagenet-r", imagenet_roots["imagenet-r"], classes="200")
    (imagenet_roots["imagenet-r"].parent / "empty-r" / R_WNIDS[0]).mkdir(parents=True)
    with pytest.raises(DatasetLayoutError, match="hold no images"):
        load_dataset("imagenet-r", imagenet_roots["imagenet-r"].parent / "empty-r")


def test_imagenet_task_with_every_shift(imagenet_roots):
    ood = {k: v for k, v in imagenet_roots.items() if k != "val"}
    task = rftlab.load_task("imagenet", imagenet_roots["val"], ood=ood)
    assert list(task.ood) == ["imagenet-v2", "imagenet-r", "imagenet-a", "imagenet-sketch", "objectnet"]
    sk = task.ood["imagenet-sketch"]  # found inside the archive's sketch/ folder
    assert sorted(set(sk.labels.tolist())) == [3, 500] and _paths_exist(sk)
    assert task.ood["imagenet-a"].class_subset is not None and task.ood["objectnet"].class_pool is not None
    logits = {k: torch.randn(len(s), 1000, generator=torch.Generator().manual_seed(0))
              for k, s in task.eval_splits().items()}
    m = task.evaluate(logits)
    assert set(m["ood_acc"]) == set(ood) and all(0 <= v <= 1 for v in m["ood_acc"].values())
    assert all(math.isfinite(v) for v in m["ood_ece"].values()) and math.isfinite(m["nll"])
    # the ImageNet family and ObjectNet carry no metadata: nothing to name or describe
    assert not any(s.meta for s in task.eval_splits().values())
    assert task.metadata_names == task.metadata_phrases == task.metadata_prompts == {} and task.descriptions() == []


def test_masking_a_1000_way_head_to_a_subset(imagenet_roots):
    split, _ = variant_split("imagenet-r", imagenet_roots["imagenet-r"], "imagenet")
    sub = subset_indices("imagenet-r")
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(len(split), 1000, generator=g)
    logits[torch.arange(len(split)), split.labels] += 10.0  # the true class wins inside the subset ...
    outside = torch.tensor([i for i in range(1000) if i not in set(sub.tolist())])
    logits[:, outside[:3]] += 50.0                          # ... but an outside class wins overall
    assert (logits.argmax(1) == split.labels).float().mean() == 0
    z, y = split.score(logits)
    assert (z.argmax(1) == y).all() and torch.isinf(z[:, outside]).all()
    # ECE and NLL equal those of a 200-way head over the subset's columns
    pos = {c: k for k, c in enumerate(sub.tolist())}
    y200 = torch.tensor([pos[c] for c in split.labels.tolist()])
    assert nll(z, y) == pytest.approx(nll(logits[:, sub], y200), rel=1e-5)
    assert ece(z.softmax(1), y) == pytest.approx(ece(logits[:, sub].softmax(1), y200), abs=1e-6)
    # through Task.evaluate: the ID test split itself carries the subset
    task = Task("r", imagenet_classnames(), ["{}"], split, split, split)
    assert task.evaluate({"id": logits})["id_acc"] == 1.0


def test_objectnet_pools_imagenet_classes_and_crops_its_border(imagenet_roots):
    sub = load_dataset("objectnet", imagenet_roots["objectnet"], holdout=HOLD)
    assert sub.num_classes == 113 and sub.classnames[0] == "alarm clock"
    assert sorted(set(sub.test.labels.tolist())) == [0, 1]  # squeegee (no ImageNet class) left out
    assert not sub.test.meta and sub.metadata_names == {}
    im = sub.test.load_image(sub.test.images[0])
    assert im.mode == "RGB" and im.size == (8, 8) and im.getpixel((0, 0)) != (255, 0, 0)
    full, names = variant_split("objectnet", imagenet_roots["objectnet"], "imagenet")
    assert len(names) == 1000 and len(full) == 6
    alarm = full.labels == 409
    logits = torch.zeros(len(full), 1000)
    logits[:, 530] = 3.0   # digital clock: the same ObjectNet class as analog clock (409)
    logits[:, 0] = 9.0     # tench: not an ObjectNet class, ignored
    z, y = full.score(logits)
    assert z.shape == (len(full), 113)
    assert (z.argmax(1) == y)[alarm].all() and not (z.argmax(1) == y)[~alarm].any()


def test_objectnet_user_mapping(tmp_path, imagenet_roots):
    (tmp_path / "map.json").write_text('{"backpack": ["n02769748"], "squeegee": [999]}')
    task = load_dataset("objectnet", imagenet_roots["objectnet"], mapping=tmp_path / "map.json", holdout=HOLD)
    assert task.classnames == ["backpack", "squeegee"] and sorted(set(task.test.labels.tolist())) == [0, 1]


# ---------------------------------------------------------------- your own images
def test_image_folder_flat_and_split(tmp_path):
    task = load_dataset("imagefolder", folder_tree(tmp_path / "flat"))
    assert task.classnames == ["cat", "dog", "red fox"]
    assert (len(task.train), len(task.val), len(task.test)) == (21, 3, 6)
    assert all("._" not in p for p in task.train.images)  # hidden files and the README skipped
    assert "notes" in task.info["ignored_folders"]
    split = load_dataset("imagefolder", folder_tree(tmp_path / "sp", per_class=4, splits=("train", "test")),
                         val_fraction=0.25)
    assert (len(split.train), len(split.val), len(split.test)) == (9, 3, 12)
    assert all("/test/" in p for p in split.test.images) and all("/train/" in p for p in split.val.images)


def test_csv_names_integers_groups_and_split_column(tmp_path):
    rows = [[f"images/{i}.png", ["cat", "dog"][i % 2], ["in", "out"][i // 2 % 2]] for i in range(40)]
    task = load_dataset("csv", csv_tree(tmp_path / "a", rows))
    assert task.classnames == ["cat", "dog"] and task.group_names == ["in", "out"]
    assert (len(task.train), len(task.val), len(task.test)) == (28, 4, 8)
    for s in (task.train, task.val, task.test):
        for p, y, g in zip(s.images, s.labels.tolist(), s.meta["group"].tolist()):
            i = int(Path(p).stem)
            assert (y, g) == (i % 2, i // 2 % 2)
    assert task.value_names("group") == ["in", "out"] and task.metadata_names == {}
    m = task.evaluate({"id": torch.zeros(8, 2)})  # always "cat"
    by_hand = {n: (task.test.labels[task.test.meta["group"] == k] == 0).float().mean().item()
               for k, n in enumerate(task.group_names)}
    assert m["group_acc"] == pytest.approx(by_hand) and m["worst_group_acc"] == min(by_hand.values())
    rows = [[f"im/{i}.jpg", i % 3, "train" if i < 12 else "val" if i < 15 else "2"] for i in range(18)]
    path = csv_tree(tmp_path / "b", rows, header=("path", "label", "split"))
    task = load_dataset("csv", path, classnames=["ant", "bee", "cow"])
    assert task.classnames == ["ant", "bee", "cow"] and task.group_names is None
    assert (len(task.train), len(task.val), len(task.test)) == (12, 3, 3)
    assert task.test.labels.tolist() == [0, 1, 2]
    headerless = csv_tree(tmp_path / "c", [[f"im/{i}.jpg", i % 2] for i in range(20)], header=None)
    assert load_dataset("csv", headerless).classnames == ["0", "1"]
    assert all(Path(p).is_absolute() and Path(p).is_file() for p in task.test.images)
    with pytest.raises(ValueError, match="label 2 appears but only 2 label names"):
        load_dataset("csv", path, classnames=["ant", "bee"])


def test_split_get_returns_a_batch_with_a_torchvision_transform(tmp_path):
    from torchvision import transforms
    task = rftlab.load_task("imagefolder", folder_tree(tmp_path / "f"))
    tf = transforms.Compose([transforms.Resize(16), transforms.ToTensor()])
    x = task.train.get(torch.tensor([0, 1, 5]), tf)
    assert x.shape == (3, 3, 16, 16) and x.dtype == torch.float32
    images, labels, idx = next(task.test.batches(4, tf))
    assert images.shape == (4, 3, 16, 16) and torch.equal(labels, task.test.labels[idx])


def test_loading_does_not_decode_images(tmp_path):
    root = folder_tree(tmp_path / "f", per_class=4)
    (root / "cat" / "broken.jpg").write_bytes(b"not a jpeg")
    task = load_dataset("imagefolder", root, val_fraction=0.2, test_fraction=0.2)  # fine: nothing decoded
    where = [s for s in (task.train, task.val, task.test) if any(p.endswith("broken.jpg") for p in s.images)][0]
    with pytest.raises(Exception):
        where.get(torch.arange(len(where)), lambda im: torch.zeros(1))


def test_images_load_as_rgb(tmp_path):
    p = image(tmp_path / "grey.png", 3, mode="L")
    task = load_dataset("csv", csv_tree(tmp_path / "c", [[f"i/{k}.png", k % 2] for k in range(20)],
                                        header=("path", "label")))
    assert task.train.load_image(str(p)).mode == "RGB" and Image.open(p).mode == "L"


# ---------------------------------------------------------------- errors and dispatch
@pytest.mark.parametrize("name", sorted(DATASETS))
def test_missing_or_malformed_roots_show_the_layout(tmp_path, name):
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "README.txt").write_text("stray\n")
    for root in (None, tmp_path / "nowhere", empty):
        with pytest.raises(DatasetLayoutError) as e:
            load_dataset(name, root)
        msg = str(e.value)
        assert msg.startswith(f"{name}:") and "Expected layout" in msg and "──" in msg, msg


def test_load_task_dispatches_and_lists_both_kinds():
    with pytest.raises(ValueError, match="spurious, shift.*waterbirds, celeba, domainnet"):
        rftlab.load_task("cifar10")
    with pytest.raises(ValueError, match="give no root"):
        rftlab.load_task("spurious", "/data")
    with pytest.raises(DatasetLayoutError, match="no root given"):
        rftlab.load_task("waterbirds")


def test_class_subset_and_pool_are_validated():
    x = torch.zeros(3, 3, 4, 4, dtype=torch.uint8)
    with pytest.raises(ValueError, match="outside class_subset"):
        Split("s", x, torch.tensor([0, 1, 5]), class_subset=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="class_pool does not score"):
        Split("s", x, torch.tensor([0, 1, 2]), class_pool=torch.tensor([0, 0, -1]))
    with pytest.raises(ValueError, match="not both"):
        Split("s", x, torch.tensor([0, 1, 1]), class_subset=torch.tensor([0, 1]), class_pool=torch.tensor([0, 1]))
    s = Split("s", x, torch.tensor([0, 1, 1]), class_subset=torch.tensor([0, 1, 7]))
    with pytest.raises(ValueError, match="beyond the task's 3 classes"):
        Task("t", ["a", "b", "c"], ["{}"], s, s, s)
    picked = s.select(torch.tensor([2, 0]), "picked")
    assert picked.labels.tolist() == [1, 0] and torch.equal(picked.class_subset, s.class_subset)


def test_end_to_end_zero_shot_on_a_folder_with_a_tiny_open_clip(tmp_path):
    import json

    import open_clip
    tiny = {"embed_dim": 32,
            "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
            "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "rftlab-test-datasets-tiny.json").write_text(json.dumps(tiny))
    open_clip.add_model_config(tmp_path / "cfg")
    torch.manual_seed(0)
    clip = rftlab.load_model("rftlab-test-datasets-tiny")
    task = rftlab.load_task("imagefolder", folder_tree(tmp_path / "f", per_class=5), val_fraction=0.2,
                            test_fraction=0.2)
    clf = rftlab.ClipClassifier.zeroshot(clip, task.classnames, task.templates)
    m = rftlab.evaluate(clf, task, clip.preprocess, batch_size=4)
    assert 0.0 <= m["id_acc"] <= 1.0 and math.isfinite(m["nll"]) and m["worst_group_acc"] is None
    assert task.test.get(torch.arange(2), clip.preprocess).shape == (2, 3, 32, 32)
