"""The panels driven without a kernel: set values, click, read the model, the table and the figures."""
import dataclasses
import json
import types
import warnings

import plotly.graph_objects as go
import pytest
import torch

import rftlab
from rftlab.widgets import CalibrationView, DriftExplorer, SpuriosityProbe, TrainPanel
from rftlab.widgets import _helpers


def _panel(clip, task, steps=4, **kw):
    p = TrainPanel(clip, task=task, device="cpu", **kw)
    p.set_config(steps=steps, batch_size=32, eval_every=2)
    return p


def _visual(classifier):
    return torch.cat([p.detach().flatten().cpu() for p in classifier.clip.visual.parameters()])


@pytest.fixture(scope="module")
def trained(clip, small_spurious):
    return rftlab.finetune("ft", clip, small_spurious, rftlab.TrainConfig(steps=8, batch_size=32, progress=False))


# ---------------------------------------------------------------------- TrainPanel
def test_run_trains_copy_grows_curves_and_adds_rows(clip, small_spurious):
    before = _visual(rftlab.ClipClassifier.zeroshot(clip, small_spurious.classnames, small_spurious.templates))
    p = _panel(clip, small_spurious, interval=0.0)
    lengths = []
    redraw = p._redraw

    def spy(force=False):
        redraw(force)
        loss = [t for t in p.fig.data if t.name == "loss"]
        lengths.append(len(loss[0].y) if loss else 0)
    p._redraw = spy
    p.run_button.click()
    assert p.wait(120)
    assert len(p.results) == 1 and p.results[0]["method"] == "ft" and p.results[0]["steps"] == 4
    assert not torch.equal(_visual(p.classifier), before)          # the trained copy moved
    assert torch.equal(_visual(rftlab.ClipClassifier.zeroshot(clip, small_spurious.classnames,
                                                              small_spurious.templates)), before)  # clip untouched
    assert lengths == sorted(lengths) and lengths[-1] == 4 and len(set(lengths)) > 2  # the curve grew live
    names = {t.name: t for t in p.fig.data}
    assert {"loss", "val_acc", "val_worst_group_acc", "val_ece"} <= set(names)
    assert list(names["val_acc"].x) == [2, 4]
    assert p.progress.value == 4
    p.set_method("l2-sp")
    assert "alpha" in p.hparam_inputs and "range" in p.hparam_inputs["alpha"].tooltip
    p.run_button.click()
    assert p.wait(120)
    assert [r["method"] for r in p.results] == ["ft", "l2-sp"]
    assert "l2-sp" in p.table.value and "ft" in p.table.value and p.table.value.count("<tr>") == 3
    assert 0 <= p.results[1]["id_acc"] <= 1 and p.results[1]["worst_group_acc"] is not None


@pytest.mark.filterwarnings("ignore:training interrupted:UserWarning")
def test_stop_during_first_step_keeps_the_model(clip, small_spurious):
    p = _panel(clip, small_spurious, steps=500)
    p.run_button.click()
    p.stop_button.click()          # while the trainer is still being built or on its first step
    assert p.wait(120) and not p.running
    assert p.result.interrupted and 1 <= p.result.step < 500
    assert p.classifier is not None and p.results[-1]["note"].startswith("stopped at step")
    assert p.results[-1]["id_acc"] is not None
    assert p.run_button.disabled is False and p.stop_button.disabled is True


@pytest.mark.filterwarnings("ignore:training interrupted:UserWarning")
def test_second_run_while_running_is_ignored(clip, small_spurious):
    p = _panel(clip, small_spurious, steps=500)
    p.run_button.click()
    p.run_button.click()
    assert "already" in p.message.last
    p.stop()
    assert p.wait(120)
    assert len(p.results) == 1
    p.stop()
    assert p.message.last == "nothing is running"


def test_bad_input_is_a_message_and_keeps_the_model(clip, small_spurious):
    p = _panel(clip, small_spurious, steps=2)
    p.run(block=True)
    model = p.classifier
    p.set_method("wise-ft")
    p.set_hparams(alpha=5.0)           # typed out of range
    p.run_button.click()
    assert "out of range" in p.message.last and "alpha" in p.message.last
    assert not p.running and p.classifier is model and len(p.results) == 1
    p.set_hparams(alpha=0.5)
    p.set_config(steps=-3)
    assert p.run(block=False) is None
    assert "steps" in p.message.last and p.classifier is model
    p.set_method("not-a-method")
    assert "unknown method" in p.message.last


def test_failure_during_a_run_keeps_the_previous_model(clip, small_spurious, monkeypatch):
    p = _panel(clip, small_spurious, steps=2)
    p.run(block=True)
    model, trainer = p.classifier, p.trainer

    def broken(self, resume=None):
        raise RuntimeError("out of memory")
    monkeypatch.setattr(rftlab.widgets.train_panel.Trainer, "fit", broken)
    assert p.run(block=True) is None
    assert "run failed" in p.message.last and "out of memory" in p.message.last
    assert p.classifier is model and p.trainer is trainer and len(p.results) == 1 and not p.running
    with pytest.raises(ValueError, match="no hyperparameter"):
        p.set_hparams(beta=1)


