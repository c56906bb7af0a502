"""Analyses with known answers (rftlab.analysis), on the shipped world CLIP and small tasks."""
import copy

import pytest
import torch

import rftlab
from rftlab import analysis as A
from rftlab.losses import context_kl


@pytest.fixture(scope="module")
def zs(clip, small_spurious):
    return rftlab.ClipClassifier.zeroshot(clip, small_spurious.classnames, small_spurious.templates)


@pytest.fixture(scope="module")
def moved(zs):
    """theta0 with its image tower nudged: a stand-in for a fine-tuned model."""
    m = copy.deepcopy(zs)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in m.clip.visual.parameters():
            if p.is_floating_point() and p.ndim > 1:
                p.add_(0.3 * p.std() * torch.randn(p.shape, generator=g))
    return m


@pytest.fixture(scope="module")
def zs_shift(clip, small_shift):
    return rftlab.ClipClassifier.zeroshot(clip, small_shift.classnames, small_shift.templates)


# ---------------------------------------------------------------- distortion
def test_linear_cka_known_answers():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 12, generator=g)
    q, _ = torch.linalg.qr(torch.randn(12, 12, generator=g))
    assert A.linear_cka(x, x) == pytest.approx(1.0, abs=1e-9)
    assert A.linear_cka(x, 3.7 * x @ q) == pytest.approx(1.0, abs=1e-9)    # orthogonal + isotropic scale
    assert A.linear_cka(x, x + 5.0) == pytest.approx(1.0, abs=1e-9)        # centring removes offsets
    assert A.linear_cka(x, torch.randn(200, 12, generator=g)) < 0.3        # unrelated
    wide = torch.randn(20, 300, generator=g)                                # Gram branch (d > N)
    assert A.linear_cka(wide, 0.5 * wide) == pytest.approx(1.0, abs=1e-9)
    y = torch.randn(20, 7, generator=g)
    z = torch.randn(20, 5, generator=g)
    assert A.linear_cka(y, z) == pytest.approx(A.linear_cka(z, y), abs=1e-12)
    with pytest.raises(ValueError, match="constant"):
        A.linear_cka(torch.ones(10, 3), x[:10])
    with pytest.raises(ValueError, match="same N"):
        A.linear_cka(x, x[:10])


def test_layer_features_use_forward_intermediates_and_match_hooks(zs, small_spurious, clip):
    assert A.layer_source(zs) == "forward_intermediates"
    f = A.layer_features(zs, small_spurious, clip.preprocess)
    assert list(f) == ["layer0", "layer1", "layer2", "layer3", "embedding"]
    assert [v.shape[1] for v in f.values()] == [24, 48, 96, 192, 128]
    emb = rftlab.encode_split(zs, small_spurious.test, clip.preprocess)
    assert torch.allclose(f["embedding"], emb, atol=1e-5)
    names = A.default_layers(zs)
    assert A.layer_source(zs, names) == "hooks" and names == [f"trunk.stages.{i}" for i in range(4)]
    h = A.layer_features(zs, small_spurious, clip.preprocess, layers=names)
    for i, n in enumerate(names):
        assert torch.allclose(h[n], f[f"layer{i}"], atol=1e-5)
    with pytest.raises(ValueError, match="no module"):
        A.layer_features(zs, small_spurious, clip.preprocess, layers=["trunk.nope"])


def test_layer_drift_of_identical_models_is_zero(zs, moved, small_spurious, clip):
    same = A.layer_drift(zs, copy.deepcopy(zs), small_spurious, clip.preprocess)
    assert len(same) == 5
    for r in same:
        assert r["cosine_drift"] == pytest.approx(0.0, abs=1e-5)
        assert r["relative_change"] == pytest.approx(0.0, abs=1e-5)
        assert r["cka"] == pytest.approx(1.0, abs=1e-5)
    diff = A.layer_drift(zs, moved, small_spurious, clip.preprocess)
    assert all(r["relative_change"] > 1e-3 for r in diff)
    assert diff[-1]["cosine_drift"] > 1e-3


