"""Run folders: config resolution, exact resume, never clobbering, WiSE-FT curves."""
import json

import pytest
import torch

from rftlab.cache import FeatureCache
from rftlab.plots import plot_training
from rftlab.run_config import parse_assignment, read_config_file, resolve_config, valid_keys
from rftlab.run_folder import finetune_run, resume_run, wise_curve_of_run

TINY = {"task": "spurious", "task_args": {"n_train": 64, "n_val": 32, "n_test": 32},
        "steps": 4, "batch_size": 16, "eval_every": 2, "checkpoint_every": 2}


def quiet(_):
    pass


def test_resolve_fills_defaults_and_coerces(tmp_path):
    r = resolve_config({**TINY, "method": "lipsum-ft", "hparams": {"lam": "0.5"}, "lr": "1e-4",
                        "pretrained": "./w.pt"})
    assert r["hparams"] == {"lam": 0.5, "m": 80, "length": 8}           # defaults from the registry
    assert r["lr"] == 1e-4 and isinstance(r["lr"], float)              # YAML reads 1e-4 as a string
    assert r["model"] == "rftlab-world" and r["select"] == "last" and r["cache"] is None
    assert r["pretrained"].startswith("/")                              # paths are stored absolute
    assert set(r) == set(valid_keys())
    assert resolve_config(json.loads(json.dumps(r))) == r                # config.json reads back as itself


@pytest.mark.parametrize("change, message", [
    ({"optimiser": "sgd"}, "unknown config key(s) ['optimiser']; valid keys: method, hparams"),
    ({"task": None}, "no task: give one with --task"),
    ({"method": "magic"}, "unknown method 'magic'; registered methods: zeroshot, lp"),
    ({"method": "wise-ft", "hparams": {"alpha": 2}}, "alpha=2.0 is out of range [0.0, 1.0]"),
    ({"method": "wise-ft", "hparams": {"beta": 1}}, "wise-ft has no hyperparameter(s) ['beta']; it takes: alpha"),
    ({"method": "lipsum-ft", "hparams": {"m": 2.5}}, "lipsum-ft hyperparameter m takes an integer; got 2.5"),
    ({"lr": "fast"}, "training setting lr takes a number; got 'fast'"),
    ({"steps": -1}, "TrainConfig.steps=-1 is out of range"),
    ({"hparams": [1, 2]}, "config key 'hparams' must be a mapping"),
])
def test_bad_configs_say_what_is_wrong(change, message):
    with pytest.raises(ValueError) as err:
        resolve_config({**TINY, **change})
    assert message in str(err.value)


def test_config_files_and_assignments(tmp_path):
    (tmp_path / "a.yaml").write_text("method: wise-ft\nhparams: {alpha: 0.3}\nlr: 1e-5\n")
    assert read_config_file(tmp_path / "a.yaml") == {"method": "wise-ft", "hparams": {"alpha": 0.3}, "lr": "1e-5"}
    (tmp_path / "a.json").write_text('{"steps": 3}')
    assert read_config_file(tmp_path / "a.json") == {"steps": 3}
    (tmp_path / "list.json").write_text("[1]")
    with pytest.raises(ValueError, match="must hold a mapping"):
        read_config_file(tmp_path / "list.json")
    (tmp_path / "a.toml").write_text("")
    with pytest.raises(ValueError, match="name it .json, .yaml or .yml"):
        read_config_file(tmp_path / "a.toml")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_config_file(tmp_path / "missing.yaml")
    assert parse_assignment("alpha=0.5") == ("alpha", 0.5)
    assert parse_assignment("device=cuda:0") == ("device", "cuda:0")
    with pytest.raises(ValueError, match="expected NAME=VALUE"):
        parse_assignment("alpha")


def test_resume_equals_an_uninterrupted_run(tmp_path):
    full = finetune_run(TINY, tmp_path / "full", progress=False, log=quiet)

    def stop(event, info):
        if event == "eval" and info["step"] == 2:
            raise KeyboardInterrupt

    with pytest.warns(UserWarning, match="interrupted at step 2"):
        cut = finetune_run(TINY, tmp_path / "cut", callbacks=[stop], progress=False, log=quiet)
    assert cut["status"] == "interrupted" and cut["steps"] == 2
    assert not (tmp_path / "cut" / "metrics.json").exists()
    assert len(json.loads((tmp_path / "cut" / "history.json").read_text())) == 3   # 2 steps + 1 validation

    done = resume_run(tmp_path / "cut", progress=False, log=quiet)
    assert done["status"] == "complete" and done["steps"] == 4
    hist = [json.loads((tmp_path / r / "history.json").read_text()) for r in ("full", "cut")]
    assert hist[0] == hist[1] and len(hist[0]) == 6
    models = [torch.load(tmp_path / r / "model.pt", weights_only=True)["classifier"] for r in ("full", "cut")]
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0])
    assert done["metrics"] == full["metrics"]
    # resuming a complete run trains nothing and returns its record
    assert resume_run(tmp_path / "cut", log=quiet)["metrics"] == done["metrics"]


