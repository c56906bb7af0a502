"""Every registered method, smoke-tested by one parametrised test (as DomainBed does),
on a randomly initialised world CLIP and a tiny task, on the CPU."""
import copy

import pytest
import torch

import rftlab
from rftlab.methods import METHODS


@pytest.fixture(scope="module")
def random_clip():
    torch.manual_seed(0)
    return rftlab.load_model("rftlab-world", pretrained="random")


@pytest.fixture(scope="module")
def tiny_task():
    return rftlab.make_task("tiny", ("circle", "square", "star"), 0.9, n_train=48, n_val=24, n_test=24, seed=2)


def _frozen_refs(method):
    refs = {}
    for name in ("ref", "teacher"):
        obj = getattr(method, name, None)
        if obj is not None:
            refs[name] = {k: v.clone() for k, v in obj.state_dict().items()}
    if getattr(method, "_params0", None) is not None:
        refs["params0"] = {str(i): p.clone() for i, p in enumerate(method._params0)}
    if getattr(method, "theta0", None) is not None:
        refs["theta0"] = {k: v.clone() for k, v in method.theta0.items()}
    return refs


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_runs_a_few_steps(name, random_clip, tiny_task):
    clip = copy.copy(random_clip)
    clip.model = copy.deepcopy(random_clip.model)
    extra = {"ingredients": 2} if name.startswith("soup") else {}
    cfg = rftlab.TrainConfig(steps=4, batch_size=8, lr=1e-3, eval_every=2, progress=False)
    trainer = rftlab.Trainer(name, clip, tiny_task, cfg, **extra)
    before = {k: v.clone() for k, v in trainer.classifier.state_dict().items()}
    refs = _frozen_refs(trainer.method)
    result = trainer.fit()
    assert result.stopped is None and not result.interrupted
    losses = [h["loss"] for h in result.history if "loss" in h]
    if METHODS[name].trainable or name.startswith(("soup", "lp")):
        assert losses and all(torch.isfinite(torch.tensor(losses))), result.history
    after = result.classifier.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    if name == "zeroshot":
        assert not changed
    else:
        assert changed, f"{name} changed no weight"
    for ref_name, state in refs.items():
        now = _frozen_refs(trainer.method)[ref_name]
        for k in state:
            assert torch.equal(state[k], now[k]), f"{name}: frozen {ref_name} changed at {k}"
    metrics = rftlab.evaluate(result.classifier, tiny_task, clip.preprocess)
    assert 0 <= metrics["id_acc"] <= 1 and metrics["worst_group_acc"] is not None


def test_soups_refuse_ingredients_of_different_architectures():
    from rftlab.methods import average_state_dicts
    a = {"w": torch.ones(2), "n": torch.tensor(1)}
    avg = average_state_dicts([a, {"w": torch.zeros(2), "n": torch.tensor(3)}])
    assert torch.equal(avg["w"], torch.full((2,), 0.5)) and avg["n"].item() == 1
    with pytest.raises(ValueError, match="different architectures"):
        average_state_dicts([a, {"w": torch.ones(3), "n": torch.tensor(1)}])
    with pytest.raises(ValueError, match="at least one"):
        average_state_dicts([])


def test_caption_methods_need_class_names(random_clip):
    from rftlab.methods._common import CaptionBank
    with pytest.raises(ValueError, match="class names"):
        CaptionBank.from_templates(random_clip.tokenizer, [], ["a photo of a {}"])
    with pytest.raises(ValueError, match="'{}'"):
        rftlab.Trainer("starft", copy.copy(random_clip), rftlab.make_task(
            "t2", ("circle", "ring"), None, n_train=8, n_val=4, n_test=4), rftlab.TrainConfig(steps=1, progress=False),
            caption="a photo")


def test_carot_ema_schedule_and_teacher_update(random_clip, tiny_task):
    clip = copy.copy(random_clip)
    clip.model = copy.deepcopy(random_clip.model)
    cfg = rftlab.TrainConfig(steps=10, batch_size=8, eval_every=0, progress=False)
    tr = rftlab.Trainer("carot", clip, tiny_task, cfg, ema_every=5, m_ramp=0.5)
    m = tr.method
    assert m.momentum(0, 10) == pytest.approx(0.05) and m.momentum(5, 10) == pytest.approx(0.9)
    assert m.momentum(2, 10) == pytest.approx(0.05 + 0.85 * 2 / 5)
    t0 = {k: v.clone() for k, v in m.teacher.state_dict().items()}
    for _ in range(4):
        tr.step()
    assert all(torch.equal(t0[k], v) for k, v in m.teacher.state_dict().items())  # no update before step 5
    tr.step()
    assert any(not torch.equal(t0[k], v) for k, v in m.teacher.state_dict().items())
    assert "self_distillation" in tr.history[-1] and "self_distillation" not in tr.history[0]


def test_starft_lambda_decays_linearly_over_epochs(random_clip, tiny_task):
    clip = copy.copy(random_clip)
    clip.model = copy.deepcopy(random_clip.model)
    cfg = rftlab.TrainConfig(steps=24, batch_size=8, eval_every=0, progress=False)  # 48 images: 6 steps an epoch
    m = rftlab.Trainer("starft", clip, tiny_task, cfg).method
    assert m.steps_per_epoch == 6
    assert [m.weight(s, 24) for s in (0, 6, 12, 18)] == pytest.approx([0.5 * 0.75, 0.5 * 0.5, 0.5 * 0.25, 0.0])