def test_feature_distortion_covers_id_and_ood(zs_shift, small_shift, clip):
    m = copy.deepcopy(zs_shift)
    with torch.no_grad():
        m.clip.visual.head.proj.weight.mul_(-1.0)      # flips every embedding: a known drift
    rows = A.feature_distortion(zs_shift, m, small_shift, clip.preprocess, progress=False)
    assert {r["split"] for r in rows} == {"id", "sketch", "painting"}
    assert {r["ood"] for r in rows if r["split"] != "id"} == {True}
    for r in rows:
        if r["layer"] == "embedding":
            assert r["cosine"] == pytest.approx(-1.0, abs=1e-5)   # feature flipped
            assert r["cka"] == pytest.approx(1.0, abs=1e-5)       # same geometry
        else:
            assert r["cosine_drift"] == pytest.approx(0.0, abs=1e-5)


def test_energy_gap_of_a_model_with_itself_is_zero(zs, moved, small_spurious, clip):
    tok, T = clip.tokenizer, clip.preprocess
    assert A.energy_gap(zs, zs, small_spurious, tok, T) == pytest.approx(0.0, abs=1e-10)
    per = A.energy_gap(zs, moved, small_spurious, tok, T, reduce=False)
    assert per.shape == (len(small_spurious.test),) and (per >= 0).all()
    assert per.mean().item() == pytest.approx(A.energy_gap(zs, moved, small_spurious, tok, T), rel=1e-5)
    assert per.mean().item() > 0


def test_effective_robustness_geometry():
    pts = [("zeroshot", 0.5, 0.4), ("ft", 0.9, 0.5), ("good", 0.7, 0.5), ("bad", 0.7, 0.4)]
    rows = {r["method"]: r for r in A.effective_robustness(pts)}
    assert rows["zeroshot"]["effective_robustness"] == pytest.approx(0.0)
    assert rows["ft"]["effective_robustness"] == pytest.approx(0.0)
    assert rows["good"]["line_ood"] == pytest.approx(0.45)
    assert rows["good"]["effective_robustness"] == pytest.approx(0.05)
    assert rows["bad"]["effective_robustness"] == pytest.approx(-0.05)
    assert rows["good"]["id_gain"] == pytest.approx(0.2)
    assert rows["zeroshot"]["reference"] and not rows["good"]["reference"]
    logit = {r["method"]: r for r in A.effective_robustness(pts, logit=True)}
    assert logit["ft"]["effective_robustness"] == pytest.approx(0.0, abs=1e-9)
    as_dicts = A.effective_robustness({"zeroshot": {"id_acc": 0.5, "mean_ood_acc": 0.4},
                                       "ft": {"id_acc": {"mean": 0.9}, "mean_ood_acc": {"mean": 0.5}}})
    assert len(as_dicts) == 2
    explicit = A.effective_robustness([("x", 0.7, 0.5)], zeroshot=(0.5, 0.4), finetuned=(0.9, 0.5))
    assert explicit[0]["effective_robustness"] == pytest.approx(0.05)
    with pytest.raises(ValueError, match="vertical"):
        A.effective_robustness([("zeroshot", 0.5, 0.4), ("ft", 0.5, 0.6)])
    with pytest.raises(ValueError, match="no reference point"):
        A.effective_robustness([("a", 0.5, 0.4)])


