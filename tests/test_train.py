"""The training loop: FT steps, frozen parts, resume, interruption, non-finite loss, WiSE-FT."""
import copy

import pytest
import torch

import rftlab
from rftlab.methods import wise_ft


def _cfg(**kw):
    base = dict(steps=6, batch_size=16, lr=1e-3, eval_every=3, progress=False, seed=0)
    return rftlab.TrainConfig(**{**base, **kw})


def _fresh(clip):
    c = copy.copy(clip)
    c.model = copy.deepcopy(clip.model)
    return c


def test_ft_trains_the_image_tower_and_head_only(clip, small_spurious):
    c = _fresh(clip)
    before = {k: v.clone() for k, v in c.model.state_dict().items()}
    trainer = rftlab.Trainer("ft", c, small_spurious, _cfg())
    head0 = trainer.classifier.head.detach().clone()
    res = trainer.fit()
    after = res.classifier.clip.state_dict()
    assert res.step == 6 and not res.interrupted and res.stopped is None
    steps = [h for h in res.history if "loss" in h]
    assert len(steps) == 6 and all(torch.isfinite(torch.tensor(h["loss"])) for h in steps)
    assert any("val_acc" in h for h in res.history)
    assert not torch.equal(res.classifier.head, head0)
    assert not torch.equal(before["visual.trunk.stages.0.0.weight"], after["visual.trunk.stages.0.0.weight"])
    for k in before:
        if not k.startswith("visual."):
            assert torch.equal(before[k], after[k]), f"{k} should be frozen under FT"


def test_finetune_leaves_the_given_model_untouched(clip, small_spurious):
    before = {k: v.clone() for k, v in clip.model.state_dict().items()}
    rftlab.finetune("ft", clip, small_spurious, _cfg(steps=2, eval_every=0))
    assert all(torch.equal(before[k], v) for k, v in clip.model.state_dict().items())


@pytest.mark.parametrize("method, hp", [("ft", {}), ("carot", {"ema_updates": 3}), ("starft", {}), ("lipsum-ft", {})])
def test_resume_equals_an_uninterrupted_run(method, hp, clip, small_spurious, tmp_path):
    full = rftlab.Trainer(method, _fresh(clip), small_spurious, _cfg(), **hp).fit()
    def stop_at_three(event, info):
        if event == "step" and info["step"] == 3:
            raise KeyboardInterrupt
    first = rftlab.Trainer(method, _fresh(clip), small_spurious, _cfg(checkpoint_dir=str(tmp_path)),
                           callbacks=[stop_at_three], **hp)
    with pytest.warns(UserWarning, match="interrupted"):
        first.fit()  # an interrupted run still writes its checkpoint
    second = rftlab.Trainer(method, _fresh(clip), small_spurious, _cfg(), **hp)
    res = second.fit(resume=tmp_path / "last.pt")
    a, b = full.classifier.state_dict(), res.classifier.state_dict()
    for k in a:
        assert torch.allclose(a[k].float(), b[k].float(), atol=1e-6), k
    assert [h["loss"] for h in full.history if "loss" in h] == pytest.approx(
        [h["loss"] for h in res.history if "loss" in h], abs=1e-6)


def test_keyboard_interrupt_keeps_model_and_history(clip, small_spurious):
    def stop_at_three(event, info):
        if event == "step" and info["step"] == 3:
            raise KeyboardInterrupt
    trainer = rftlab.Trainer("ft", _fresh(clip), small_spurious, _cfg(steps=10), callbacks=[stop_at_three])
    head0 = trainer.classifier.head.detach().clone()
    with pytest.warns(UserWarning, match="interrupted at step 3"):
        res = trainer.fit()
    assert res.interrupted and res.step == 3
    assert len([h for h in res.history if "loss" in h]) == 3
    assert not torch.equal(res.classifier.head, head0)


def test_non_finite_loss_stops_with_the_last_good_weights(clip, small_spurious, nan_at):
    trainer = rftlab.Trainer(nan_at(2), _fresh(clip), small_spurious, _cfg(eval_every=0))
    seen = {}
    trainer.callbacks.append(lambda e, i: seen.__setitem__(i["step"], trainer.classifier.head.detach().clone())
                             if e == "step" else None)
    with pytest.warns(UserWarning, match="loss became nan at step 2"):
        res = trainer.fit()
    assert res.step == 2 and "last good weights" in res.stopped
    assert torch.equal(res.classifier.head, seen[2])
    assert torch.isfinite(res.classifier.head).all()


