"""rftlab compare: rows of mean and spread over seeds, table and JSON."""
import json

import pytest
import torch

import rftlab
from rftlab.compare import compare, markdown_table


def test_compare_rows_have_mean_and_std(clip, small_shift):
    rows = compare(clip, small_shift, ["zeroshot", "lp"], seeds=(0, 1), log=lambda m: None)
    assert [r["method"] for r in rows] == ["zeroshot", "lp"]
    for r in rows:
        for key in ("id_acc", "mean_ood_acc", "avg_acc", "ece", "nll", "ood_acc/sketch"):
            assert set(r[key]) == {"mean", "std"} and r[key]["std"] >= 0
        for key in ("id_acc", "mean_ood_acc", "avg_acc", "ece", "ood_acc/sketch"):   # rates
            assert 0 <= r[key]["mean"] <= 1, (r["method"], key)
        assert r["nll"]["mean"] > 0
    assert rows[0]["id_acc"]["std"] == 0.0  # zero-shot does not depend on the seed
    table = markdown_table(rows)
    assert table.count("\n") == 3 and "| lp |" in table


def test_compare_cli_writes_json(tmp_path, capsys, monkeypatch):
    from rftlab.cli import main
    small = rftlab.make_task("spurious", ("square", "cross"), 0.95, n_train=64, n_val=32, n_test=32)
    monkeypatch.setattr("rftlab.tasks.load_task", lambda name, **kw: small)
    out = tmp_path / "rows.json"
    assert main(["compare", "--task", "spurious", "--methods", "zeroshot", "--seeds", "1", "--json", str(out)]) == 0
    rows = json.loads(out.read_text())
    assert rows[0]["method"] == "zeroshot" and "worst_group_acc" in rows[0]
    assert "zeroshot" in capsys.readouterr().out


def test_compare_rejects_unknown_methods(clip, small_shift):
    with pytest.raises(ValueError, match="registered methods"):
        compare(clip, small_shift, ["ft", "magic"], seeds=(0,))


def test_soups_share_ingredient_runs_inside_compare(clip, small_spurious, monkeypatch):
    import rftlab.train
    from rftlab.train import reuse_runs
    calls = []
    fit = rftlab.train.Trainer.fit

    def counting(self, *a, **kw):
        calls.append(self.method.name)
        return fit(self, *a, **kw)

    monkeypatch.setattr(rftlab.train.Trainer, "fit", counting)
    cfg = rftlab.TrainConfig(steps=2, batch_size=16, eval_every=0, progress=False)
    alone = rftlab.finetune("soup-uniform", clip, small_spurious, cfg, ingredients=2)
    calls.clear()
    with reuse_runs() as kept:
        uniform = rftlab.finetune("soup-uniform", clip, small_spurious, cfg, ingredients=2)
        rftlab.finetune("soup-greedy", clip, small_spurious, cfg, ingredients=2)
    assert calls == ["ft", "ft"] and (kept.trained, kept.reused) == (2, 2)  # the greedy soup trained nothing
    for k, v in alone.classifier.state_dict().items():
        assert torch.equal(v, uniform.classifier.state_dict()[k]), k  # sharing changes no result