def test_wise_curve_lives_in_analysis_and_hits_the_endpoints(zs_shift, small_shift, clip):
    from rftlab import phenomena
    assert phenomena.wise_curve is A.wise_curve is rftlab.wise_curve
    m = copy.deepcopy(zs_shift)
    with torch.no_grad():
        m.head.add_(0.5 * torch.randn(m.head.shape, generator=torch.Generator().manual_seed(1)))
    task = A.subsample(small_shift, 32)
    rows = A.wise_curve(zs_shift, m, task, clip.preprocess, alphas=(0.0, 1.0))
    assert rows[0]["id_acc"] == rftlab.evaluate(zs_shift, task, clip.preprocess)["id_acc"]
    assert rows[1]["id_acc"] == rftlab.evaluate(m, task, clip.preprocess)["id_acc"]
    half = A.wise_classifier(zs_shift, m, 0.5)
    assert torch.allclose(half.head, 0.5 * (zs_shift.head + m.head))


# ---------------------------------------------------------------- spuriosity
def test_water_description_aligns_with_water_groups(zs, small_spurious, clip):
    rows = A.description_alignment(zs, small_spurious, ["on the water", "water"], clip.tokenizer, clip.preprocess)
    for desc in ("on the water", "water"):
        a = {r["group"]: r["alignment"] for r in rows if r["description"] == desc}
        for cls in ("square", "cross"):
            assert a[f"{cls}/water"] > a[f"{cls}/land"], (desc, a)
    place = A.description_alignment(zs, small_spurious, "a {} on the water", clip.tokenizer, clip.preprocess, by="place")
    a = {r["group"]: r["alignment"] for r in place}
    assert set(a) == {"land", "water"} and a["water"] > a["land"]


def test_description_of_unknown_words_is_a_clear_error(zs, small_spurious, clip):
    with pytest.raises(ValueError) as e:
        A.description_alignment(zs, small_spurious, ["on water", "xylophone watr"], clip.tokenizer, clip.preprocess)
    msg = str(e.value)
    assert "xylophone" in msg and "watr" in msg and "tokenises to nothing" in msg
    suggested = msg.split("e.g. ")[1].split(", ")
    assert "water" in suggested and len(suggested) >= 5            # a close match, then a spread
    assert all(w in clip.tokenizer.words for w in suggested)
    with pytest.raises(ValueError, match="empty"):
        A.description_alignment(zs, small_spurious, ["  "], clip.tokenizer, clip.preprocess)
    with pytest.warns(UserWarning, match=r"does not know \['watr'\]"):
        A.description_alignment(zs, small_spurious, ["on the watr"], clip.tokenizer, clip.preprocess)
    with pytest.raises(ValueError, match="pass the Task"):
        A.description_alignment(zs, small_spurious.test, ["a {} on the water"], clip.tokenizer, clip.preprocess)


