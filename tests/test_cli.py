"""The command line: output contract and errors."""
import json

import pytest
from PIL import Image

from rftlab.cli import main


@pytest.mark.parametrize("task", ["spurious", "shift"])
def test_zeroshot_json_contract(task, capsys):
    assert main(["zeroshot", "--task", task, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    m = out["metrics"]
    for key in ("id_acc", "ood_acc", "mean_ood_acc", "avg_acc", "worst_group_acc", "ece"):
        assert key in m
    accs = [m["id_acc"], m["avg_acc"], *m["ood_acc"].values()]
    assert all(0.0 <= a <= 1.0 for a in accs)
    if task == "shift":
        assert set(m["ood_acc"]) == {"sketch", "cartoon", "painting"} and m["worst_group_acc"] is None
    else:
        assert m["ood_acc"] == {} and 0.0 <= m["worst_group_acc"] <= 1.0


def test_world_grid(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["world", "--out", str(out)]) == 0
    img = Image.open(out)
    assert img.width > 500 and img.height > 300


def test_errors_are_one_clear_line(capsys):
    assert main(["zeroshot", "--task", "imagenet-ish"]) == 2
    err = capsys.readouterr().err
    assert "unknown task 'imagenet-ish'" in err and "spurious, shift" in err


TINY_FLAGS = ["--task", "spurious", "--task-arg", "n_train=64", "--task-arg", "n_val=32", "--task-arg", "n_test=32",
              "--steps", "3", "--batch-size", "16", "--eval-every", "0"]
CONTRACT = ("id_acc", "ood_acc", "mean_ood_acc", "avg_acc", "worst_group_acc", "group_acc", "weighted_acc",
            "ece", "ood_ece", "nll")


def test_finetune_readme_flags_still_work(capsys):
    assert main(["finetune", *TINY_FLAGS, "--method", "wise-ft", "--alpha", "0.5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == "wise-ft" and out["hparams"] == {"alpha": 0.5} and out["steps"] == 3
    assert set(CONTRACT) <= set(out["metrics"]) and 0.0 <= out["metrics"]["id_acc"] <= 1.0


def test_finetune_run_folder_from_a_config_file(tmp_path, capsys):
    cfg = tmp_path / "run.yaml"
    cfg.write_text("method: wise-ft\nhparams: {alpha: 0.25}\ntask: spurious\n"
                   "task_args: {n_train: 64, n_val: 32, n_test: 32}\nsteps: 5\nbatch_size: 16\nlr: 1e-4\n")
    out = tmp_path / "runs" / "a"
    assert main(["finetune", "--config", str(cfg), "--steps", "3", "--hp", "alpha=0.75", "--eval-every", "0",
                 "--out", str(out)]) == 0
    assert "wise-ft" in capsys.readouterr().out                             # the metrics table
    saved = json.loads((out / "config.json").read_text())
    assert saved["steps"] == 3 and saved["hparams"] == {"alpha": 0.75}      # flags win over the file
    assert saved["lr"] == 1e-4 and saved["batch_size"] == 16 and saved["task_args"]["n_train"] == 64
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "complete" and metrics["steps"] == 3 and set(CONTRACT) <= set(metrics["metrics"])
    history = json.loads((out / "history.json").read_text())
    assert [h["step"] for h in history] == [1, 2, 3] and all("loss" in h for h in history)
    for name in ("checkpoints/last.pt", "model.pt", "loss_curves.html", "plotly.min.js"):
        assert (out / name).exists(), name

    assert main(["wise-curve", str(out), "--alphas", "0,1", "--json"]) == 0
    curve = json.loads(capsys.readouterr().out)
    assert [r["alpha"] for r in curve["rows"]] == [0.0, 1.0] and (out / "wise_curve.html").exists()
    assert json.loads((out / "wise_curve.json").read_text()) == curve

    # a second start into the same folder is refused; --resume of a finished run trains nothing
    assert main(["finetune", *TINY_FLAGS, "--out", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["finetune", "--resume", str(out), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["metrics"] == metrics["metrics"]
    assert main(["finetune", "--resume", str(out), "--lr", "0.1"]) == 2
    assert "--resume continues a run with its saved config: drop --lr" in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--config", "{tmp}/bad.json"], "unknown config key(s) ['epochz']; valid keys: method, hparams, model"),
    (["--resume", "{tmp}/missing"], "run folder {tmp}/missing does not exist"),
    (["--method", "wise-ft", "--hp", "alpha=1.5", *TINY_FLAGS], "alpha=1.5 is out of range [0.0, 1.0]"),
    (["--method", "ft", "--alpha", "0.5", *TINY_FLAGS], "ft has no hyperparameter(s) ['alpha']"),
    (["--steps", "3"], "no task: give one with --task"),
    ([*TINY_FLAGS, "--task-arg", "colour=1"], "task 'spurious' does not take these arguments"),
])
def test_finetune_errors(tmp_path, capsys, args, message):
    (tmp_path / "bad.json").write_text('{"task": "spurious", "epochz": 3}')
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["finetune", *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("rftlab finetune: error: ") and message.replace("{tmp}", str(tmp_path)) in err


def test_zeroshot_through_the_feature_cache(tmp_path, capsys):
    args = ["zeroshot", "--task", "spurious", "--task-arg", "n_test=32", "--cache", str(tmp_path), "--json"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert len(list(tmp_path.glob("*.pt"))) == 1
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out) == first and len(list(tmp_path.glob("*.pt"))) == 1


def test_phenomena_writes_the_table(tmp_path, capsys, monkeypatch):
    import rftlab.phenomena as P
    full = P.measure
    small = {"n_train": 48, "n_val": 16, "n_test": 24}

    def tiny(clip, seeds=(0, 1, 2), **_):   # the command's own path, on tiny tasks and 2 steps
        return full(clip, seeds=seeds, settings={"steps": 2, "batch_size": 16},
                    task_args={"shift": small, "spurious": small, "broad": small}, log=print)
    monkeypatch.setattr(P, "measure", tiny)
    js, md = tmp_path / "phenomena.json", tmp_path / "phenomena.md"
    assert main(["phenomena", "--seeds", "1", "--json", str(js), "--md", str(md)]) == 0
    out = capsys.readouterr().out
    result = json.loads(js.read_text())
    assert [r["key"] for r in result["rows"]] == [f"F{i}" for i in range(1, 11)]
    assert result["command"].startswith("rftlab phenomena") and f"{result['passed']} of 10 pass" in out
    text = md.read_text()
    assert "the shipped world CLIP" in text and all(f"| F{i} |" in text for i in range(1, 11))
