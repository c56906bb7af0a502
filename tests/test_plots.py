"""Every figure of rftlab.plots, fed by the real analyses on tiny data: the traces carry the numbers."""
import copy

import matplotlib
import pytest
import torch

import rftlab
from rftlab import analysis as A
from rftlab import plots as P

matplotlib.use("Agg")


@pytest.fixture(scope="module")
def world(clip, small_spurious, small_shift):
    sp, sh = A.subsample(small_spurious, 16), A.subsample(small_shift, 16)
    zs = rftlab.ClipClassifier.zeroshot(clip, sp.classnames, sp.templates)
    zs_sh = rftlab.ClipClassifier.zeroshot(clip, sh.classnames, sh.templates)
    moved = copy.deepcopy(zs_sh)
    with torch.no_grad():
        moved.clip.visual.head.proj.weight.add_(0.05 * torch.randn(moved.clip.visual.head.proj.weight.shape,
                                                                   generator=torch.Generator().manual_seed(0)))
    return {"sp": sp, "sh": sh, "zs": zs, "zs_sh": zs_sh, "moved": moved, "T": clip.preprocess, "tok": clip.tokenizer}


def _ys(fig):
    return [list(t.y) for t in fig.data]


def test_layer_drift_and_cka(world):
    rows = A.feature_distortion(world["zs_sh"], world["moved"], world["sh"], world["T"], progress=False)
    fig = P.plot_layer_drift(rows)
    assert [t.name for t in fig.data] == ["id", "sketch", "painting"]
    assert fig.data[0].y[-1] == pytest.approx(rows[4]["cosine_drift"])
    assert list(fig.data[0].x) == ["layer0", "layer1", "layer2", "layer3", "embedding"]
    cka = P.plot_cka(rows)
    assert cka.data[0].type == "bar" and cka.data[1].y[0] == pytest.approx(rows[5]["cka"])
    with pytest.raises(ValueError, match="no 'nope'"):
        P.plot_layer_drift(rows, metric="nope")
    import pandas as pd
    assert len(P.plot_layer_drift(pd.DataFrame(rows)).data) == 3   # DataFrames work too


def test_wise_and_effective_robustness():
    sweep = [{"alpha": a, "id_acc": 0.5 + 0.4 * a, "mean_ood_acc": 0.4 + 0.2 * a * (1 - a) + 0.1 * a}
             for a in (0.0, 0.5, 1.0)]
    pts = A.effective_robustness([("zeroshot", 0.5, 0.4), ("ft", 0.9, 0.5), ("lipsum-ft", 0.85, 0.6)])
    fig = P.plot_wise(sweep, pts)
    assert [t.name for t in fig.data] == ["WiSE-FT (alpha)", "zero-shot to FT line", "methods"]
    assert list(fig.data[0].text) == ["0", "0.5", "1"]
    assert list(fig.data[2].text) == ["zeroshot", "ft", "lipsum-ft"]
    er = P.plot_effective_robustness(pts)
    assert list(er.data[0].y)[-1] == "lipsum-ft" and er.data[0].x[-1] == pytest.approx(pts[2]["effective_robustness"])
    with pytest.raises(ValueError, match="give a WiSE-FT curve"):
        P.plot_wise()


def test_group_alignment_and_ranking(world):
    sp, zs, T, tok = world["sp"], world["zs"], world["T"], world["tok"]
    rows = A.group_table({"zero-shot": zs}, sp, T)
    fig = P.plot_group_accuracy(rows)
    assert list(fig.data[0].x) == sp.group_names and fig.data[0].y[0] == pytest.approx(rows[0]["acc"])
    al = A.description_alignment(zs, sp, ["on the water", "on the grass"], tok, T)
    hm = P.plot_alignment(al)
    assert hm.data[0].type == "heatmap" and len(hm.data[0].z) == 2 and len(hm.data[0].z[0]) == 4
    assert hm.data[0].z[0][0] == pytest.approx(al[0]["alignment"])
    shift = A.description_shift(zs, zs, sp, ["on the water"], tok, T)
    assert P.plot_alignment(shift).data[0].zmid == 0
    ranked = A.rank_descriptions(zs, zs, sp, tok, T, candidates=["in the snow", "red {}", "blurred {}"])
    bars = P.plot_ranking(ranked, top=2)
    assert len(bars.data[0].y) == 2