def test_description_shift_and_ranking_follow_a_known_pull(zs, small_spurious, clip):
    tok, T = clip.tokenizer, clip.preprocess
    f0 = A.image_features(zs, small_spurious.test, T)
    pulled_text = "in the snow"
    t = rftlab.encode.text_features(zs, tok, [pulled_text])[0]
    f1 = torch.nn.functional.normalize(f0 + 0.5 * t, dim=-1)  # features pulled towards one description
    cands = ["in the snow", "on the grass", "a sketch of a {}", "red {}"]
    rows = A.rank_descriptions(zs, zs, small_spurious, tok, candidates=cands, features0=f0, features=f1)
    assert rows[0]["description"] == pulled_text and rows[0]["rank"] == 1 and rows[0]["change"] > 0
    assert {"gap_before", "gap_after", "gap_change"} <= set(rows[0])
    shift = A.description_shift(zs, zs, small_spurious, [pulled_text], tok, features0=f0, features=f1)
    assert all(r["change"] > 0 for r in shift) and len(shift) == 4
    same = A.description_shift(zs, zs, small_spurious, ["on the water"], tok, T)
    assert all(abs(r["change"]) < 1e-6 for r in same)
    water = (small_spurious.test.meta["place"] == 1).float().view(-1, 1)
    tw = rftlab.encode.text_features(zs, tok, ["on the water"])[0]
    f2 = torch.nn.functional.normalize(f0 + 0.5 * water * tw, dim=-1)  # only water images pulled to "water"
    by_gap = A.rank_descriptions(zs, zs, small_spurious, tok, candidates=["on the water", "in the snow", "red {}"],
                                 features0=f0, features=f2, by="place")
    assert max(by_gap, key=lambda r: r["gap_change"])["description"] == "on the water"
    assert by_gap[0]["description"] == "on the water"
    pulled_everywhere = torch.nn.functional.normalize(f2 + 0.6 * t, dim=-1)  # "snow" pulled on all images
    by_pull = A.rank_descriptions(zs, zs, small_spurious, tok, candidates=["on the water", "in the snow"],
                                  features0=f0, features=pulled_everywhere, by="place")
    by_sep = A.rank_descriptions(zs, zs, small_spurious, tok, candidates=["on the water", "in the snow"],
                                 features0=f0, features=pulled_everywhere, by="place", sort="gap_change")
    assert by_pull[0]["description"] == "in the snow" and by_sep[0]["description"] == "on the water"
    with pytest.raises(ValueError, match="gap_change"):
        A.rank_descriptions(zs, zs, small_spurious, tok, candidates=["in the snow"], by=None, sort="gap_change",
                            features0=f0, features=f1)
    top = A.rank_descriptions(zs, zs, small_spurious, tok, features0=f0, features=f1, top=3,
                              candidates=lambda task: ["{} " + p for p in ("in the snow", "on the sand")])
    assert len(top) == 2 and top[0]["description"] == "{} in the snow"


def test_candidate_descriptions_are_known_words_only(clip, small_spurious):
    c = A.candidate_descriptions(small_spurious, clip.tokenizer)
    assert "{} in the snow" in c and "a sketch of a {}" in c and len(c) == len(set(c))
    assert all(not clip.tokenizer.unknown_words(x.replace("{}", " ")) for x in c)
    assert A.candidate_descriptions(small_spurious, sources=lambda task: ["x", "x", "y"]) == ["x", "y"]
    with pytest.raises(ValueError, match="unknown candidate source"):
        A.candidate_descriptions(small_spurious, sources=("web",))


def test_group_accuracy_reuses_task_group_metrics(zs, small_spurious, clip):
    g = A.group_accuracy(zs, small_spurious, clip.preprocess)
    logits = rftlab.evaluation.predict(zs, small_spurious.test, clip.preprocess)
    ref = small_spurious.group_metrics(logits)
    assert g["group_acc"] == ref["group_acc"] and g["worst_group_acc"] == ref["worst_group_acc"]
    assert g["gap"] == pytest.approx(g["avg_acc"] - g["worst_group_acc"])
    # the zero-shot head rebuilt from theta0's own towers is theta0's head: same numbers
    z = A.zeroshot_group_accuracy(zs, small_spurious, clip.tokenizer, clip.preprocess)
    assert z["group_acc"] == g["group_acc"]
    rows = A.group_table({"zero-shot": zs, "again": zs}, small_spurious, clip.preprocess)
    assert len(rows) == 8 and sum(r["worst"] for r in rows) == 2
    assert sum(r["n"] for r in rows if r["model"] == "again") == len(small_spurious.test)


def test_group_metrics_without_groups_and_wrong_class_count(zs, zs_shift, small_shift, small_spurious, clip):
    with pytest.raises(ValueError, match="no group metadata"):
        A.group_accuracy(zs_shift, small_shift, clip.preprocess)
    bare = rftlab.Split("bare", small_shift.test.images, small_shift.test.labels)   # no metadata at all
    with pytest.raises(ValueError, match="no metadata 'group'"):
        A.description_alignment(zs_shift, bare, "on the water", clip.tokenizer, clip.preprocess, by="group")
    with pytest.raises(ValueError, match="no metadata 'style'"):
        A.context_recognition(zs_shift, bare, clip.tokenizer, clip.preprocess, factor="style")
    with pytest.raises(ValueError, match="classes but task"):
        A.group_accuracy(zs_shift, small_spurious, clip.preprocess)  # 4-class head on a 2-class task


