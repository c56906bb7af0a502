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
