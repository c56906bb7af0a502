"""World tasks: group proportions, splits, metadata, evaluation contract, bad input."""
import pytest
import torch

import rftlab
from rftlab.world.tasks import PLACES


def test_spurious_train_follows_the_correlation_and_eval_is_balanced():
    task = rftlab.spurious_task(n_train=2000, n_val=400, n_test=800, seed=1)
    tr = task.train
    own = (tr.labels % 2) == tr.meta["place"]
    assert abs(own.float().mean().item() - 0.95) < 0.02
    for split in (task.val, task.test):
        counts = torch.bincount(split.meta["group"], minlength=4)
        assert counts.tolist() == [len(split) // 4] * 4
    assert task.group_names == ["square/land", "square/water", "cross/land", "cross/water"]
    # the place metadata matches the background actually drawn
    bg_place = torch.tensor([PLACES.index(rftlab.world.BACKGROUNDS[b])
                             for b in rftlab.world.BACKGROUNDS])[tr.meta["background"]]
    assert torch.equal(bg_place, tr.meta["place"])


@pytest.mark.parametrize("p", [0.0, 0.5, 1.0])
def test_correlation_is_a_knob(p):
    task = rftlab.make_task("t", ("circle", "ring"), p, n_train=1000, n_val=8, n_test=8)
    own = ((task.train.labels % 2) == task.train.meta["place"]).float().mean().item()
    assert abs(own - p) < 0.05


def test_shift_has_one_ood_set_per_other_style():
    task = rftlab.shift_task(n_train=64, n_val=16, n_test=32)
    assert set(task.ood) == {"sketch", "cartoon", "painting"}
    assert task.num_classes == len(rftlab.world.SHAPES)
    assert (task.train.meta["style"] == 0).all() and (task.test.meta["style"] == 0).all()
    for k, s in task.ood.items():
        assert (s.meta["domain"] == rftlab.world.STYLES.index(k)).all()
    assert task.group_names is None


def test_tasks_are_deterministic():
    a = rftlab.make_task("d", ("star", "heart"), 0.9, n_train=50, n_val=10, n_test=10, seed=7)
    b = rftlab.make_task("d", ("star", "heart"), 0.9, n_train=50, n_val=10, n_test=10, seed=7)
    assert torch.equal(a.train.images, b.train.images) and torch.equal(a.test.labels, b.test.labels)


def test_evaluate_returns_the_contract_keys(small_spurious, small_shift):
    t = small_shift
    perfect = {k: torch.nn.functional.one_hot(s.labels, t.num_classes).float() * 10
               for k, s in t.eval_splits().items()}
    m = t.evaluate(perfect)
    assert m["id_acc"] == 1.0 and m["mean_ood_acc"] == 1.0 and m["avg_acc"] == 1.0
    assert set(m["ood_acc"]) == {"sketch", "painting"} and m["worst_group_acc"] is None
    assert m["ece"] < 1e-3
    s = small_spurious
    logits = torch.zeros(len(s.test), 2)
    logits[:, 0] = 1.0  # always "square": right on square groups, wrong on cross groups
    m = s.evaluate({"id": logits})
    assert m["worst_group_acc"] == 0.0 and m["group_acc"]["square/land"] == 1.0
    assert m["ood_acc"] == {} and m["mean_ood_acc"] is None
    # train-frequency weighting: square groups hold about half the train set
    assert 0.4 < m["weighted_acc"] < 0.6


@pytest.mark.parametrize("kwargs, message", [
    (dict(classes=("circle", "hexagon")), "unknown shape"),
    (dict(correlation=1.5), r"\[0, 1\]"),
    (dict(train_styles=("watercolour",)), "unknown style"),
    (dict(n_test=0), "at least 1"),
    (dict(classes=("circle", "circle")), "must not repeat"),
])
def test_bad_task_arguments_are_explained(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rftlab.make_task("bad", **{"classes": ("circle", "ring"), **kwargs})


def test_unknown_task_lists_the_known_ones():
    with pytest.raises(ValueError, match="spurious, shift"):
        rftlab.load_task("waterbirds-ish")


def test_evaluate_rejects_a_head_of_the_wrong_size(small_shift):
    bad = {k: torch.zeros(len(s), 3) for k, s in small_shift.eval_splits().items()}
    with pytest.raises(ValueError, match="head and task disagree"):
        small_shift.evaluate(bad)


# ---------------------------------------------------------------------- planting any factor
@pytest.mark.parametrize("factor, key, values", [
    ("background", "place", ("land", "water")),
    ("color", "warmth", ("warm", "cool")),
    ("style", "medium", ("photo", "sketch")),
])
def test_any_factor_can_be_planted(factor, key, values):
    from rftlab.world.tasks import SPURIOUS_ATTRIBUTES
    a = SPURIOUS_ATTRIBUTES[factor]
    task = rftlab.make_task("p", ("circle", "ring"), 0.9, spurious=factor, n_train=1200, n_val=80, n_test=160, seed=2)
    tr = task.train
    own = ((tr.labels % 2) == tr.meta[key]).float().mean().item()
    assert abs(own - 0.9) < 0.03                                        # correlation measured in train
    # the attribute value matches the factor value actually drawn
    member = {i: v for v in (0, 1) for i in a.member_index(v).tolist()}
    assert [member[int(f)] for f in tr.meta[factor]] == tr.meta[key].tolist()
    assert task.group_names == [f"{c}/{v}" for c in ("circle", "ring") for v in values]
    for split in (task.val, task.test):
        assert torch.bincount(split.meta["group"], minlength=4).tolist() == [len(split) // 4] * 4
        assert torch.equal(split.meta["group"], split.labels * 2 + split.meta[key])
    assert task.info["spurious"] == [factor]


def test_style_plants_photo_against_sketch_and_colour_warm_against_cool():
    task = rftlab.load_task("spurious", spurious="style", n_train=200, n_val=40, n_test=40)
    assert set(task.train.meta["style"].unique().tolist()) == {0, 1} and task.id_domain == "photo+sketch"
    task = rftlab.load_task("spurious", spurious="color", n_train=200, n_val=40, n_test=40)
    warm = {rftlab.world.SPACE.index("color", c) for c in ("red", "orange", "yellow")}
    assert all((int(c) in warm) == (w == 0) for c, w in zip(task.test.meta["color"], task.test.meta["warmth"]))


def test_two_factors_at_once_are_balanced_jointly():
    task = rftlab.make_task("two", ("star", "heart"), 0.95, spurious=("background", "color"), n_train=1600,
                            n_val=160, n_test=160, seed=1)
    assert task.group_names[:4] == ["star/land/warm", "star/land/cool", "star/water/warm", "star/water/cool"]
    assert torch.bincount(task.test.meta["group"], minlength=8).tolist() == [20] * 8
    for key in ("place", "warmth"):   # each attribute follows the class on its own
        own = ((task.train.labels % 2) == task.train.meta[key]).float().mean().item()
        assert abs(own - 0.95) < 0.025
    g = task.test.meta["group"]
    assert torch.equal(g, task.test.labels * 4 + task.test.meta["place"] * 2 + task.test.meta["warmth"])


def test_a_broad_task_gives_each_class_its_own_attribute_value():
    task = rftlab.make_task("broad", rftlab.world.SHAPES, 1.0, spurious="color", n_train=400, n_val=64, n_test=64)
    assert torch.equal(task.train.meta["warmth"], task.train.labels % 2)
    assert len(task.group_names) == 16 and torch.bincount(task.val.meta["group"], minlength=16).tolist() == [4] * 16


@pytest.mark.parametrize("correlation", [0.5, None])
def test_the_control_plants_nothing_but_keeps_balanced_groups(correlation):
    task = rftlab.make_task("ctl", ("circle", "ring"), correlation, spurious="color", n_train=2000, n_val=80,
                            n_test=80, seed=5)
    own = ((task.train.labels % 2) == task.train.meta["warmth"]).float().mean().item()
    assert abs(own - 0.5) < 0.04 and task.info["correlation"] == 0.5
    assert task.group_names == ["circle/warm", "circle/cool", "ring/warm", "ring/cool"]
    assert torch.bincount(task.test.meta["group"], minlength=4).tolist() == [20] * 4


def test_the_default_spurious_task_is_unchanged():
    """Planting the place explicitly or by default draws the very same images as before the
    spurious= argument existed (fingerprints recorded from that code)."""
    import hashlib

    def fingerprint(task):
        h = hashlib.sha256()
        for s in (task.train, task.val, task.test, *task.ood.values()):
            h.update(s.images.numpy().tobytes())
            h.update(s.labels.numpy().tobytes())
            for k in sorted(("shape", "color", "background", "style", "place", "domain", "group")):
                h.update(k.encode())
                h.update(s.meta[k].numpy().tobytes())
        h.update(repr(task.group_names).encode())
        return h.hexdigest()[:16]
    small = dict(n_train=120, n_val=40, n_test=40)
    assert fingerprint(rftlab.spurious_task(seed=5, **small)) == "3ec1c44c578bed58"
    assert fingerprint(rftlab.load_task("spurious", seed=5, spurious="background", **small)) == "3ec1c44c578bed58"
    no_groups = rftlab.make_task("x", ("circle", "ring", "star"), None, ("photo", "sketch"), ("cartoon",),
                                 n_train=60, n_val=20, n_test=20)
    assert fingerprint(no_groups) == "a85e84e5eb513e64" and no_groups.group_names is None
    assert fingerprint(rftlab.make_task("y", ("circle", "ring", "star"), 0.8, ("photo",), ("painting",), n_train=60,
                                        n_val=20, n_test=20, seed=2)) == "11fb4c28d6f0b3d9"


def test_the_mystery_task_hides_its_factor():
    from rftlab.world.tasks import SPURIOUS_ATTRIBUTES, mystery_factor
    seeds = {mystery_factor(s) for s in range(12)}
    assert seeds == {"background", "color", "style"}                      # the seed chooses any of them
    task = rftlab.load_task("mystery", seed=0, n_train=100, n_val=40, n_test=40)
    key = SPURIOUS_ATTRIBUTES[mystery_factor(0)].key
    assert task.name == "mystery" and task.group_names == ["square/A", "square/B", "cross/A", "cross/B"]
    assert key not in task.test.meta and "spurious" not in task.info
    assert torch.bincount(task.test.meta["group"], minlength=4).tolist() == [10] * 4


@pytest.mark.parametrize("spurious, message", [
    ("texture", "unknown spurious factor 'texture'; choose from: background, color, style"),
    ("shape", "shape is the class"),
    (("color", "color"), "must not repeat"),
    ((), "names no factor"),
])
def test_bad_spurious_factors_are_explained(spurious, message):
    with pytest.raises(ValueError, match=message):
        rftlab.make_task("bad", ("circle", "ring"), 0.9, spurious=spurious, n_train=8, n_val=8, n_test=8)


def test_an_ood_style_cannot_be_the_planted_style():
    with pytest.raises(ValueError, match="in-distribution styles"):
        rftlab.make_task("bad", ("circle", "ring"), 0.9, ood_styles=("sketch",), spurious="style", n_train=8,
                         n_val=8, n_test=8)


def test_world_tasks_draw_what_they_drew_before_they_named_their_metadata():
    """Splits (images, labels, every metadata key), groups and info of each world task are the very
    ones drawn before tasks carried metadata_names (fingerprints recorded from that code)."""
    import hashlib

    def fingerprint(task):
        h = hashlib.sha256()
        for s in (task.train, task.val, task.test, *task.ood.values()):
            h.update(s.images.numpy().tobytes())
            h.update(s.labels.numpy().tobytes())
            for k in sorted(s.meta):
                h.update(k.encode())
                h.update(s.meta[k].numpy().tobytes())
        h.update(repr((task.group_names, task.info)).encode())
        return h.hexdigest()[:16]
    small = dict(n_train=40, n_val=32, n_test=32)
    # `shift` now draws near objects by default (docs/world-design.md, variant 9); with the old sizes it
    # draws exactly what it drew, so the renderer and the draws did not change under it
    recorded = [("shift", {"scale": (0.3, 0.62)}, "e56da4221c1a9372"), ("broad", {}, "501794e10db4c13d"),
                ("mystery", {"seed": 0}, "27cc52829f220a41"), ("mystery", {"seed": 3}, "6a6495ae7d541eae"),
                ("spurious", {"spurious": ("color", "style"), "correlation": 0.9}, "d4d3fbc6af6c1cc2")]
    for name, kw, fp in recorded:
        assert fingerprint(rftlab.load_task(name, **kw, **small)) == fp, (name, kw)


def test_world_tasks_name_and_describe_their_metadata():
    from rftlab.world import COLORS, SHAPES, STYLES, factor_prompts, world_concept
    task = rftlab.load_task("spurious", spurious=("background", "color"), correlation=0.9, n_train=40, n_val=32,
                            n_test=32)
    keys = set(task.test.meta) - {"group"}
    assert set(task.metadata_names) == keys == {"shape", "color", "background", "style", "place", "domain", "warmth"}
    assert task.metadata_names["shape"] == list(SHAPES) and task.metadata_names["color"] == list(COLORS)
    assert task.metadata_names["domain"] == task.metadata_names["style"] == list(STYLES)
    assert task.metadata_names["place"] == list(PLACES) and task.metadata_names["warmth"] == ["warm", "cool"]
    assert task.value_names("group") == task.group_names and task.value_names("label") == task.classnames
    for key in keys:   # every value a split carries has a name
        assert int(torch.cat([s.meta[key] for s in (task.train, task.val, task.test)]).max()) < len(
            task.metadata_names[key])
    assert list(task.metadata_phrases) == ["background", "color", "style"]
    assert task.metadata_phrases["color"]["blue"] == ["blue {}"]
    assert task.metadata_prompts["style"] == factor_prompts("style")
    assert list(task.metadata_prompts["place"]) == ["land", "water"]
    assert "a circle on the water" in task.metadata_prompts["place"]["water"]
    # the task labels a description as the world does
    for d in task.descriptions() + ["{} in a kitchen", "blue {} on the sea", "a picture of a {}"]:
        named = task.named_values(d)
        assert world_concept(d) == (None if named is None else {"factor": named[0], "values": named[1]}), d
    # the mystery task keeps the names of what it still carries, not of the hidden key
    mystery = rftlab.load_task("mystery", seed=2, n_train=40, n_val=32, n_test=32)   # background planted
    assert "place" not in mystery.test.meta and "place" not in mystery.metadata_names
    assert "place" not in mystery.metadata_prompts and "background" in mystery.metadata_names


def test_bad_metadata_names_are_explained():
    task = rftlab.load_task("spurious", n_train=40, n_val=32, n_test=32)

    def remade(**kw):
        import dataclasses
        return dataclasses.replace(task, **kw)
    names = task.metadata_names
    with pytest.raises(ValueError, match=r"'background' values from 0 to 5 but metadata_names\['background'\] "
                                         r"names values 0..3 \(ocean, lake, grass, forest\)"):
        remade(metadata_names={**names, "background": ["ocean", "lake", "grass", "forest"]})
    with pytest.raises(ValueError, match="names 'weather', which no split carries"):
        remade(metadata_names={**names, "weather": ["sun", "rain"]})
    with pytest.raises(ValueError, match="repeats a name"):
        remade(metadata_names={**names, "place": ["land", "land"]})
    with pytest.raises(ValueError, match="groups are named by group_names"):
        remade(metadata_names={**names, "group": ["a", "b", "c", "d"]})
    with pytest.raises(ValueError, match="group values up to 3 but group_names names 2 groups"):
        remade(group_names=["square", "cross"])
    with pytest.raises(ValueError, match=r"metadata_phrases\['place'\] describes 'sea', which is not a value"):
        remade(metadata_phrases={"place": {"sea": ["{} on the sea"]}})
    with pytest.raises(ValueError, match="class template with '{}'"):
        remade(metadata_phrases={"place": {"water": ["on the sea"]}})
    with pytest.raises(ValueError, match=r"metadata_phrases\['tint'\] describes metadata that metadata_names does "
                                         r"not name"):
        remade(metadata_phrases={"tint": {"red": ["red {}"]}})
    with pytest.raises(ValueError, match=r"prompts for every value of 'place', in the order of metadata_names"):
        remade(metadata_prompts={"place": {"water": ["a square on the sea"], "land": ["a square on the grass"]}})


def test_starft_reads_its_phrases_from_the_task():
    import dataclasses

    from rftlab.datasets import natural_spurious_phrases
    from rftlab.methods import get_method
    task = rftlab.load_task("spurious", n_train=40, n_val=32, n_test=32)
    # a world task: its metadata phrases (backgrounds, colours, styles), nothing from elsewhere
    assert task.spurious_phrases() == task.descriptions()
    assert "{} on the grass" in task.spurious_phrases() and "a sketch of a {}" in task.spurious_phrases()
    # a task with its own pool (as every real dataset has) gets that pool
    natural = dataclasses.replace(task, info={**task.info, "spurious_phrases": natural_spurious_phrases()})
    assert natural.spurious_phrases() == natural_spurious_phrases()
    bare = dataclasses.replace(task, metadata_phrases={}, info={})
    with pytest.raises(ValueError, match="no spurious phrases for StarFT"):
        bare.spurious_phrases()
    clip = rftlab.load_model("rftlab-world", pretrained="random")
    m = rftlab.Trainer("starft", clip, natural, rftlab.TrainConfig(steps=1, progress=False)).method
    assert m.phrases == natural_spurious_phrases()