def test_precomputed_features_are_checked(zs, small_spurious, clip, tmp_path):
    f = A.image_features(zs, small_spurious.test, clip.preprocess)
    assert torch.allclose(A.image_features(clip, small_spurious.test, clip.preprocess), f)   # a ClipModel works too
    assert A.image_features(zs, small_spurious.test, features=f) is not None
    assert torch.allclose(A.image_features(zs, small_spurious.test, clip.preprocess, cache=tmp_path), f)
    assert torch.allclose(A.image_features(zs, small_spurious.test, clip.preprocess, cache=tmp_path), f)  # read back
    assert len(list(tmp_path.glob("*.pt"))) == 1
    with pytest.raises(ValueError, match="another model"):
        A.description_alignment(zs, small_spurious, "water", clip.tokenizer,
                                features=torch.randn(len(small_spurious.test), 64))
    with pytest.raises(ValueError, match="samples"):
        A.description_alignment(zs, small_spurious, "water", clip.tokenizer, features=torch.randn(5, 128))
    with pytest.raises(ValueError, match="transform"):
        A.description_alignment(zs, small_spurious, "water", clip.tokenizer)
    with pytest.raises(ValueError, match="no split"):
        A.description_alignment(zs, small_spurious, "water", clip.tokenizer, clip.preprocess, split="sketch")


def test_mismatched_models_are_refused(zs, small_spurious, clip):
    other = rftlab.ClipClassifier(zs.clip, torch.zeros(64, 2))  # pretends a 64-dim embedding
    with pytest.raises(ValueError, match="different widths"):
        A.layer_drift(zs, other, small_spurious, clip.preprocess)
    three = rftlab.ClipClassifier(zs.clip, torch.zeros(128, 3))
    with pytest.raises(ValueError, match="heads of shape"):
        A.energy_gap(zs, three, small_spurious, clip.tokenizer, clip.preprocess)


# ---------------------------------------------------------------- context
def test_context_kl_of_theta0_with_itself_is_zero(zs, moved, small_spurious, clip):
    s = A.context_shift(zs, zs, small_spurious, clip.tokenizer, clip.preprocess)
    assert s.p0.shape == (len(small_spurious.test), len(small_spurious.context_templates))
    assert torch.allclose(s.p0.sum(1), torch.ones(len(s.p0)), atol=1e-5)
    assert s.kl.abs().max().item() < 1e-6 and s.stopped_seeing() == []
    m = A.context_shift(zs, moved, small_spurious, clip.tokenizer, clip.preprocess)
    assert m.mean_kl > 0 and (m.kl >= -1e-6).all()
    f0 = A.image_features(zs, small_spurious.test, clip.preprocess)
    f1 = A.image_features(moved, small_spurious.test, clip.preprocess)
    own = zs.clip.logit_scale.exp().item()                      # the default scale: theta0's own
    assert m.mean_kl == pytest.approx(context_kl(f1, f0, m.weights, own).item(), rel=1e-4)
    assert m.mean_kl != pytest.approx(context_kl(f1, f0, m.weights, 100.0).item(), rel=1e-2)
    rows = m.table()
    assert [r["context"] for r in rows] == list(small_spurious.context_templates)
    assert sum(r["top1"] for r in rows) == pytest.approx(1.0)
    assert all(r["ratio"] < 0.5 for r in m.stopped_seeing())