def test_methods_outside_the_step_loop_still_draw_curves(clip, small_spurious):
    p = _panel(clip, small_spurious, method="lp")
    p.set_hparams(iters=5)
    p.run(block=True)
    names = {t.name: t for t in p.fig.data}
    assert len(names["loss"].y) >= 1 and len(names["val_acc"].y) == 1   # from the trainer's history
    assert p.results[0]["method"] == "lp" and p.results[0]["id_acc"] > 0.5


def test_model_that_cannot_read_the_task_is_a_message(clip, small_spurious):
    import torchvision.transforms as T
    pil_model = dataclasses.replace(clip, preprocess=T.ToTensor())  # expects PIL images, as real CLIPs do
    p = TrainPanel({"world": clip, "pil-model": pil_model}, task=small_spurious, device="cpu")
    p.model_box.value = "pil-model"
    p.run_button.click()
    assert "cannot read the images" in p.message.last and not p.results and not p.running


def test_save_checkpoint(clip, small_spurious, tmp_path):
    p = _panel(clip, small_spurious, steps=2)
    assert p.save(tmp_path / "x.pt") is None and "nothing to save" in p.message.last
    p.run(block=True)
    p.save_path.value = str(tmp_path / "run.pt")
    p.save_button.click()
    ck = torch.load(tmp_path / "run.pt", weights_only=True)   # tensors and plain values only
    assert ck["method"] == "ft" and ck["step"] == 2 and ck["task"] == small_spurious.name