def test_context_figures(world):
    s = A.context_shift(world["zs_sh"], world["moved"], world["sh"], world["tok"], world["T"])
    fig = P.plot_contexts(s)
    assert [t.name for t in fig.data] == ["theta0", "theta"] and len(fig.data[0].x) == len(s.contexts)
    hist = P.plot_context_kl(s)
    assert len(hist.data[0].x) == len(s.kl)
    rec = A.context_recognition_table({"zs": world["zs_sh"], "moved": world["moved"]}, world["sh"], world["tok"], world["T"])
    r = P.plot_context_recognition(rec)
    assert [t.name for t in r.data] == ["zs", "moved"] and list(r.data[0].x) == ["style", "background"]


def test_calibration_figures():
    g = torch.Generator().manual_seed(0)
    logits, labels = 2 * torch.randn(300, 3, generator=g), torch.randint(0, 3, (300,), generator=g)
    rel = A.reliability(logits, labels, n_bins=10)
    fig = P.plot_reliability({"a": rel, "b": A.reliability(logits / 2, labels, n_bins=10)})
    assert len(fig.data) == 3 and "ECE" in fig.data[1].name
    assert len(P.plot_reliability(rel).data) == 2
    hist = {"a": A.confidence_histogram(logits, labels, n_bins=10), "b": A.confidence_histogram(logits / 2, labels, n_bins=10)}
    both = P.plot_reliability({"a": rel, "b": A.reliability(logits / 2, labels, n_bins=10)}, confidence=hist)
    assert [t.type for t in both.data] == ["scatter", "scatter", "scatter", "bar", "bar"]
    assert [t.name for t in both.data[3:]] == ["a", "b"] and sum(both.data[4].y) == pytest.approx(1.0)
    assert both.data[1].marker.color == both.data[3].marker.color != both.data[2].marker.color
    assert list(both.data[1].x) == list(fig.data[1].x)          # the same lines as without the panel
    with pytest.raises(ValueError, match=r"no confidence histogram for \['b'\]"):
        P.plot_reliability({"a": rel, "b": rel}, confidence={"a": hist["a"]})
    conf = P.plot_confidence(A.confidence_histogram({"id": logits, "ood": logits[:50]}, n_bins=10))
    assert [t.name for t in conf.data] == ["id", "ood"] and sum(conf.data[1].y) == pytest.approx(1.0)
    rows = A.calibration_vs_ood({"zs": {"ece": 0.05, "mean_ood_acc": 0.6, "id_acc": 0.8},
                                 "ft": {"ece": 0.1, "mean_ood_acc": 0.5, "id_acc": 0.9}})
    sc = P.plot_calibration_vs_ood(rows)
    assert list(sc.data[0].x) == [0.05, 0.1] and list(sc.data[0].y) == pytest.approx([0.4, 0.5])
    with pytest.raises(ValueError, match="no row has both"):
        P.plot_calibration_vs_ood([{"method": "x", "id_ece": 0.1, "mean_ood_error": None}])


def test_embedding_figure(world):
    e = A.embedding_drift(world["zs_sh"], world["moved"], world["sh"], world["T"])
    fig = P.plot_embedding(e, color="class", arrows=True)
    assert fig.data[0].name == "drift"
    names = [t.name for t in fig.data[1:]]
    assert all(n.split(": ")[0] in ("theta0", "theta") for n in names)
    assert sum(len(t.x) for t in fig.data[1:]) == len(e.points)
    with pytest.raises(ValueError, match="no column 'nope'"):
        P.plot_embedding(e, color="nope")


def test_static_summary_and_empty_rows(world):
    rows = A.layer_drift(world["zs_sh"], world["moved"], world["sh"], world["T"])
    groups = [{"model": "a", "group": "g1", "acc": 0.5}, {"model": "b", "group": "g1", "acc": 0.7}]
    logits = torch.randn(50, 3, generator=torch.Generator().manual_seed(1))
    fig = P.plot_summary(rows, A.reliability(logits, torch.zeros(50, dtype=torch.long)), groups)
    assert len(fig.axes) == 3 and fig.axes[0].get_title() == "Feature drift"
    with pytest.raises(ValueError, match="nothing to plot"):
        P.plot_group_accuracy([])
    with pytest.raises(ValueError, match="at least one"):
        P.plot_summary()