def test_a_soup_run_resumes_each_of_its_runs(tmp_path):
    config = {**TINY, "method": "soup-greedy", "hparams": {"ingredients": 2}}
    full = finetune_run(config, tmp_path / "full", progress=False, log=quiet)
    starts = []

    def stop(event, info):   # Ctrl-C in the middle of the second ingredient
        starts.append(event == "start")
        if event == "eval" and sum(starts) == 2 and info["step"] == 2:
            raise KeyboardInterrupt

    with pytest.warns(UserWarning, match="interrupted at step 2"):
        cut = finetune_run(config, tmp_path / "cut", callbacks=[stop], progress=False, log=quiet)
    assert cut["status"] == "interrupted"
    ckpts = tmp_path / "cut" / "checkpoints"
    assert [torch.load(ckpts / f"ingredient-{i}" / "last.pt", weights_only=False)["step"] for i in (0, 1)] == [4, 2]
    done = resume_run(tmp_path / "cut", progress=False, log=quiet)
    assert done["status"] == "complete" and done["metrics"] == full["metrics"]
    models = [torch.load(tmp_path / r / "model.pt", weights_only=False)["classifier"] for r in ("full", "cut")]
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0])


def test_a_run_is_never_clobbered(tmp_path):
    out = tmp_path / "run"
    finetune_run({**TINY, "method": "zeroshot"}, out, progress=False, log=quiet)
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="already holds a run.*--resume.*--overwrite"):
        finetune_run({**TINY, "method": "zeroshot"}, out, log=quiet)
    finetune_run({**TINY, "method": "zeroshot", "seed": 1}, out, overwrite=True, progress=False, log=quiet)
    assert json.loads((out / "config.json").read_text())["seed"] == 1
    assert (out / "notes.txt").read_text() == "mine"                    # only run files are replaced
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resume_run(tmp_path / "nowhere", log=quiet)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no run"):
        resume_run(tmp_path / "empty", log=quiet)
    with pytest.raises(FileNotFoundError, match="holds no run"):
        wise_curve_of_run(tmp_path / "empty", log=quiet)


def test_wise_curve_of_a_wise_ft_run(tmp_path):
    from rftlab.classifier import ClipClassifier
    from rftlab.evaluation import evaluate
    from rftlab.run_config import load_parts
    rec = finetune_run({**TINY, "method": "wise-ft", "hparams": {"alpha": 0.5}}, tmp_path, progress=False, log=quiet)
    saved = torch.load(tmp_path / "model.pt", weights_only=True)
    assert saved["endpoint"] is not None     # the fine-tuned weights, before WiSE-FT's interpolation
    curve = wise_curve_of_run(tmp_path, alphas=(0, 0.5, 1), log=quiet)
    assert [r["alpha"] for r in curve["rows"]] == [0.0, 0.5, 1.0]
    assert curve["rows"][1] == {"alpha": 0.5, **rec["metrics"]}         # the run's own alpha
    clip, task = load_parts(resolve_config(TINY))
    zs = ClipClassifier.zeroshot(clip, task.classnames, task.templates)
    assert curve["rows"][0] == {"alpha": 0.0, **evaluate(zs, task, clip.preprocess)}
    assert json.loads((tmp_path / "wise_curve.json").read_text())["rows"] == curve["rows"]
    assert (tmp_path / "wise_curve.html").exists() and (tmp_path / "loss_curves.html").exists()
    with pytest.raises(ValueError, match=r"alphas must be numbers in \[0, 1\]"):
        wise_curve_of_run(tmp_path, alphas=(0, 1.5), log=quiet)
    saved["start_weights"] = "0" * 64            # as if the weights file had been replaced since
    torch.save(saved, tmp_path / "model.pt")
    with pytest.raises(ValueError, match="no longer loads the weights the run .* started from"):
        wise_curve_of_run(tmp_path, log=quiet)


def test_lp_run_shares_features_through_the_cache(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    rec = finetune_run({**TINY, "method": "lp", "hparams": {"iters": 5}, "cache": str(cache.root)},
                       tmp_path / "run", progress=False, log=quiet)
    assert rec["status"] == "complete" and (tmp_path / "run" / "checkpoints" / "last.pt").exists()
    files = sorted(cache.root.glob("*.pt"))
    assert len(files) == 3                       # train and val (for the probe and its L2 choice), test (metrics)
    curve = wise_curve_of_run(tmp_path / "run", alphas=(0, 0.5, 1), log=quiet)
    assert sorted(cache.root.glob("*.pt")) == files   # head-only: every alpha reads the same features
    assert curve["rows"][2] == {"alpha": 1.0, **rec["metrics"]}


def test_loss_figure_has_one_panel_per_kind():
    hist = [{"step": 1, "lr": 0.1, "loss": 1.0, "ce": 1.0}, {"step": 1, "val_acc": 0.5},
            {"step": 2, "lr": 0.05, "loss": float("nan"), "ce": 0.5}]
    fig = plot_training(hist, "t")
    names = [t.name for t in fig.data]
    assert names == ["loss", "ce", "val_acc", "lr"]
    assert list(fig.data[0].x) == [1]                                    # non-finite values are dropped