def test_static_fallback_without_anywidget(clip, small_spurious, monkeypatch):
    def no_widget(*a, **k):
        raise ImportError("FigureWidget needs anywidget")
    monkeypatch.setattr(go, "FigureWidget", no_widget)
    monkeypatch.setattr(_helpers, "_fallback_warned", False)
    with pytest.warns(UserWarning, match="anywidget"):
        p = _panel(clip, small_spurious, steps=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")   # said once, not per figure
        _helpers.LiveFigure(go.Figure())
    assert type(p.fig) is go.Figure and not p.live.live
    p.run(block=True)
    shown = p.live.widget.outputs[0]["data"]["application/vnd.plotly.v1+json"]
    loss = [t for t in shown["data"] if t.get("name") == "loss"]
    assert len(loss[0]["y"]) == 2 and json.dumps(shown)


# ---------------------------------------------------------------------- DriftExplorer
def test_drift_slider_moves_points_from_cache(clip, small_spurious, trained):
    d = DriftExplorer(clip, trained, small_spurious, n=48, alphas=(0.0, 0.5, 1.0), progress=False)
    g = len(d.fig.data) // 2
    theta0_x = list(d.fig.data[0].x)
    at1 = list(d.fig.data[g].x)
    assert at1 != theta0_x                         # fine-tuning moved the embeddings
    d.alpha_slider.value = 0.0
    assert list(d.fig.data[g].x) == pytest.approx(theta0_x)
    d.alpha_slider.value = 0.25                    # halfway between the cached 0 and 0.5
    idx = d._groups[next(iter(d._groups))]
    want = 0.5 * (d.coords[0.0][idx, 0] + d.coords[0.5][idx, 0])
    assert list(d.fig.data[g].x) == pytest.approx(want.tolist(), abs=1e-5)
    d.set_alpha(2.0)
    assert "[0, 1]" in d.message.last and d.alpha == 0.25
    d.color_box.value = "group"
    assert len(d.fig.data) == 2 * len(small_spurious.group_names)
    d._on_hover(d.fig.data[g], types.SimpleNamespace(point_inds=[0]), None)
    i = int(d.fig.data[g].customdata[0][0])
    assert d.image.value[:4] == b"\x89PNG" and f"#{i}" in d.info.value
    assert d.points[i]["group"] in d.info.value


def test_drift_rejects_a_model_of_another_task(clip, small_spurious, small_shift):
    other = rftlab.ClipClassifier.zeroshot(clip, small_shift.classnames, small_shift.templates)
    with pytest.raises(ValueError, match="classes"):
        DriftExplorer(clip, other, small_spurious, n=16, progress=False)


# ---------------------------------------------------------------------- SpuriosityProbe
def test_spuriosity_probe(clip, small_spurious, trained):
    sp = SpuriosityProbe(clip, trained, small_spurious, description="on the water", top=5)
    assert [r["group"] for r in sp.rows] == small_spurious.group_names
    assert list(sp.fig.data[0].y) == pytest.approx([r["before"] for r in sp.rows])
    assert list(sp.fig.data[1].y) == pytest.approx([r["after"] for r in sp.rows])
    changes = [r["change"] for r in sp.ranking]
    assert len(changes) == 5 and changes == sorted(changes, reverse=True)
    old = list(sp.fig.data[1].y)
    sp.text.value = "in the forest"
    assert list(sp.fig.data[1].y) != old and "in the forest" in sp.fig.layout.title.text
    sp.text.value = "   "
    assert "empty" in sp.message.last and list(sp.fig.data[0].x) == small_spurious.group_names
    sp.by_box.value = "place"                      # redraws the last valid description
    assert list(sp.fig.data[0].x) == ["land", "water"] and "in the forest" in sp.fig.layout.title.text


def test_spuriosity_probe_finds_the_shortcut_and_probes_a_chosen_row(clip, small_spurious):
    """A classifier with a place shortcut built in: Find the shortcut lists it first and probes it;
    choosing another row probes that one."""
    from rftlab.encode import text_features
    zs = rftlab.ClipClassifier.zeroshot(clip, small_spurious.classnames, small_spurious.templates)
    shortcut = zs.frozen_copy()
    water = text_features(clip.model, clip.tokenizer, ["on the water", "in the ocean"]).mean(0)
    land = text_features(clip.model, clip.tokenizer, ["on the grass", "in the desert"]).mean(0)
    with torch.no_grad():
        shortcut.head[:, 1] += 2.0 * (water - land)        # water pushes every image toward cross
    sp = SpuriosityProbe(clip, shortcut, small_spurious, zeroshot=zs, top=5)
    assert sp.shortcuts is None and not sp.found.options
    result = sp.discover(min_errors=0)
    first = result.ranking[0]
    assert result is sp.shortcuts and first["factor"] == "background" and len(sp.found.options) == 5
    assert sp.found.value == first["description"] == sp.text.value       # the top row is probed at once
    assert first["description"] in sp.fig.layout.title.text and "rule" in sp.found_table.value
    second = result.ranking[1]["description"]
    sp.found.value = second                                               # a click on another row
    assert sp.text.value == second and second in sp.fig.layout.title.text
    assert sp.discover(min_errors=10 ** 6) is None and "too few errors" in sp.message.last
    assert sp.shortcuts is result                                         # the last ranking stays


# ---------------------------------------------------------------------- CalibrationView
def test_calibration_temperature_slider(clip, small_spurious, trained):
    from rftlab.analysis import confidence_histogram, reliability
    from rftlab.plots import plot_reliability
    cv = CalibrationView(clip, {"ft": trained}, small_spurious)
    assert cv.models == ["zero-shot", "ft"] and len(cv.fig.data) == 1 + 2 * 2
    z, y = {n: cv.logits[(n, "id")] for n in cv.models}, cv.labels["id"]
    ref = plot_reliability({n: reliability(z[n], y, cv.n_bins) for n in cv.models},
                           confidence={n: confidence_histogram(z[n], y, cv.hist_bins) for n in cv.models})
    assert [(t.type, t.name) for t in cv.fig.data] == [(t.type, t.name) for t in ref.data]   # plot_reliability's traces
    assert [list(t.x) for t in cv.fig.data] == [list(t.x) for t in ref.data]
    conf1 = sum(cv.fig.data[2].x) / len(cv.fig.data[2].x)    # the diagonal, a line per model, then bars
    cv.temp_slider.value = 5.0
    conf5 = sum(cv.fig.data[2].x) / len(cv.fig.data[2].x)
    assert conf5 < conf1 and "ft (ECE" in cv.fig.data[2].name  # softer softmax, lower confidence
    assert abs(sum(cv.fig.data[4].y) - 1) < 1e-6              # histogram fractions
    assert cv.rows[1]["ECE (T)"] != cv.rows[1]["ECE (T=1)"]
    cv.fit_button.click()
    assert cv.temperature == pytest.approx(cv.fitted["zero-shot"])
    cv.model_box.value = ("ft",)
    assert len(cv.fig.data) == 3
    cv.show(test_set="nope")
    assert "unknown test set" in cv.message.last
    cv.set_temperature(-1)
    assert "positive" in cv.message.last


def test_calibration_scores_a_class_subset_as_evaluate_does(clip, small_shift):
    import dataclasses

    from rftlab.data import Split
    ood = small_shift.ood["sketch"]
    keep = torch.nonzero(ood.labels < 2).flatten()
    part = ood.select(keep)  # a 2-class OOD set scored inside the 4-class task, as ImageNet-R is
    sub = Split("sketch", part.images, part.labels, part.meta, class_subset=torch.tensor([0, 1]))
    task = dataclasses.replace(small_shift, ood={"sketch": sub})
    cv = CalibrationView(clip, {}, task)
    cv.show(test_set="sketch")
    zs = rftlab.ClipClassifier.zeroshot(clip, task.classnames, task.templates)
    expected = rftlab.evaluate(zs, task, clip.preprocess)
    assert cv.rows[0]["accuracy"] == pytest.approx(expected["ood_acc"]["sketch"])
    assert cv.rows[0]["ECE (T=1)"] == pytest.approx(expected["ood_ece"]["sketch"], abs=1e-6)