def test_wise_ft_is_exact_at_the_ends_and_linear_between():
    a = {"w": torch.randn(3, 3), "n": torch.tensor(5)}
    b = {"w": torch.randn(3, 3), "n": torch.tensor(9)}
    assert torch.equal(wise_ft(a, b, 0.0)["w"], a["w"]) and torch.equal(wise_ft(a, b, 1.0)["w"], b["w"])
    mid = wise_ft(a, b, 0.25)
    assert torch.allclose(mid["w"], 0.75 * a["w"] + 0.25 * b["w"])
    assert mid["n"].item() in (5, 9) and mid["n"].dtype == torch.int64  # integer buffers copied, not mixed
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        wise_ft(a, b, 1.5)
    with pytest.raises(ValueError, match="different architectures"):
        wise_ft(a, {"v": b["w"], "n": b["n"]}, 0.5)
    with pytest.raises(ValueError, match="different architectures"):
        wise_ft(a, {"w": torch.randn(2, 3), "n": b["n"]}, 0.5)


def test_wise_ft_method_interpolates_with_theta0(clip, small_spurious):
    t0 = rftlab.Trainer("ft", _fresh(clip), small_spurious, _cfg(steps=0))
    theta0 = {k: v.clone() for k, v in t0.classifier.state_dict().items()}
    ft = rftlab.Trainer("ft", _fresh(clip), small_spurious, _cfg()).fit().classifier.state_dict()
    wise = rftlab.Trainer("wise-ft", _fresh(clip), small_spurious, _cfg(), alpha=0.5).fit().classifier.state_dict()
    k = "head"
    assert torch.allclose(wise[k], 0.5 * theta0[k] + 0.5 * ft[k], atol=1e-6)


def test_unknown_method_and_bad_hyperparameters_are_explained():
    with pytest.raises(ValueError, match="registered methods: zeroshot, lp, ft"):
        rftlab.get_method("sgd-magic")
    with pytest.raises(ValueError, match="out of range"):
        rftlab.get_method("wise-ft", alpha=2.0)
    with pytest.raises(ValueError, match="no hyperparameter"):
        rftlab.get_method("ft", beta=1.0)
    with pytest.raises(ValueError, match="lr"):
        rftlab.TrainConfig(lr=-1)
    with pytest.raises(ValueError, match="select"):
        rftlab.TrainConfig(select="test_acc")


def test_head_and_task_mismatch_is_refused(clip, small_spurious, small_shift):
    clf = rftlab.ClipClassifier.zeroshot(clip, small_shift.classnames, small_shift.templates)
    with pytest.raises(ValueError, match="4 classes but task"):
        rftlab.Trainer("ft", _fresh(clip), small_spurious, _cfg(), classifier=clf)
    with pytest.raises(ValueError, match="build its head"):
        rftlab.evaluate(clf, small_spurious, clip.preprocess)


def test_request_stop_from_a_callback_keeps_the_weights_reached(clip, small_spurious):
    c = copy.copy(clip)
    c.model = copy.deepcopy(clip.model)
    cfg = rftlab.TrainConfig(steps=20, batch_size=16, eval_every=0, progress=False)
    trainer = rftlab.Trainer("ft", c, small_spurious, cfg)
    before = copy.deepcopy(trainer.classifier.head.detach())
    trainer.callbacks.append(lambda event, info: event == "step" and info["step"] == 3 and trainer.request_stop())
    result = trainer.fit()
    assert result.interrupted and result.step == 3 and len(result.history) == 3
    assert not torch.equal(result.classifier.head.detach(), before)  # the three steps are kept


def test_result_keeps_the_endpoint_a_finish_changed(clip, small_spurious):
    cfg = rftlab.TrainConfig(steps=2, batch_size=16, eval_every=0, progress=False)
    wise = rftlab.finetune("wise-ft", clip, small_spurious, cfg, alpha=0.5)
    ft = rftlab.finetune("ft", clip, small_spurious, cfg)
    assert ft.endpoint is None  # FT's finish changes nothing
    for k, v in ft.classifier.state_dict().items():     # same seed: WiSE-FT's endpoint is the FT run
        assert torch.allclose(wise.endpoint[k].float(), v.float()), k
