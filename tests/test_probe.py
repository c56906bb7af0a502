"""`rftlab probe`: a run, a fresh fine-tuning, open_clip checkpoints on real-dataset layouts; the
files it writes and its errors."""
import json

import pytest
import torch

import rftlab
from fixtures_datasets import celeba_tree, csv_tree, folder_tree, waterbirds_tree
from rftlab.cli import main

WORLD = ["--task", "spurious", "--task-arg", "n_train=128", "--task-arg", "n_val=120", "--task-arg", "n_test=8"]
KEYS = ("description", "score", "stderr", "group_acc", "rest_acc", "n")
TINY = {"embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


def _report(folder):
    data = json.loads((folder / "probe.json").read_text())
    page = (folder / "probe.html").read_text()
    return data, page


def _check_contract(data):
    assert data["ranking"] and all(set(KEYS) <= set(r) for r in data["ranking"])
    zs = [r["z"] for r in data["ranking"]]
    assert zs == sorted(zs, reverse=True) and data["ranking"][0]["rank"] == 1
    for key in ("judge", "rule", "task", "split", "found", "probed", "reference", "n_images", "n_errors"):
        assert key in data
    assert data["split"] == "val"


def test_probe_after_fine_tuning_writes_json_and_a_self_contained_page(tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["probe", *WORLD, "--method", "ft", "--steps", "20", "--batch-size", "32", "--eval-every", "0",
                 "--min-errors", "0", "--out", str(out), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    data, page = _report(out)
    assert printed == data
    _check_contract(data)
    assert data["probed"]["method"] == "ft" and data["probed"]["steps"] == 20
    assert data["reference"]["head"] == "zero-shot" and "reference" in data["judge"]
    assert "data:image/png;base64," in page and "<script" in page and "src=\"http" not in page
    assert data["ranking"][0]["description"] in page


def test_probe_a_finished_run_into_its_folder(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["finetune", *WORLD, "--steps", "8", "--batch-size", "32", "--eval-every", "0", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["probe", "--run", str(run), "--min-errors", "0"]) == 0
    text = capsys.readouterr().out
    data, _ = _report(run)
    _check_contract(data)
    assert data["probed"]["run"] == str(run) and data["probed"]["method"] == "ft"
    assert "judge" in text and f"wrote {run / 'probe.json'}" in text
    assert main(["probe", "--run", str(run), "--task", "shift"]) == 2
    assert "--run probes the run's own model" in capsys.readouterr().err


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A tiny random open_clip architecture and two checkpoints of it (probed, reference)."""
    import open_clip
    d = tmp_path_factory.mktemp("tiny")
    (d / "rftlab-test-probe-tiny.json").write_text(json.dumps(TINY))
    open_clip.add_model_config(d)
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(rftlab.save_checkpoint(rftlab.load_model("rftlab-test-probe-tiny"), d / f"ck{seed}.pt"))
    return "rftlab-test-probe-tiny", paths


def _dataset(kind, root):
    if kind == "waterbirds":
        return ["--root", str(waterbirds_tree(root))]
    if kind == "celeba":
        return ["--root", str(celeba_tree(root))]
    if kind == "imagefolder":
        return ["--root", str(folder_tree(root, per_class=12)), "--task-arg", "val_fraction=0.4"]
    rows = [[f"images/{i}.png", i % 2, i % 3] for i in range(40)]
    return ["--root", str(csv_tree(root, rows)), "--task-arg", "val_fraction=0.4"]


@pytest.mark.parametrize("kind", ["waterbirds", "celeba", "imagefolder", "csv"])
def test_probe_an_open_clip_checkpoint_on_real_dataset_layouts(kind, tiny, tmp_path, capsys):
    arch, (ck, base) = tiny
    out = tmp_path / "out"
    args = ["probe", "--model", arch, "--pretrained", str(ck), "--task", kind, *_dataset(kind, tmp_path / kind),
            "--min-errors", "0", "--out", str(out)]
    assert main(args) == 0, capsys.readouterr().err
    data, page = _report(out)
    _check_contract(data)
    assert data["reference"] is None and "own towers" in data["judge"]       # no base: it judges itself
    assert "data:image/png;base64," in page
    assert main(args + ["--base-pretrained", str(base)]) == 0
    data, _ = _report(out)
    assert data["reference"]["pretrained"] == str(base) and "reference" in data["judge"]


def test_probe_errors_are_one_clear_line(tiny, tmp_path, capsys):
    arch, (ck, _) = tiny
    cases = [
        (["--model", "rftlab-world", "--pretrained", str(ck), *WORLD, "--out", str(tmp_path)],
         f"holds weights for architecture {arch!r}, not 'rftlab-world'"),
        ([*WORLD, "--task-arg", "n_val=40", "--out", str(tmp_path)], "too few errors to tell what it relies on"),
        ([*WORLD, "--steps", "5", "--out", str(tmp_path)], "--steps is a fine-tuning flag: add --method"),
        ([*WORLD], "give --out DIR"),
        (["--out", str(tmp_path)], "no task"),
        ([*WORLD, "--out", str(tmp_path), "--candidates", str(tmp_path / "none.txt")], "candidates file"),
    ]
    for args, message in cases:
        assert main(["probe", *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("rftlab probe: error: ") and message in err and "Traceback" not in err, err


def test_probe_reads_a_candidates_file(tmp_path, capsys):
    (tmp_path / "c.txt").write_text("# my guesses\n{} on the water\n\nred {}\na sketch of a {}\n")
    assert main(["probe", *WORLD, "--method", "ft", "--steps", "5", "--eval-every", "0", "--min-errors", "0",
                 "--candidates", str(tmp_path / "c.txt"), "--out", str(tmp_path / "o")]) == 0
    data, _ = _report(tmp_path / "o")
    listed = {d for r in data["ranking"] for d in [r["description"], *r["synonyms"]]}
    assert listed == {"{} on the water", "red {}", "a sketch of a {}"} and data["n_candidates"] == 3
