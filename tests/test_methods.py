"""Every registered method, smoke-tested by one parametrised test (as DomainBed does),
on a randomly initialised world CLIP and a tiny task, on the CPU."""
import copy
import types

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
    before = rftlab.ClipClassifier.zeroshot(clip, tiny_task.classnames, tiny_task.templates).state_dict()
    runs = []  # (trainer, its frozen references at the start): one, or one per soup ingredient

    def at_start(event, info):
        if event == "start":
            trainer = info["trainer"]
            runs.append((trainer, _frozen_refs(trainer.method, trainer.classifier)))
    result = rftlab.finetune(name, clip, tiny_task, cfg, callbacks=[at_start], **extra)
    assert result.stopped is None and not result.interrupted
    assert len(runs) == {"model-stock": 3}.get(name, extra.get("ingredients", 1))   # Model Stock: theta0 + 2 FT runs
    losses = [h["loss"] for h in result.history if "loss" in h]
    if name != "zeroshot":
        assert losses and all(torch.isfinite(torch.tensor(losses))), result.history
    after = result.classifier.state_dict()
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    if name == "zeroshot":
        assert not changed
    else:
        assert changed, f"{name} changed no weight"
    for trainer, refs in runs:
        now = _held_tensors(trainer.method)
        for k, v in refs.items():
            assert torch.equal(v, now[k].detach()), f"{name}: frozen reference {k} changed"
    if name in ("l2-sp", "lipsum-ft", "car-ft", "starft"):
        assert runs[0][1], f"{name} keeps a copy of theta0 that the check must see"
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


def test_the_trainer_runs_methods_and_finetune_runs_recipes(random_clip, tiny_task):
    with pytest.raises(ValueError, match=r"soup-greedy is a recipe of several training runs.*rftlab.finetune"):
        rftlab.Trainer("soup-greedy", copy.copy(random_clip), tiny_task, rftlab.TrainConfig(steps=1, progress=False))


def test_ft_from_a_random_head(random_clip, tiny_task):
    cfg = rftlab.TrainConfig(steps=0, progress=False, seed=3)
    zs = rftlab.Trainer("ft", copy.copy(random_clip), tiny_task, cfg).classifier.head
    heads = [rftlab.Trainer("ft", copy.copy(random_clip), tiny_task, cfg, head_init="random").classifier.head
             for _ in range(2)]
    assert not torch.allclose(heads[0], zs) and torch.equal(heads[0], heads[1])   # random, from the seed
    assert torch.allclose(heads[0].norm(dim=0), torch.ones(heads[0].shape[1]))    # unit columns, as W0's
    with pytest.raises(ValueError, match="head_init='gaussian': choose 'zeroshot' or 'random'"):
        rftlab.get_method("ft", head_init="gaussian")


def test_lp_chooses_its_l2_strength_on_val(clip, small_shift):
    from rftlab.methods.base import PROBE_GRID
    cfg = rftlab.TrainConfig(progress=False, eval_every=0)
    res = rftlab.finetune("lp", clip, small_shift, cfg, iters=20)
    probes = [h for h in res.history if "probe_weight_decay" in h]
    assert [h["probe_weight_decay"] for h in probes] == list(PROBE_GRID)
    best = max(probes, key=lambda h: h["val_probe_acc"])   # the first of equal accuracies: the strongest L2
    fixed = rftlab.finetune("lp", clip, small_shift, cfg, iters=20, weight_decay=best["probe_weight_decay"])
    assert torch.allclose(res.classifier.head, fixed.classifier.head)
    assert [h["probe_weight_decay"] for h in fixed.history if "probe_weight_decay" in h] == [best["probe_weight_decay"]]
    assert rftlab.get_method("lp", weight_decay="1e-4").weight_decay == 1e-4     # typed in a box or a YAML file
    with pytest.raises(ValueError, match="choose 'val' or a number"):
        rftlab.get_method("lp-ft", lp_weight_decay="cv")


@pytest.mark.parametrize("name", list(METHODS))
def test_every_recipe_is_a_valid_train_config(name):
    from rftlab.recipes import recipe_config
    world = recipe_config(name, "rftlab-world")
    assert {k: getattr(world, k) for k in METHODS[name].world_recipe} == METHODS[name].world_recipe
    paper = recipe_config(name, "ViT-B-16", types.SimpleNamespace(train=range(5120)))   # only its size is read
    recipe = METHODS[name].paper_recipe
    if "epochs" in recipe:   # epochs become steps with the task's size and the (overridden) batch size
        assert paper.steps == recipe["epochs"] * (5120 // recipe["batch_size"])
        task = types.SimpleNamespace(train=range(1024))
        assert recipe_config(name, "ViT-B-16", task, batch_size=256).steps == recipe["epochs"] * 4
        with pytest.raises(ValueError, match="epochs: give the task"):
            recipe_config(name, "ViT-B-16")
    assert paper.warmup == recipe.get("warmup_steps", recipe.get("warmup", rftlab.TrainConfig.warmup))
    assert METHODS[name].grid(6) and all(len(METHODS[name].grid(b)) in (1, b) for b in (3, 6, 12))


def test_one_recipe_for_finetune_compare_runs_and_the_panel(clip, small_spurious):
    from rftlab.run_config import resolve_config
    from rftlab.widgets import TrainPanel
    lipsum = rftlab.METHODS["lipsum-ft"].world_recipe
    assert lipsum["lr"] != rftlab.TrainConfig.lr and lipsum["weight_decay"] != rftlab.TrainConfig.weight_decay
    fresh = copy.copy(clip)
    fresh.model = copy.deepcopy(clip.model)   # a Trainer lays out the model it trains as channels_last
    got = rftlab.Trainer("lipsum-ft", fresh, small_spurious).config      # no config: the recipe
    assert (got.lr, got.weight_decay) == (lipsum["lr"], lipsum["weight_decay"])
    run = resolve_config({"method": "lipsum-ft", "task": "spurious"})
    assert (run["lr"], run["weight_decay"]) == (lipsum["lr"], lipsum["weight_decay"])
    assert resolve_config({"method": "lipsum-ft", "task": "spurious", "lr": 1e-3})["lr"] == 1e-3   # the config wins
    panel = TrainPanel(clip, task=small_spurious, method="lipsum-ft", device="cpu")
    assert panel.config_inputs["lr"].value == lipsum["lr"] and panel.config().weight_decay == lipsum["weight_decay"]
    panel.set_method("ft")
    assert panel.config().lr == rftlab.METHODS["ft"].world_recipe["lr"] and panel.config().weight_decay == 0.1
    given = TrainPanel(clip, task=small_spurious, method="lipsum-ft", device="cpu",
                       config=rftlab.TrainConfig(lr=5e-4, weight_decay=0.3))
    assert (given.config().lr, given.config().weight_decay) == (5e-4, 0.3)   # a given config is used as it is