def test_context_recognition_zero_shot(zs, zs_shift, small_spurious, small_shift, clip):
    bg = A.context_recognition(zs, small_spurious, clip.tokenizer, clip.preprocess, factor="background")
    assert bg["accuracy"] > 0.5 and bg["confusion"].sum() == len(small_spurious.test)   # chance is 1/6
    place = A.context_recognition(zs, small_spurious, clip.tokenizer, clip.preprocess, factor="place")
    assert set(place["values"]) == {"land", "water"} and place["accuracy"] > 0.6
    style = A.context_recognition(zs_shift, small_shift, clip.tokenizer, clip.preprocess, factor="style")
    assert style["n"] == len(small_shift.test) + sum(len(s) for s in small_shift.ood.values())
    assert style["accuracy"] > 0.4                                                        # chance is 1/4
    rows = A.context_recognition_table({"zs": zs_shift}, small_shift, clip.tokenizer, clip.preprocess)
    assert [r["factor"] for r in rows] == ["style", "background"]
    assert rows[0]["accuracy"] == pytest.approx(style["accuracy"])


# ---------------------------------------------------------------- calibration
def test_ece_of_a_calibrated_predictor_is_near_zero():
    g = torch.Generator().manual_seed(0)
    logits = 3 * torch.randn(40000, 5, generator=g)
    labels = torch.multinomial(logits.softmax(1), 1, generator=g).squeeze(1)   # labels drawn from the predictor
    rel = A.reliability(logits, labels, n_bins=15)
    assert rel["ece"] < 0.01
    assert sum(b["count"] for b in rel["bins"]) == 40000
    weighted = sum(b["count"] * abs(b["gap"]) for b in rel["bins"] if b["count"]) / 40000
    assert weighted == pytest.approx(rel["ece"], abs=1e-5)            # bins agree with metrics.ece
    over = A.reliability(3 * logits, labels, n_bins=15)                # sharpened: overconfident
    assert over["ece"] > 0.05


def test_temperature_scaling_recovers_a_known_temperature():
    g = torch.Generator().manual_seed(1)
    z = 4 * torch.randn(20000, 4, generator=g)
    labels = torch.multinomial((z / 2.5).softmax(1), 1, generator=g).squeeze(1)
    t = A.fit_temperature(z, labels)
    assert t == pytest.approx(2.5, rel=0.05)
    assert A.reliability(A.apply_temperature(z, t), labels)["ece"] < A.reliability(z, labels)["ece"]
    with pytest.raises(ValueError, match="positive"):
        A.apply_temperature(z, 0.0)


@pytest.mark.filterwarnings("ignore:.*rank-deficient")
def test_calibration_report_and_temperature_copy(zs_shift, small_shift, clip):
    rep = A.calibration_report(zs_shift, small_shift, clip.preprocess)
    ref = rftlab.evaluate(zs_shift, small_shift, clip.preprocess)
    assert rep["ece"] == pytest.approx(ref["ece"]) and rep["ood_ece"] == pytest.approx(ref["ood_ece"])
    assert rep["mean_ood_error"] == pytest.approx(1 - ref["mean_ood_acc"]) and rep["temperature"] == 1.0
    hot = A.with_temperature(zs_shift, 2.0)
    assert float(hot.scale) == pytest.approx(float(zs_shift.scale) / 2)
    rep2 = A.calibration_report(zs_shift, small_shift, clip.preprocess, temperature=2.0)
    assert rep2["ece"] == pytest.approx(rftlab.evaluate(hot, small_shift, clip.preprocess)["ece"], abs=1e-6)
    fit = A.calibration_report(zs_shift, small_shift, clip.preprocess, temperature="fit")
    assert fit["temperature"] > 0 and fit["id_acc"] == pytest.approx(ref["id_acc"])
    rows = A.calibration_vs_ood({"zero-shot": rep, "hot": rep2})
    assert rows[0]["id_ece"] == rep["ece"] and rows[1]["mean_ood_error"] == pytest.approx(rep["mean_ood_error"])
    compare_row = {"method": "ft", "ece": {"mean": 0.1}, "mean_ood_acc": {"mean": 0.6}, "ood_ece/sketch": {"mean": 0.3}}
    r = A.calibration_vs_ood([compare_row])[0]
    assert r["mean_ood_error"] == pytest.approx(0.4) and r["mean_ood_ece"] == 0.3


