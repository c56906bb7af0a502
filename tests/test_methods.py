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


def _held_tensors(obj, seen=None, path="method") -> dict[str, torch.Tensor]:
    """Every tensor a method object holds, wherever it keeps it (attributes, modules, lists,
    dicts, nested objects), by path."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return {}
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return {path: obj}
    if isinstance(obj, torch.nn.Module):
        return {f"{path}.{k}": v for k, v in obj.state_dict(keep_vars=True).items()}
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, (list, tuple)) \
        else vars(obj).items() if hasattr(obj, "__dict__") and not isinstance(obj, type) else ()
    out = {}
    for k, v in items:
        out.update(_held_tensors(v, seen, f"{path}.{k}"))
    return out


def _frozen_refs(method, classifier) -> dict[str, torch.Tensor]:
    """Copies of the tensors a method holds that must not change while it trains: everything
    but the trained classifier's own tensors and the state the method checkpoints (an EMA
    teacher moves by design, and resume restores it from ``state_dict``)."""
    live = {t.data_ptr() for t in classifier.state_dict(keep_vars=True).values()}
    moving = {t.data_ptr() for t in _held_tensors(method.state_dict() or {}).values()}
    return {k: t.detach().clone() for k, t in _held_tensors(method).items()
            if t.data_ptr() not in live | moving and t.is_floating_point()}


@pytest.mark.parametrize("name", list(METHODS))
def test_every_method_runs_a_few_steps(name, random_clip, tiny_task):
    clip = copy.copy(random_clip)
    clip.model = copy.deepcopy(random_clip.model)
    extra = {"ingredients": 2} if name.startswith("soup") else {}
    cfg = rftlab.TrainConfig(steps=4, batch_size=8, lr=1e-3, eval_every=2, progress=False)
    trainer = rftlab.Trainer(name, clip, tiny_task, cfg, **extra)
    before = {k: v.clone() for k, v in trainer.classifier.state_dict().items()}
    refs = _frozen_refs(trainer.method, trainer.classifier)
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
    now = _held_tensors(trainer.method)
    for k, v in refs.items():
        assert torch.equal(v, now[k].detach()), f"{name}: frozen reference {k} changed"
    if name in ("l2-sp", "lipsum-ft", "car-ft", "starft"):
        assert refs, f"{name} keeps a copy of theta0 that the check must see"
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
    tr = rftlab.Trainer("carot", clip, tiny_task, cfg, ema_updates=2, m_ramp=0.5)
    m = tr.method
    assert m.ema_every(10) == 5 and m.ema_every(25_000) == 12_500
    assert rftlab.methods.CaRot().ema_every(25_000) == 500  # the paper's schedule at the paper's length
    assert m.momentum(0, 10) == pytest.approx(0.05) and m.momentum(5, 10) == pytest.approx(0.9)
    assert m.momentum(2, 10) == pytest.approx(0.05 + 0.85 * 2 / 5)

    def teacher():
        return {k: v.clone() for k, v in m.teacher.state_dict().items()}
    t0 = teacher()
    tr.step()  # step 0 updates the teacher (as the official schedule does)
    t1 = teacher()
    assert any(not torch.equal(t0[k], v) for k, v in t1.items())
    for _ in range(4):
        tr.step()
    assert all(torch.equal(t1[k], v) for k, v in m.teacher.state_dict().items())  # no update at steps 1-4
    tr.step()
    assert any(not torch.equal(t1[k], v) for k, v in m.teacher.state_dict().items())  # step 5
    assert "self_distillation" in tr.history[-1] and "self_distillation" not in tr.history[0]


def test_starft_lambda_decays_linearly_over_epochs(random_clip, tiny_task):
    clip = copy.copy(random_clip)
    clip.model = copy.deepcopy(random_clip.model)
    cfg = rftlab.TrainConfig(steps=24, batch_size=8, eval_every=0, progress=False)  # 48 images: 6 steps an epoch
    m = rftlab.Trainer("starft", clip, tiny_task, cfg).method
    assert m.steps_per_epoch == 6
    assert [m.weight(s, 24) for s in (0, 6, 12, 18)] == pytest.approx([0.5 * 0.75, 0.5 * 0.5, 0.5 * 0.25, 0.0])
