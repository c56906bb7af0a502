"""Fine-tuning starts from the zero-shot model, exactly.

For every registered method, the classifier the loop trains computes, at step 0 and in the mode
the loop trains it in, the zero-shot classifier's logits; and every loss term that pulls towards
theta0 (or towards a teacher that starts as theta0) is 0 there. A model with BatchNorm (an
open_clip ResNet) gets the same guarantee from the loop's frozen batch statistics."""
import copy
import json

import pytest
import torch

import rftlab
from rftlab.methods import METHODS, Method
from rftlab.train import freeze_batchnorm

TOL_LOGITS = 1e-4   # logits are ~20 x cosine: channels_last convolutions reorder float sums
TOL_ANCHOR = 1e-6   # the bound on every pull towards theta0


def _batch(task, clip, n=32):
    split = task.train
    idx = torch.arange(n)
    return split.get(idx, clip.preprocess), split.labels[idx]


def _check_step_zero(name, clip, task):
    """What the first Trainer of ``rftlab.finetune(name, ...)`` computes before its first step
    (a recipe's first ingredient run for soups), caught at its "start" event."""
    images, labels = _batch(task, clip)
    zs = rftlab.ClipClassifier.zeroshot(clip, task.classnames, task.templates).eval()
    with torch.no_grad():
        expected = zs(images)
    seen = {}

    def at_start(event, info):
        if event != "start" or seen:
            return
        trainer = info["trainer"]
        has_loss = type(trainer.method).loss is not Method.loss
        terms = {}
        if has_loss:
            for step in (0, 1):  # CaRot distils from step 1; no weight changes in between
                with torch.no_grad():
                    terms[step] = {k: float(v) for k, v in trainer.loss_terms(images, labels, step=step).items()}
        clf = trainer.classifier
        clf.train()
        freeze_batchnorm(clf)  # the loop's training mode (``loss_terms`` leaves it so too)
        with torch.no_grad():
            got = clf(images.to(memory_format=torch.channels_last) if trainer.channels_last else images)
            trainer.method.refresh_head(clf)  # FLYP-style methods rebuild the head from the text tower
            refreshed = clf(images)
        seen.update(got=got, refreshed=refreshed, terms=terms, method=trainer.method)

    extra = {"ingredients": 2} if name.startswith("soup") else {}
    rftlab.finetune(name, clip, task, rftlab.TrainConfig(steps=1, batch_size=32, eval_every=0, progress=False),
                    callbacks=[at_start], **extra)
    return expected, seen["got"], seen["refreshed"], seen["terms"], seen["method"]


@pytest.mark.parametrize("name", list(METHODS))
def test_step_zero_computes_the_zero_shot_classifier(name, clip, small_shift):
    expected, got, refreshed, terms, method = _check_step_zero(name, clip, small_shift)
    assert torch.allclose(got, expected, atol=TOL_LOGITS), (got - expected).abs().max()
    assert torch.allclose(refreshed, expected, atol=TOL_LOGITS), (refreshed - expected).abs().max()
    for step, values in terms.items():
        assert all(v == v for v in values.values()), values  # finite
        for term in method.anchor_terms:
            if term in values:
                assert abs(values[term]) <= TOL_ANCHOR, f"{name}: {term} = {values[term]} at theta0 (step {step})"
    if method.anchor_terms:  # the anchor terms are reported, so the check above ran
        reported = set().union(*(v.keys() for v in terms.values()))
        assert set(method.anchor_terms) <= reported, (method.anchor_terms, reported)


def test_methods_that_keep_a_frozen_theta0_declare_the_terms_that_pull_to_it():
    """The check above can only see terms a method declares: every method with a term that
    compares the model with theta0 or a teacher names it in ``anchor_terms``."""
    declared = {name: cls.anchor_terms for name, cls in METHODS.items() if getattr(cls, "anchor_terms", ())}
    assert declared == {"l2-sp": ("l2sp",), "lipsum-ft": ("lipsum",), "car-ft": ("context_kl",),
                        "carot": ("self_distillation",), "starft": ("spurious_kl",)}


def test_the_check_fails_when_a_model_uses_batch_statistics(clip, small_shift):
    """Negative control: a tower whose normalisation uses batch statistics in train mode gives
    other logits than the zero-shot model at step 0 (what the world CNN did with BatchNorm)."""
    model = copy.deepcopy(clip.model)
    bn = torch.nn.BatchNorm1d(model.visual.head.proj.in_features, affine=False, momentum=0.0).eval()
    model.visual.head.proj = torch.nn.Sequential(bn, model.visual.head.proj)
    c = copy.copy(clip)
    c.model = model
    images, _ = _batch(small_shift, c)
    zs = rftlab.ClipClassifier.zeroshot(c, small_shift.classnames, small_shift.templates)
    with torch.no_grad():
        eval_logits = zs.eval()(images)
        train_logits = zs.train()(images)
        frozen = freeze_batchnorm(zs) and zs(images)
    assert not torch.allclose(eval_logits, train_logits, atol=1e-2)
    assert torch.allclose(eval_logits, frozen)


TINY_RN = {"embed_dim": 32,
           "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None},
           "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture(scope="module")
def tiny_resnet(tmp_path_factory):
    """An open_clip ModifiedResNet CLIP (BatchNorm throughout), randomly initialised, with
    running statistics made unlike any batch's so that batch statistics would show."""
    import open_clip
    d = tmp_path_factory.mktemp("rn-config")
    (d / "rftlab-test-tiny-rn.json").write_text(json.dumps(TINY_RN))
    open_clip.add_model_config(d)
    torch.manual_seed(0)
    clip = rftlab.load_model("rftlab-test-tiny-rn")
    norm = clip.preprocess.transforms[-1]  # open_clip's Normalize; world images are uint8 tensors
    clip.preprocess = lambda x: norm(torch.nn.functional.interpolate(x.float() / 255, size=64, mode="bilinear"))
    for m in clip.model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    return clip


@pytest.mark.parametrize("name", ["ft", "lipsum-ft", "car-ft", "starft"])
def test_a_resnet_with_batchnorm_starts_from_theta0_too(name, tiny_resnet, small_shift):
    expected, got, _, terms, method = _check_step_zero(name, tiny_resnet, small_shift)
    assert torch.allclose(got, expected, atol=TOL_LOGITS), (got - expected).abs().max()
    for term in method.anchor_terms:
        assert abs(terms[0][term]) <= TOL_ANCHOR, (term, terms[0][term])


def test_training_leaves_batchnorm_statistics_alone(tiny_resnet, small_shift):
    res = rftlab.finetune("ft", tiny_resnet, small_shift,
                          rftlab.TrainConfig(steps=2, batch_size=8, eval_every=0, progress=False))
    before = {k: v for k, v in tiny_resnet.model.state_dict().items() if "running_" in k}
    after = res.classifier.clip.state_dict()
    assert before and all(torch.equal(v, after[k]) for k, v in before.items())