def test_confidence_histogram_and_sigma_min():
    g = torch.Generator().manual_seed(2)
    rows = A.confidence_histogram({"id": torch.randn(100, 3, generator=g), "ood": torch.randn(50, 3, generator=g)},
                                  {"id": torch.zeros(100, dtype=torch.long), "ood": torch.ones(50, dtype=torch.long)},
                                  n_bins=10)
    assert len(rows) == 20 and sum(r["count"] for r in rows if r["split"] == "ood") == 50
    assert sum(r["fraction"] for r in rows if r["split"] == "id") == pytest.approx(1.0)
    x = torch.randn(20000, 3, generator=g) * torch.tensor([1.0, 2.0, 3.0]) + 7.0
    assert A.covariance_sigma_min(x) == pytest.approx(1.0, rel=0.05)
    spec = A.covariance_spectrum(x)
    assert spec.tolist() == pytest.approx([9.0, 4.0, 1.0], rel=0.05)
    with pytest.warns(UserWarning, match="rank-deficient"):
        assert A.covariance_sigma_min(torch.randn(5, 8, generator=g)) < 1e-8


# ---------------------------------------------------------------- embedding
def test_pca_projector_transform_of_fit_data_equals_fit_output():
    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(40, 16, generator=g), torch.randn(30, 16, generator=g) + 1
    p = A.Projector("pca")
    ca, cb = p.fit_transform([a, b])
    assert ca.shape == (40, 2) and cb.shape == (30, 2) and p.method_used == "pca"
    assert torch.allclose(p.transform(a), ca, atol=1e-5) and torch.allclose(p.transform(b), cb, atol=1e-5)
    again = A.Projector("pca").fit_transform(torch.cat([a, b]))
    assert torch.allclose(again, torch.cat([ca, cb]), atol=1e-5)       # deterministic signs
    assert 0 < p.explained_variance_ratio.sum() <= 1
    with pytest.raises(ValueError, match="not fitted"):
        A.Projector().transform(a)
    with pytest.raises(ValueError, match=r"\(N, 16\)"):
        p.transform(torch.randn(3, 8))


def test_umap_with_too_few_samples_falls_back_to_pca():
    x = torch.randn(10, 8, generator=torch.Generator().manual_seed(4))
    with pytest.warns(UserWarning, match="fell back to PCA"):
        p = A.Projector("umap").fit(x)
    assert p.method_used == "pca"
    with pytest.raises(ValueError, match="choose 'pca' or 'umap'"):
        A.Projector("tsne")


def test_embedding_drift_points(zs, moved, small_spurious, clip):
    e = A.embedding_drift(zs, moved, small_spurious, clip.preprocess)
    n = len(small_spurious.test)
    assert len(e.points) == 2 * n and {p["model"] for p in e.points} == {"theta0", "theta"}
    assert {p["group"] for p in e.points} == set(small_spurious.group_names)
    f1 = A.image_features(moved, small_spurious.test, clip.preprocess)
    assert torch.allclose(e.projector.transform(f1), e.coords, atol=1e-5)   # slider path: no refit
    same = A.embedding_drift(zs, moved, small_spurious, clip.preprocess, projector=e.projector)
    assert torch.allclose(same.coords0, e.coords0, atol=1e-5)


def test_subsample_keeps_every_group(small_spurious):
    small = A.subsample(small_spurious, 16)
    assert len(small.test) == 16 and len(small.train) == 16
    counts = torch.bincount(small.test.meta["group"], minlength=4)
    assert counts.tolist() == [4, 4, 4, 4]
    assert A.subsample(small_spurious.test, 10_000) is small_spurious.test
    pooled = A.concat_splits([small.test, small.val])
    assert len(pooled) == 32 and set(pooled.meta) == set(small.test.meta)
