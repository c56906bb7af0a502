"""Shortcut discovery: a shortcut built into a classifier or learned by FT is found and ranked first;
noise and a control are not findings; the rule, the rows and the errors."""
import json

import pytest
import torch

import rftlab
from rftlab.analysis import discover_shortcuts
from rftlab.encode import text_features
from rftlab.analysis.shortcuts import default_candidates, names_factor
from rftlab.world import world_concept

PLACE_WORDS = (["on the water", "in the ocean", "on a lake"], ["on the grass", "in the desert", "in the forest"])


@pytest.fixture(scope="module")
def task():
    return rftlab.load_task("spurious", n_train=16, n_val=200, n_test=8, seed=1)


@pytest.fixture(scope="module")
def zs(clip, task):
    return rftlab.ClipClassifier.zeroshot(clip, task.classnames, task.templates)


def shortcut_classifier(clip, zs, words=PLACE_WORDS, beta=2.0, toward=1):
    """The zero-shot classifier with a shortcut built in: the cross column of its head leans toward
    the text direction 'water minus land', so water pushes every image toward cross."""
    d = (text_features(clip.model, clip.tokenizer, words[0]).mean(0)
         - text_features(clip.model, clip.tokenizer, words[1]).mean(0))
    c = zs.frozen_copy()
    with torch.no_grad():
        c.head[:, toward] += beta * d
    return c


def test_a_built_in_place_shortcut_is_found_first(clip, task, zs):
    r = discover_shortcuts(shortcut_classifier(clip, zs), task, clip.tokenizer, clip.preprocess, reference=zs)
    top = r.ranking[0]
    assert r.found and top["significant"] and top["z"] > r.threshold
    assert top["factor"] == "background" and names_factor(top, "background")
    assert [names_factor(row, "background") for row in r.ranking[:3]] == [True, True, True]
    water = [row for row in r.ranking[:4] if set(row["values"]) <= {"ocean", "lake"}]
    assert water and all(row["toward"] == "cross" and row["class"] == "square" for row in water)
    assert water[0]["group_acc"] < water[0]["rest_acc"]          # squares on water are the ones it gets wrong
    assert "reference" in r.judge and r.settings["relative"]
    assert [row["rank"] for row in r.ranking] == list(range(1, len(r.ranking) + 1))
    assert [row["z"] for row in r.ranking] == sorted((row["z"] for row in r.ranking), reverse=True)
    # the images of a row: square images of its group, the best fitting first
    s = task.val
    assert all(int(s.labels[i]) == 0 for i in water[0]["images"]) and len(water[0]["images"]) <= 16
    json.dumps(r.to_dict())                                       # JSON-ready


def test_noise_is_not_a_finding(clip, task, zs):
    """Logits that change independently of the images (noise large enough for the calibrated zero-shot model to err): the rule's false-alarm rate stays near alpha."""
    f0 = rftlab.analysis.image_features(zs, task.val, clip.preprocess)
    z0 = zs.logits_from_features(f0).detach()
    found = 0
    for seed in range(8):
        noisy = z0 + 8 * torch.randn(z0.shape, generator=torch.Generator().manual_seed(seed))
        r = discover_shortcuts(zs, task, clip.tokenizer, reference=zs, logits=noisy, logits0=z0, features0=f0,
                               n_boot=100, seed=seed)
        found += r.found
        assert r.n_errors >= 5 and all(abs(row["score"]) < 0.2 for row in r.ranking)
    assert found <= 1


def test_ft_on_a_planted_task_is_caught_and_its_control_is_not(clip):
    """A small, fast FT: colour planted at 0.95 is found and named first; the same task at 0.5 is not."""
    cfg = rftlab.TrainConfig(steps=60, batch_size=64, eval_every=0, progress=False)
    found = {}
    for corr in (0.95, 0.5):
        t = rftlab.load_task("spurious", spurious="color", correlation=corr, n_train=600, n_val=400, n_test=8, seed=2)
        zs = rftlab.ClipClassifier.zeroshot(clip, t.classnames, t.templates)
        ft = rftlab.finetune("ft", clip, t, cfg).classifier
        found[corr] = discover_shortcuts(ft, t, clip.tokenizer, clip.preprocess, reference=zs, min_errors=0)
    planted, control = found[0.95], found[0.5]
    assert planted.found and names_factor(planted.ranking[0], "color"), planted.summary()
    assert not control.found, control.summary()


