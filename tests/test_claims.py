"""rftlab claims: the verdict rule, the claim table's consistency, and a tiny end-to-end run."""
import json

import pytest

from rftlab import claims as C


def test_the_rule_decides_on_paired_differences():
    up = C.verdict([0.8, 0.82, 0.81], [0.7, 0.71, 0.69])
    assert up["verdict"] == C.REPRODUCES and up["diff"] == pytest.approx(0.11) and up["n"] == 3
    assert C.verdict([0.7, 0.71, 0.69], [0.8, 0.82, 0.81])["verdict"] == C.OPPOSITE
    # a large mean difference with a noisy sign is not enough
    assert C.verdict([0.9, 0.6, 0.9], [0.7, 0.8, 0.7])["verdict"] == C.INCONCLUSIVE
    # pairing: a shared per-seed shift cancels, so a small but steady gain decides
    assert C.verdict([0.51, 0.71, 0.91], [0.50, 0.70, 0.90])["verdict"] == C.REPRODUCES
    # lower is better (ECE): the sign flips
    assert C.verdict([0.02, 0.03, 0.02], [0.10, 0.12, 0.11], higher_is_better=False)["verdict"] == C.REPRODUCES
    assert C.verdict([0.5], [0.5])["verdict"] == C.INCONCLUSIVE
    with pytest.raises(ValueError, match="same seeds"):
        C.verdict([0.1, 0.2], [0.1])


def test_close_calls_get_more_seeds():
    assert C.close_call([0.60, 0.70, 0.65], [0.62, 0.66, 0.64])       # within 3 standard errors
    assert not C.close_call([0.8, 0.82, 0.81], [0.7, 0.71, 0.69])
    assert not C.close_call([0.5, 0.5], [0.5, 0.5])                   # deterministic: nothing to gain


def test_every_claim_names_runs_of_its_protocol():
    for claim in C.CLAIMS:
        labels = [claim.method, *(claim.baseline if isinstance(claim.baseline, tuple) else (claim.baseline,))]
        if claim.ablation:
            labels.append(claim.ablation)
            assert claim.ablation_what, claim   # the report says what the ablation switched off
        for label in labels:
            assert label in C.RUNS, label
            assert C.RUNS[label].protocol == claim.protocol, (claim.claim, label)
        assert claim.protocol in C.PROTOCOLS
    # each paper the spec lists has at least one claim, and every method paper is compared with FT or FLYP
    papers = {c.paper.split(" (")[0] for c in C.CLAIMS}
    assert {"Lipsum-FT", "CAR-FT", "CaRot", "StarFT", "WiSE-FT", "FLYP", "LP-FT", "Model soups", "L2-SP"} <= papers
    for paper, base in (("Lipsum-FT", "ft"), ("CAR-FT", "ft"), ("CaRot", "flyp"), ("StarFT", "flyp on broad")):
        assert any(c.paper.startswith(paper) and c.baseline == base for c in C.CLAIMS), paper
    # ablations switch off what the paper credits and are never tuned on their own
    for run in C.RUNS.values():
        if run.fixed and run.label != "ft (random head)":
            assert not run.tune and run.method != "zeroshot"


def _fake_result(verdict="inconclusive"):
    row = {"paper": "P (x)", "claim": "beats FT", "metric": "mean_ood_acc", "method": "m", "baseline": "ft",
           "protocol": "shift", "paper_protocol": "ImageNet", "world_protocol": "world", "higher_is_better": True,
           "method_value": {"mean": 0.7, "std": 0.01}, "baseline_value": {"mean": 0.69, "std": 0.02},
           "seeds": [0, 1, 2], "verdict": verdict, "diff": 0.01, "se": 0.01, "n": 3,
           "reason": "switching it off changes nothing", "defaults": {"verdict": "reproduces", "diff": 0.03, "se": 0.01}}
    return {"generated_by": "rftlab claims", "rule": C.RULE, "quick": False, "budget": 6, "select": "val_acc",
            "protocols": C.PROTOCOLS, "tuned": {"m": {"lr": 1e-4, "hparams": {"lam": 1.0}, "val": 0.7},
                                               "soup": {"lr": None, "hparams": {}, "val": None}},   # untuned
            "seconds": 60, "rows": [row]}


