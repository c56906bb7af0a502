"""rftlab sweep: val selects, test only scores the selection; every method gets the same budget."""
import json

import pytest

import rftlab
import rftlab.tuning
from rftlab.methods import METHODS

FAST = dict(steps=2, batch_size=8)


@pytest.fixture(scope="module")
def tiny():
    return rftlab.make_task("tiny", ("circle", "square", "star"), 0.9, n_train=48, n_val=24, n_test=24, seed=2)


@pytest.fixture(scope="module")
def everything(clip, tiny):
    return rftlab.sweep(clip, tiny, budget=3, seeds=(0, 1), log=lambda m: None, **FAST)


def test_every_method_gets_the_same_budget_and_the_rows_hold_the_schema(everything):
    rows = {r["method"]: r for r in everything["rows"]}
    assert list(rows) == list(METHODS) and everything["budget"] == 3 and everything["select"] == "val_worst_group_acc"
    for name, r in rows.items():
        if name != "zeroshot":   # zero-shot trains nothing
            # runs the selection asked for, shared ones included (Model Stock: theta0 and 2 FT runs per configuration)
            assert r["selection_runs"] == (9 if name == "model-stock" else 3), name
        assert set(r) >= {"configurations", "selected", "test", "seeds", "seconds", "select", "new_runs"}
        assert r["selected"]["score"] == max(c["score"] for c in r["configurations"])
        assert r["selected"]["hparams"] in [c["hparams"] for c in r["configurations"]]
        assert all(set(r["test"][k]) == {"mean", "std"} for k in ("id_acc", "worst_group_acc", "ece"))
    assert len(rows["wise-ft"]["configurations"]) == 3 * 11   # alpha 0, 0.1, ..., 1 over each run, for free
    assert len(rows["lipsum-ft"]["configurations"]) == 3 and {c["hparams"]["lam"] for c in
                                                              rows["lipsum-ft"]["configurations"]} == {0.3, 1.0, 3.0}
    assert len({c["lr"] for c in rows["ft"]["configurations"]}) == 3   # no key hyperparameter: a finer lr grid
    assert rows["soup-greedy"]["new_runs"] == 0    # its ingredients are the FT sweep's runs
    assert rows["ft"]["new_runs"] == 3 + 1         # the 3 configurations and seed 1 (seed 0 is reused)
    json.loads(json.dumps(everything))             # the whole result is JSON


def test_test_metrics_never_choose(clip, tiny, monkeypatch):
    """Test metrics that favour the opposite end of the grid change nothing; evaluate() (test)
    runs only for the selected configuration's seeds."""
    real = rftlab.tuning.evaluate
    chosen, calls = [], []
    for sign in (1, -1):
        def fake(classifier, task, transform, **kw):
            calls.append(sign)
            out = real(classifier, task, transform, **kw)
            lr = sum(p.detach().abs().sum().item() for p in classifier.clip.visual.parameters())
            return {**out, "id_acc": sign * lr, "worst_group_acc": sign * lr}
        monkeypatch.setattr(rftlab.tuning, "evaluate", fake)
        out = rftlab.sweep(clip, tiny, ["ft", "l2-sp"], budget=3, seeds=(0, 1), log=lambda m: None, **FAST)
        chosen.append([(r["selected"]["hparams"], r["selected"]["lr"]) for r in out["rows"]])
        for r in out["rows"]:
            best = max(r["configurations"], key=lambda c: c["score"])
            assert (best["hparams"], best["lr"]) == (r["selected"]["hparams"], r["selected"]["lr"])
    assert chosen[0] == chosen[1]
    assert len(calls) == 2 * 2 * 2   # two sweeps x two methods x two seeds: never while selecting


def test_budgets_and_select_are_checked(clip, tiny, small_shift):
    with pytest.raises(ValueError, match="budget 4 is not a multiple of"):
        rftlab.sweep(clip, tiny, ["ft", "lipsum-ft"], budget=4, log=lambda m: None)
    with pytest.raises(ValueError, match="has no groups"):
        rftlab.sweep(clip, small_shift, ["ft"], select="val_worst_group_acc", log=lambda m: None)
    with pytest.raises(ValueError, match="test data never selects"):
        rftlab.sweep(clip, tiny, ["ft"], select="test_acc", log=lambda m: None)
    assert rftlab.tuning.selection_metric(small_shift) == "val_acc"


def test_sweep_cli_prints_the_budget_and_writes_json(tmp_path, capsys, monkeypatch, tiny):
    from rftlab.cli import main
    monkeypatch.setattr("rftlab.run_config.open_task", lambda name, root=None, task_args=None: tiny)
    out = tmp_path / "sweep.json"
    assert main(["sweep", "--task", "tiny", "--methods", "zeroshot,lp,lp-ft", "--budget", "3", "--seeds", "2",
                 "--steps", "2", "--batch-size", "8", "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "budget: 3 configurations per method" in printed and "lp: 3 configurations" in printed
    data = json.loads(out.read_text())
    assert [r["method"] for r in data["rows"]] == ["zeroshot", "lp", "lp-ft"] and data["seeds"] == [0, 1]
    assert {c["hparams"]["weight_decay"] for c in data["rows"][1]["configurations"]} == {1e-1, 10 ** -3.5, 1e-6}