def test_without_a_reference_the_model_judges_itself(clip, task, zs):
    r = discover_shortcuts(shortcut_classifier(clip, zs), task, clip.tokenizer, clip.preprocess, top=5)
    assert "own towers" in r.judge and not r.settings["relative"] and len(r.ranking) == 5
    assert all(row["reference_score"] is None for row in r.ranking)
    assert names_factor(r.ranking[0], "background")


def test_user_candidates_and_synonyms(clip, task, zs):
    cands = ["{} on the water", "{} over the water", "{} on the sea", "red {}", "a sketch of a {}"]
    r = discover_shortcuts(shortcut_classifier(clip, zs), task, clip.tokenizer, clip.preprocess, reference=zs,
                           candidates=cands, merge=0.5)
    assert r.n_candidates == 5 and r.ranking[0]["factor"] == "background"
    listed = [d for row in r.ranking for d in [row["description"], *row["synonyms"]]]
    assert sorted(listed) == sorted(cands)                          # merged rows keep every description
    assert any(row["synonyms"] for row in r.ranking)                # the water phrases picked the same images


def test_world_concepts_label_rows_without_steering_them():
    assert world_concept("{} on the water") == {"factor": "background", "values": ["lake", "ocean"]}
    assert world_concept("blue {}") == {"factor": "color", "values": ["blue"]}
    assert world_concept("a pencil sketch of a {}")["factor"] == "style"
    assert world_concept("{} in a kitchen") is None and world_concept("blue {} on the sea") is None


def test_default_candidates_are_words_the_world_model_learned(clip, task):
    import hashlib
    cands = default_candidates(task, clip.tokenizer)
    assert "{} on the water" in cands and "blue {}" in cands and "a sketch of a {}" in cands
    assert not any(w in c for c in cands for w in ("striped", "blurred", "texture", "sunset"))
    # the very list (and order) drawn from the world's tables before tasks carried their phrases
    assert len(cands) == 47 and hashlib.sha256("\n".join(cands).encode()).hexdigest()[:16] == "085b9aca38e78d50"
    assert cands[:2] == ["{} in the ocean", "{} on the sea"] and cands[-1] == "{} near the water"


def test_errors_are_explained(clip, task, zs):
    with pytest.raises(ValueError, match="misclassifies only .* too few errors"):
        discover_shortcuts(zs, task, clip.tokenizer, clip.preprocess, reference=zs, min_errors=50)
    with pytest.raises(ValueError, match="fraction"):
        discover_shortcuts(zs, task, clip.tokenizer, clip.preprocess, fraction=1.5)
    with pytest.raises(ValueError, match="tokenises to nothing"):
        discover_shortcuts(zs, task, clip.tokenizer, clip.preprocess, candidates=["zebra giraffe"], min_errors=0)
    with pytest.raises(ValueError, match="pass reference"):
        discover_shortcuts(zs, task, clip.tokenizer, clip.preprocess, relative=True)
    with pytest.raises(TypeError, match="needs a Task"):
        discover_shortcuts(zs, task.val, clip.tokenizer, clip.preprocess)


def test_plot_shortcuts(clip, task, zs):
    r = discover_shortcuts(shortcut_classifier(clip, zs), task, clip.tokenizer, clip.preprocess, reference=zs)
    fig = rftlab.plots.plot_shortcuts(r, top=6)
    bars = fig.data[0]
    assert len(bars.x) == 6 and bars.x[-1] == pytest.approx(r.ranking[0]["score"])   # the first row on top
    assert list(bars.error_x.array)[-1] == pytest.approx(r.ranking[0]["stderr"])