def test_the_report_shows_each_verdict_its_reason_and_the_defaults(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "TUNED_FILE", tmp_path / "tuned.json")
    paths = C.write_report(_fake_result(), tmp_path / "docs")
    md = (tmp_path / "docs" / "claims.md").read_text()
    assert "**inconclusive**" in md and "switching it off changes nothing" in md and "reproduces (+0.030" in md
    assert "lam=1.0" in md and C.RULE in md and "| soup | - | - | - (not tuned) |" in md
    assert json.loads((tmp_path / "docs" / "claims.json").read_text())["rows"][0]["verdict"] == "inconclusive"
    assert json.loads(C.TUNED_FILE.read_text())["tuned"]["m"]["lr"] == 1e-4 and C.TUNED_FILE in paths
    assert "Why a claim does not reproduce" not in C.markdown(_fake_result("reproduces"))


def test_quick_needs_the_recorded_tuned_values(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "TUNED_FILE", tmp_path / "missing.json")
    with pytest.raises(FileNotFoundError, match="run `rftlab claims` once without --quick"):
        C.run_claims(quick=True, log=lambda m: None)


def test_a_tiny_claims_run_end_to_end(monkeypatch, tmp_path):
    """Two claims of the shift protocol, 1-step runs: rows in the documented JSON shape, an
    ablation run with a reason for a claim that does not reproduce, and tuned values from val."""
    claims = [c for c in C.CLAIMS if c.paper.startswith("Lipsum-FT")][:1] + \
             [c for c in C.CLAIMS if c.paper.startswith("CaRot") and "worsens" in c.claim][:1]
    labels = {"zeroshot", "zeroshot (calibrated)", "ft", "lipsum-ft", "lipsum-ft (lambda=0)"}
    monkeypatch.setattr(C, "CLAIMS", claims)
    monkeypatch.setattr(C, "RUNS", {k: v for k, v in C.RUNS.items() if k in labels})
    small = __import__("rftlab").make_task("shift-tiny", ("circle", "square", "star"), None, ("photo",),
                                           ("sketch",), n_train=64, n_val=32, n_test=32, seed=1)
    monkeypatch.setattr(C, "protocol_tasks", lambda name: (small, small))
    res = C.run_claims(budget=3, log=lambda m: None, workers=1, steps=1, batch_size=16)   # patched: in-process
    assert set(res["tuned"]) == {"ft", "lipsum-ft"} and res["tuned"]["lipsum-ft"]["hparams"]["lam"] in (0.3, 1.0, 3.0)
    for row in res["rows"]:
        for key in ("paper", "claim", "metric", "method", "baseline", "protocol", "method_value", "baseline_value",
                    "seeds", "verdict"):
            assert key in row
        assert set(row["method_value"]) == {"mean", "std"} and len(row["seeds"]) in (3, 5)
        assert row["defaults"]["verdict"] in (C.REPRODUCES, C.OPPOSITE, C.INCONCLUSIVE)
        if row["verdict"] != C.REPRODUCES:
            assert row["reason"] and row["ablation"]["run"] in labels
    json.dumps(res)  # the whole result is JSON
    # --quick: the recorded selections, 2 seeds, no ablation runs; a negative verdict quotes the full run's reason
    monkeypatch.setattr(C, "TUNED_FILE", tmp_path / "tuned.json")
    C.write_report(res, tmp_path / "docs")
    full = {C.claim_key(c): r.get("reason") for c, r in zip(claims, res["rows"])}
    quick = C.run_claims(quick=True, log=lambda m: None, workers=1, steps=1, batch_size=16)
    assert quick["tuned"] == res["tuned"] and quick["budget"] is None
    for claim, row in zip(claims, quick["rows"]):
        assert len(row["seeds"]) == 2 and "ablation" not in row and "defaults" not in row
        if row["verdict"] != C.REPRODUCES:
            assert row["reason"].startswith("not measured by --quick")
            assert full[C.claim_key(claim)] is None or full[C.claim_key(claim)] in row["reason"]


def test_a_selection_that_switches_the_component_off_is_named_as_the_reason():
    wise = next(c for c in C.CLAIMS if c.method == "wise-ft" and c.ablation)
    off = C.selected_off(wise, {"wise-ft": {"lr": 1e-4, "hparams": {"alpha": 1.0}}})
    assert off is not None and "alpha = 1" in off and "its own ablation" in off
    assert C.selected_off(wise, {"wise-ft": {"lr": 1e-4, "hparams": {"alpha": 0.5}}}) is None
    lipsum = next(c for c in C.CLAIMS if c.method == "lipsum-ft" and c.ablation)
    assert C.selected_off(lipsum, {"lipsum-ft": {"lr": 1e-4, "hparams": {"lam": 0.3}}}) is None
