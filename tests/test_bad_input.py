"""Bad input through the CLI and the Python API: a clear error that names the problem, no
traceback, no silent restart, no unpickling of untrusted files, and nothing the user had changed.

Every case checks the exit code or exception type, the words that name the problem (and the
fix where there is one), that no traceback reached the terminal, and, where the user had files
(run folders, checkpoints, caches, datasets), that their bytes and times are the same after.
"""
import csv
import hashlib
import importlib.util
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import rftlab
from rftlab.cli import main
from rftlab.datasets import load_dataset
from rftlab.errors import BadFileError, ImageReadError, MissingFileError, ResumeError, RftlabError
from rftlab.run_folder import finetune_run, resume_run

from fixtures_datasets import (celeba_tree, csv_tree, domainnet_tree, folder_tree, image, objectnet_tree, v2_tree,
                               waterbirds_tree, wnid_tree)

REPO = Path(__file__).resolve().parents[1]
TINY = {"task": "spurious", "task_args": {"n_train": 32, "n_val": 16, "n_test": 16},
        "steps": 2, "batch_size": 8, "eval_every": 0, "checkpoint_every": 1}
TINY_FLAGS = ["--task", "spurious", "--task-arg", "n_train=32", "--task-arg", "n_val=16", "--task-arg", "n_test=16",
              "--steps", "1", "--batch-size", "8", "--eval-every", "0"]


def quiet(_):
    pass


def snapshot(*roots) -> dict:
    """Every file under ``roots``: its bytes' hash and its modification time."""
    out = {}
    for root in roots:
        root = Path(root)
        for p in sorted([root] if root.is_file() else root.rglob("*")):
            if p.is_file():
                out[str(p)] = (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
    return out


def cli(capsys, *args):
    """(exit code, stdout, stderr) of ``rftlab ARGS`` run in this process; never a traceback."""
    try:
        code = main([str(a) for a in args])
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def refused(capsys, args, words, code=2):
    got, out, err = cli(capsys, *args)
    assert got == code, (got, out, err)
    for w in words:
        assert w in err, (w, err)
    return err


class Evil:
    """A pickle that would run code on load (it creates a marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


# ====================================================================== flags, names, configs
@pytest.mark.parametrize("args, words", [
    (["finetune", *TINY_FLAGS, "--steps", "many"], ["argument --steps: invalid int value: 'many'"]),
    (["finetune", *TINY_FLAGS, "--lr", "-1"], ["TrainConfig.lr=-1.0 is out of range"]),
    (["finetune", *TINY_FLAGS, "--select", "best"], ["select='best'", "'last', 'val_acc'"]),
    (["finetune", *TINY_FLAGS, "--device", "tpu9"], ["device 'tpu9' is not a device", "cpu, cuda"]),
    (["finetune", *TINY_FLAGS, "--device", "cuda:7"], ["device 'cuda:7'", "CUDA GPU"]),
    (["finetune", *TINY_FLAGS, "--task", "spuriuos"], ["unknown task 'spuriuos'", "spurious, shift"]),
    (["finetune", *TINY_FLAGS, "--method", "magic"], ["unknown method 'magic'", "registered methods"]),
    (["finetune", *TINY_FLAGS, "--method", "wise-ft", "--hp", "alpha=abc"], ["alpha takes a number; got 'abc'"]),
    (["finetune", *TINY_FLAGS, "--method", "lipsum-ft", "--hp", "lam=-1"], ["lam=-1.0 is out of range"]),
    (["finetune", *TINY_FLAGS, "--hp", "alpha"], ["'alpha': expected NAME=VALUE"]),
    (["finetune", *TINY_FLAGS, "--method", "ft", "--hp", "alpha=0.5"], ["ft has no hyperparameter(s) ['alpha']"]),
    (["zeroshot", "--task", "spurious", "--model", "ViT-B-99"], ["unknown model 'ViT-B-99'", "Did you mean"]),
    (["zeroshot", "--task", "spurious", "--model", "ViT-B-32", "--pretrained", "laion9"],
     ["unknown pretrained tag 'laion9' for ViT-B-32", "openai"]),
    (["zeroshot", "--task", "waterbirds"], ["waterbirds: no root given", "metadata.csv"]),
    (["compare", "--task", "imagenet"], ["imagenet: no root given"]),
    (["world", "--out", "no/such/folder/grid.png"], ["No such file or directory", "no/such/folder/grid.png"]),
])
def test_bad_flag_values_and_names(capsys, tmp_path, monkeypatch, args, words):
    monkeypatch.chdir(tmp_path)
    refused(capsys, args, words)
    assert list(tmp_path.iterdir()) == []          # nothing written anywhere


@pytest.mark.parametrize("name, text, words", [
    ("c.yaml", "task: spurious\nsteps: [1\n", ["config file", "c.yaml is not valid YAML"]),
    ("c.json", '{"task": "spurious", "steps": ', ["c.json is not valid JSON"]),
    ("c.json", "[1, 2]", ["must hold a mapping of keys to values, not a list"]),
    ("c.json", '{"task": "spurious", "lr": "fast"}', ["training setting lr takes a number; got 'fast'"]),
    ("c.json", '{"task": "spurious", "epochz": 3}', ["unknown config key(s) ['epochz']", "valid keys: method"]),
    ("c.toml", "task = 'spurious'", ["name it .json, .yaml or .yml"]),
    ("missing.yaml", None, ["config file", "missing.yaml does not exist"]),
])
def test_bad_config_files(capsys, tmp_path, name, text, words):
    if text is not None:
        (tmp_path / name).write_text(text)
    before = snapshot(tmp_path)
    refused(capsys, ["finetune", "--config", tmp_path / name, "--out", tmp_path / "run"], words)
    assert snapshot(tmp_path) == before and not (tmp_path / "run").exists()


# ====================================================================== model weights
@pytest.fixture(scope="module")
def world_files(tmp_path_factory):
    """Weight files as users meet them: damaged, of another kind, or booby-trapped."""
    d = tmp_path_factory.mktemp("weights")
    clip = rftlab.load_model()
    good = rftlab.save_checkpoint(clip, d / "good.pt")
    data = good.read_bytes()
    (d / "truncated.pt").write_bytes(data[: len(data) // 2])
    (d / "noise.pt").write_bytes(os.urandom(4096))
    (d / "text.pt").write_text("<html>404 Not Found</html>\n")
    torch.save({"state_dict": {"w": torch.ones(2)}, "arch": "rftlab-world", "x": Evil(d / "pwned")}, d / "evil.pt")
    torch.save(clip.model.state_dict(), d / "plain.pt")
    ck = torch.load(good, weights_only=True)
    torch.save({**ck, "arch": "ViT-B-32"}, d / "vitb32.pt")
    torch.save({**ck, "state_dict": {"visual.w": torch.ones(3)}}, d / "misfit.pt")
    torch.jit.script(torch.nn.Linear(2, 2)).save(str(d / "jit.pt"))
    st = rftlab.save_checkpoint(clip, d / "good.safetensors")
    (d / "truncated.safetensors").write_bytes(st.read_bytes()[:1000])
    (d / "folder.pt").mkdir()
    local = rftlab.save_local_dir(clip, d / "local")
    (local / "open_clip_config.json").write_text('{"model_cfg": {"embed_dim": ')
    return d


@pytest.mark.parametrize("file, kind, words", [
    ("truncated.pt", BadFileError, ["weights file", "truncated.pt is damaged or not a PyTorch file"]),
    ("noise.pt", BadFileError, ["noise.pt is damaged or not a PyTorch file"]),
    ("text.pt", BadFileError, ["text.pt is damaged or not a PyTorch file"]),
    ("evil.pt", BadFileError, ["evil.pt holds more than tensors", "does not unpickle", "If you trust its source"]),
    ("plain.pt", BadFileError, ["plain.pt is not an rftlab checkpoint"]),
    ("vitb32.pt", BadFileError, ["holds weights for architecture 'ViT-B-32'", "load_model('ViT-B-32'"]),
    ("misfit.pt", BadFileError, ["misfit.pt does not hold rftlab-world weights that fit"]),
    ("jit.pt", BadFileError, ["jit.pt is a TorchScript archive", "'openai'"]),
    ("truncated.safetensors", BadFileError, ["truncated.safetensors is damaged or not a safetensors file"]),
    ("folder.pt", BadFileError, ["folder.pt is a folder"]),
    ("missing.pt", MissingFileError, ["no weights file at", "missing.pt"]),
])
def test_bad_weight_files_are_refused_by_name(world_files, capsys, file, kind, words):
    before = snapshot(world_files)
    with pytest.raises(kind) as err:
        rftlab.load_model("rftlab-world", pretrained=str(world_files / file))
    assert all(w in str(err.value) for w in words), str(err.value)
    assert not (world_files / "pwned").exists()                 # no code ran
    refused(capsys, ["zeroshot", "--task", "spurious", "--pretrained", world_files / file], words[:1])
    assert snapshot(world_files) == before and not (world_files / "pwned").exists()


def test_local_dir_with_a_damaged_config(world_files):
    with pytest.raises(BadFileError, match="open_clip_config.json is damaged: not valid JSON"):
        rftlab.load_model(f"local-dir:{world_files / 'local'}")


def test_safetensors_are_written_and_read(world_files):
    clip = rftlab.load_model()
    again = rftlab.load_model("rftlab-world", pretrained=str(world_files / "good.safetensors"))
    assert all(torch.equal(a, b) for a, b in zip(clip.model.state_dict().values(), again.model.state_dict().values()))


def test_no_unpickling_is_left_in_rftlab():
    hits = [f"{p}:{i}" for p in (REPO / "rftlab").rglob("*.py")
            for i, line in enumerate(p.read_text().splitlines(), 1) if "weights_only=False" in line]
    assert hits == []


# ====================================================================== datasets
def _rewrite_csv(path, change):
    rows = list(csv.reader(open(path, newline="")))
    rows = change(rows)
    with open(path, "w", newline="") as f:
        csv.writer(f).writerows(rows)


def _waterbirds(tmp_path, change):
    root = waterbirds_tree(tmp_path / "wb")
    _rewrite_csv(root / "metadata.csv", change)
    return "waterbirds", root, {}


def _drop_column(name):
    def change(rows):
        k = rows[0].index(name)
        return [r[:k] + r[k + 1:] for r in rows]
    return change


def _set(col, value, row=1):
    def change(rows):
        rows[row][rows[0].index(col)] = value
        return rows
    return change


def _celeba_partition(tmp_path):
    root = celeba_tree(tmp_path / "celeba")
    text = (root / "list_eval_partition.txt").read_text().replace("000002.jpg 0", "000002.jpg 7")
    (root / "list_eval_partition.txt").write_text(text)
    return "celeba", root, {}


def _domainnet(tmp_path, edit):
    root = domainnet_tree(tmp_path / "dn")
    path = root / "real_test.txt"
    path.write_text(edit(path.read_text()))
    return "domainnet", root, {}


def _imagenet_r_empty(tmp_path):
    from rftlab.datasets import subset_wnids
    root = tmp_path / "r"
    for w in subset_wnids("imagenet-r")[:3]:
        (root / w).mkdir(parents=True)
    return "imagenet-r", root, {}


def _imagenet_r_with_a_classes(tmp_path):
    from rftlab.datasets import subset_wnids
    r, a = subset_wnids("imagenet-r"), subset_wnids("imagenet-a")
    return "imagenet-r", wnid_tree(tmp_path / "r", r[:2] + [w for w in a if w not in r][:1]), {}


def _objectnet_mapping(tmp_path, text):
    root = objectnet_tree(tmp_path / "on")
    (tmp_path / "map.json").write_text(text)
    return "objectnet", root, {"mapping": str(tmp_path / "map.json")}


def _folder_all_empty(tmp_path):
    root = tmp_path / "f"
    for c in ("cat", "dog"):
        (root / c).mkdir(parents=True)
    return "imagefolder", root, {}


def _csv(tmp_path, rows, header=("path", "label", "group"), **kw):
    return "csv", csv_tree(tmp_path / "c", rows, header=header), kw


CSV_ROWS = [(f"images/{i}.png", "cat" if i % 2 else "dog", "in") for i in range(10)]

DATASET_CASES = {
    "waterbirds missing column": (lambda t: _waterbirds(t, _drop_column("place")),
                                  ["lacks the column(s) ['place']", "Expected layout"]),
    "waterbirds split code 3": (lambda t: _waterbirds(t, _set("split", "3")), ["split 0/1/2", "split=3"]),
    "waterbirds unknown label": (lambda t: _waterbirds(t, _set("y", "2")), ["y and place must be 0/1", "y=2"]),
    "waterbirds text label": (lambda t: _waterbirds(t, _set("y", "bird")), ["must be integers", "'bird'"]),
    "waterbirds image gone": (lambda t: _waterbirds(t, _set("img_filename", "gone/x.jpg")),
                              ["metadata.csv names", "gone/x.jpg, which is not there"]),
    "celeba partition 7": (_celeba_partition, ["000002.jpg has partition 7", "0 (train), 1 (val) and 2 (test)"]),
    "celeba unknown attribute": (lambda t: ("celeba", celeba_tree(t / "c"), {"target": "Bald"}),
                                 ["unknown attribute 'Bald'", "Blond_Hair"]),
    "domainnet label disagrees": (lambda t: _domainnet(t, lambda s: s.replace("zebra/real_test_0_0.jpg 0",
                                                                              "zebra/real_test_0_0.jpg 1")),
                                  ["label 1 is class 'zebra' here but 'hot_air_balloon'"]),
    "domainnet malformed line": (lambda t: _domainnet(t, lambda s: s + "just-a-path\n"),
                                 ["expected '<domain>/<class>/<file> <label>'", "'just-a-path'"]),
    "imagenet-v2 folder 1000": (lambda t: ("imagenet-v2", v2_tree(t / "v2", classes=(2, 1000)), {}),
                                ["folder '1000' is not a class index 0..999"]),
    "imagenet-r given imagenet-a": (_imagenet_r_with_a_classes, ["are not imagenet-r classes", "another dataset"]),
    "imagenet-r empty class folders": (_imagenet_r_empty, ["hold no images"]),
    "objectnet mapping not json": (lambda t: _objectnet_mapping(t, '{"alarm_clock": [409'),
                                   ["objectnet mapping", "map.json is damaged: not valid JSON"]),
    "objectnet mapping unknown wnid": (lambda t: _objectnet_mapping(t, '{"alarm_clock": ["n99999999"]}'),
                                       ["'alarm_clock' maps to 'n99999999'", "WNID"]),
    "imagefolder empty class folders": (_folder_all_empty, ["no class folder with images"]),
    "csv without label column": (lambda t: _csv(t, [r[:1] + r[2:] for r in CSV_ROWS], header=("path", "group")),
                                 ["has no label column", "path,label[,group][,split]"]),
    "csv unknown label": (lambda t: _csv(t, CSV_ROWS, classnames=["cat", "cow"]),
                          ["label values ['dog'] are not among the given names"]),
    "csv split code 5": (lambda t: _csv(t, [(*r, "5") for r in CSV_ROWS], header=("path", "label", "group", "split")),
                         ["split value '5' is not train/val/test"]),
}


@pytest.mark.parametrize("case", list(DATASET_CASES))
def test_bad_dataset_layouts(tmp_path, capsys, case):
    build, words = DATASET_CASES[case]
    name, root, kw = build(tmp_path)
    before = snapshot(tmp_path)
    with pytest.raises(ValueError) as err:
        load_dataset(name, root, **kw)
    assert all(w in str(err.value) for w in words), str(err.value)
    if not kw:  # the same through the command line
        refused(capsys, ["zeroshot", "--task", name, "--root", root], words[:1])
    assert snapshot(tmp_path) == before


def test_an_empty_class_folder_is_reported(tmp_path):
    root = folder_tree(tmp_path / "f", classes=("cat", "dog"))
    (root / "owl").mkdir()
    with pytest.warns(UserWarning, match=r"ignored 2 folder\(s\) without images: notes, owl"):
        task = load_dataset("imagefolder", root)
    assert task.classnames == ["cat", "dog"] and task.info["ignored_folders"] == ["notes", "owl"]


# ---------------------------------------------------------------------- images
def _truncated_jpeg(path):
    image(path, 1, size=64)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_a_corrupt_image_stops_with_its_path_and_dataset(tmp_path, capsys):
    root = waterbirds_tree(tmp_path / "wb")
    rows = list(csv.reader(open(root / "metadata.csv")))
    bad = root / rows[-1][1]                      # a test image (split 2)
    _truncated_jpeg(bad)
    before = snapshot(root)
    task = load_dataset("waterbirds", root)
    with pytest.raises(ImageReadError) as err:
        task.test.get(torch.arange(len(task.test)), rftlab.load_model().preprocess)
    assert str(bad) in str(err.value) and "dataset 'waterbirds'" in str(err.value)
    assert "skip_bad_images" in str(err.value) and err.value.path == str(bad)
    refused(capsys, ["zeroshot", "--task", "waterbirds", "--root", root],
            [f"cannot read image {bad}", "split 'test' of dataset 'waterbirds'", "--task-arg skip_bad_images=true"])
    assert snapshot(root) == before


def test_a_corrupt_image_read_by_a_worker_process(tmp_path):
    root = folder_tree(tmp_path / "f", classes=("cat", "dog"), per_class=4)
    (root / "cat" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.warns(UserWarning, match="without images"):
        task = load_dataset("imagefolder", root, val_fraction=0.25, test_fraction=0.25)
    split = task.train if str(root / "cat" / "2.png") in task.train.images else \
        task.val if str(root / "cat" / "2.png") in task.val.images else task.test
    with pytest.raises(ImageReadError) as err:
        list(split.batches(2, rftlab.load_model().preprocess, workers=1))
    assert f"cannot read image {root / 'cat' / '2.png'}" in str(err.value)
    assert "Traceback" not in str(err.value) and "dataset 'f'" in str(err.value)


def test_skip_bad_images_counts_them_in_the_log_and_metrics(tmp_path, capsys):
    root = waterbirds_tree(tmp_path / "wb")
    rows = list(csv.reader(open(root / "metadata.csv")))
    bad = root / rows[1][1]                       # a training image
    _truncated_jpeg(bad)
    before = snapshot(root)
    with pytest.warns(UserWarning, match=rf"skipped 1 unreadable image\(s\).*{bad.name}"):
        task = load_dataset("waterbirds", root, skip_bad_images=True)
    assert task.info["skipped_images"] == {"train": [str(bad)]} and str(bad) not in task.train.images
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        code, out, err = cli(capsys, "finetune", "--task", "waterbirds", "--root", root, "--task-arg",
                             "skip_bad_images=true", "--steps", "1", "--batch-size", "4", "--eval-every", "0",
                             "--out", tmp_path / "run")
    assert code == 0 and "1 unreadable image(s) left out (skip_bad_images): 1 in train" in out
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["skipped_images"] == 1
    assert snapshot(root) == before


@pytest.mark.parametrize("mode, make, pixel", [
    ("L", lambda: Image.new("L", (4, 4), 100), (100, 100, 100)),
    ("LA", lambda: Image.new("LA", (4, 4), (100, 0)), (255, 255, 255)),
    ("RGBA", lambda: Image.new("RGBA", (4, 4), (255, 0, 0, 0)), (255, 255, 255)),
    ("RGBA half", lambda: Image.new("RGBA", (4, 4), (255, 0, 0, 128)), (255, 127, 127)),
    ("P transparent", lambda: _palette_with_transparency(), (255, 255, 255)),
    ("I;16", lambda: Image.fromarray(np.full((4, 4), 32896, dtype=np.uint16)), (128, 128, 128)),
    ("I;16 white", lambda: Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16)), (255, 255, 255)),
    ("F", lambda: Image.fromarray(np.full((4, 4), 0.5, dtype=np.float32)), (128, 128, 128)),
    ("CMYK", lambda: Image.new("CMYK", (4, 4), (0, 255, 255, 0)), (255, 0, 0)),
])
def test_grey_transparent_and_16_bit_images_are_converted(tmp_path, mode, make, pixel):
    from rftlab.datasets import open_rgb
    im = make()
    path = tmp_path / ("x.tif" if im.mode in ("F", "CMYK") else "x.png")
    im.save(path)
    rgb = open_rgb(path)
    assert rgb.mode == "RGB" and rgb.size == (4, 4)
    assert all(abs(a - b) <= 1 for a, b in zip(rgb.getpixel((1, 1)), pixel)), (Image.open(path).mode, rgb.getpixel((1, 1)))


def _palette_with_transparency():
    im = Image.new("P", (4, 4), 0)
    im.putpalette([0, 0, 0] * 256)
    im.info["transparency"] = 0
    return im


# ====================================================================== run folders and checkpoints
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A run interrupted at step 1 of 2 (checkpoint at step 1) and a complete zero-shot run."""
    base = tmp_path_factory.mktemp("runs")

    def stop(event, info):
        if event == "step" and info["step"] == 1:
            raise KeyboardInterrupt

    with pytest.warns(UserWarning, match="interrupted at step 1"):
        rec = finetune_run(TINY, base / "cut", callbacks=[stop], progress=False, log=quiet)
    assert rec["status"] == "interrupted" and (base / "cut" / "checkpoints" / "last.pt").exists()
    finetune_run({**TINY, "method": "zeroshot"}, base / "done", progress=False, log=quiet)
    return base


def _copy(runs, name, tmp_path):
    return Path(shutil.copytree(runs / name, tmp_path / name))


def _edit_checkpoint(folder, **change):
    path = folder / "checkpoints" / "last.pt"
    torch.save({**torch.load(path, weights_only=True), **change}, path)


def _edit_config(folder, **change):
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **change}))


RESUME_CASES = {
    "truncated checkpoint": (lambda f: (f / "checkpoints/last.pt").write_bytes((f / "checkpoints/last.pt")
                                                                                .read_bytes()[:3000]),
                             BadFileError, ["checkpoint", "last.pt is damaged", "Nothing was changed", "--overwrite"]),
    "empty checkpoint": (lambda f: (f / "checkpoints/last.pt").write_bytes(b""),
                         BadFileError, ["last.pt is damaged", "--overwrite"]),
    "checkpoint with code": (lambda f: torch.save({"step": 1, "x": Evil(f / "pwned")}, f / "checkpoints/last.pt"),
                             BadFileError, ["does not unpickle", "--overwrite"]),
    "not a trainer checkpoint": (lambda f: torch.save({"weights": torch.ones(2)}, f / "checkpoints/last.pt"),
                                 BadFileError, ["is not a Trainer checkpoint (it lacks arch", "--overwrite"]),
    "checkpoint of another method": (lambda f: _edit_checkpoint(f, method="lipsum-ft"),
                                     ResumeError, ["was trained with 'lipsum-ft', not 'ft'", "--overwrite"]),
    "checkpoint of another architecture": (lambda f: _edit_checkpoint(f, arch="ViT-B-32"),
                                           ResumeError, ["is for architecture 'ViT-B-32', not 'rftlab-world'",
                                                         "--overwrite"]),
    "config changed since the start": (lambda f: _edit_config(f, lr=0.01),
                                       ResumeError, ["config.json changed since the run started",
                                                     "lr: 0.0003 when it started, 0.01 now", "--overwrite"]),
    "task changed since the start": (lambda f: _edit_config(f, task_args={"n_train": 64, "n_val": 16, "n_test": 16}),
                                     ResumeError, ["changed since the run started", "task_args", "--overwrite"]),
    "config.json damaged": (lambda f: (f / "config.json").write_text('{"method": "ft", '),
                            BadFileError, ["run config", "config.json is damaged: not valid JSON", "--overwrite"]),
    "config.json invalid": (lambda f: _edit_config(f, epochz=3),
                            BadFileError, ["config.json is not a valid config", "unknown config key(s) ['epochz']"]),
    "config.json gone": (lambda f: (f / "config.json").unlink(),
                         FileNotFoundError, ["holds no run (config.json is missing)"]),
}


@pytest.mark.parametrize("case", list(RESUME_CASES))
def test_resume_refuses_and_changes_nothing(runs, tmp_path, capsys, case):
    damage, kind, words = RESUME_CASES[case]
    folder = _copy(runs, "cut", tmp_path)
    damage(folder)
    before = snapshot(folder)
    with pytest.raises(kind) as err:
        resume_run(folder, progress=False, log=quiet)
    assert all(w in str(err.value) for w in words), str(err.value)
    assert isinstance(err.value, RftlabError) or kind is FileNotFoundError
    refused(capsys, ["finetune", "--resume", folder], words[:2])
    assert snapshot(folder) == before and not (folder / "pwned").exists()


@pytest.mark.parametrize("damage, words", [
    (lambda f: (f / "metrics.json").write_text("{"), ["run metrics", "metrics.json is damaged"]),
])
def test_a_complete_run_with_damaged_metrics(runs, tmp_path, capsys, damage, words):
    folder = _copy(runs, "done", tmp_path)
    damage(folder)
    before = snapshot(folder)
    refused(capsys, ["finetune", "--resume", folder], words)
    assert snapshot(folder) == before


@pytest.mark.parametrize("args, damage, words", [
    ([], lambda f: (f / "model.pt").write_bytes(b"PK\x03\x04 half a zip"),
     ["run model", "model.pt is damaged", "--overwrite"]),
    ([], lambda f: torch.save({"classifier": {"head": torch.ones(2)}}, f / "model.pt"),
     ["model.pt does not fit the run's model"]),
    ([], lambda f: torch.save([1, 2], f / "model.pt"), ["model.pt holds no classifier"]),
    (["--alphas", "0,2"], lambda f: None, ["alphas must be numbers in [0, 1]"]),
    (["--alphas", "0,x"], lambda f: None, ["argument --alphas: invalid _floats value: '0,x'"]),
])
def test_wise_curve_of_a_damaged_run(runs, tmp_path, capsys, args, damage, words):
    folder = _copy(runs, "done", tmp_path)
    damage(folder)
    before = snapshot(folder)
    refused(capsys, ["wise-curve", folder, *args], words)
    assert snapshot(folder) == before and not (folder / "wise_curve.json").exists()


def test_run_folder_mistakes(runs, tmp_path, capsys):
    folder = _copy(runs, "cut", tmp_path)
    before = snapshot(folder)
    refused(capsys, ["finetune", *TINY_FLAGS, "--out", folder], ["already holds a run", "--resume", "--overwrite"])
    refused(capsys, ["finetune", "--resume", folder, "--lr", "0.1"], ["drop --lr"])
    refused(capsys, ["finetune", "--resume", tmp_path / "nowhere"], ["nowhere does not exist"])
    refused(capsys, ["wise-curve", folder], ["has not finished (model.pt is missing)", "--resume"])
    assert snapshot(folder) == before


def test_a_resume_interrupted_before_training_says_how_to_go_on(runs, tmp_path, capsys, monkeypatch):
    folder = _copy(runs, "cut", tmp_path)
    before = snapshot(folder)

    def ctrl_c(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr("rftlab.run_folder.load_parts", ctrl_c)
    refused(capsys, ["finetune", "--resume", folder], ["interrupted", f"--resume {folder}"], code=130)
    assert snapshot(folder) == before


def test_a_checkpoint_of_an_older_rftlab_still_resumes(runs, tmp_path):
    """Checkpoints written before this version keep numpy's random state as an array."""
    folder = _copy(runs, "cut", tmp_path)
    path = folder / "checkpoints" / "last.pt"
    ck = torch.load(path, weights_only=True)
    kind, keys, *rest = ck["rng"]["numpy"]
    ck["rng"]["numpy"] = (kind, keys.numpy().astype(np.uint32), *rest)
    del ck["run"]
    torch.save(ck, path)
    done = resume_run(folder, progress=False, log=quiet)
    assert done["status"] == "complete" and done["steps"] == 2


# ---------------------------------------------------------------------- killed while checkpointing
KILL_CONFIG = {**TINY, "steps": 4, "eval_every": 2}
CHILD = """
import io, sys, time, torch
from rftlab.run_folder import finetune_run
config, out, kill_at = eval(sys.argv[1]), sys.argv[2], int(sys.argv[3])
torch.set_num_threads(int(sys.argv[4]))   # the test process's: the same arithmetic as the run it is compared with
real, calls = torch.save, [0]
def save(obj, f, *a, **k):   # the kill_at-th checkpoint: write half of it, then wait to be killed
    if isinstance(obj, dict) and "optimizer" in obj:
        calls[0] += 1
        if calls[0] == kill_at:
            buf = io.BytesIO(); real(obj, buf, *a, **k)
            f.write(buf.getvalue()[: len(buf.getvalue()) // 2]); f.flush()
            print("MIDWRITE", flush=True); time.sleep(600)
    return real(obj, f, *a, **k)
if kill_at:
    torch.save = save
print("START", flush=True)
finetune_run(config, out, progress=False, log=lambda m: None)
"""


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    folder = tmp_path_factory.mktemp("whole") / "run"
    finetune_run(KILL_CONFIG, folder, progress=False, log=quiet)
    return folder


def _child(out, kill_at=0):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.Popen([sys.executable, "-c", CHILD, repr(KILL_CONFIG), str(out), str(kill_at),
                             str(torch.get_num_threads())],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)


def _same_run(a, b):
    hist = [json.loads((f / "history.json").read_text()) for f in (a, b)]
    assert hist[0] == hist[1]
    models = [torch.load(f / "model.pt", weights_only=True)["classifier"] for f in (a, b)]
    assert all(torch.equal(models[0][k], models[1][k]) for k in models[0])


def test_killed_in_the_middle_of_writing_a_checkpoint(uninterrupted, tmp_path):
    out = tmp_path / "run"
    proc = _child(out, kill_at=3)                 # checkpoints of steps 1 and 2 written; step 3's half written
    for line in proc.stdout:
        if "MIDWRITE" in line:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(60)
    assert proc.returncode == -signal.SIGKILL
    ckpt = out / "checkpoints" / "last.pt"
    assert torch.load(ckpt, weights_only=True)["step"] == 2          # the previous checkpoint, whole
    assert list((out / "checkpoints").glob("last.pt.*.tmp"))        # the half-written one never replaced it
    done = resume_run(out, progress=False, log=quiet)
    assert done["status"] == "complete" and done["steps"] == 4
    _same_run(out, uninterrupted)


def test_killed_at_a_random_moment_while_checkpointing_every_step(uninterrupted, tmp_path):
    out = tmp_path / "run"
    ckpt = out / "checkpoints" / "last.pt"
    proc = _child(out)
    seen, deadline = set(), time.time() + 300
    while len(seen) < 2 and proc.poll() is None and time.time() < deadline:   # a second checkpoint is written
        if ckpt.exists():
            seen.add(ckpt.stat().st_mtime_ns)
        time.sleep(0.005)
    time.sleep(random.uniform(0, 0.05))
    proc.send_signal(signal.SIGKILL)
    proc.wait(60)
    assert proc.returncode == -signal.SIGKILL, proc.stdout.read()
    assert not (out / "metrics.json").exists()
    done = resume_run(out, progress=False, log=quiet)
    assert done["status"] == "complete" and done["steps"] == 4
    _same_run(out, uninterrupted)


def test_ctrl_c_keeps_the_checkpoint_and_says_how_to_resume(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "TQDM_DISABLE": "1"}
    # The child gets Ctrl-C's default disposition: a suite started in the background (`cmd &`) runs with
    # SIGINT ignored, and an ignored signal stays ignored across exec, so the child would never see it.
    proc = subprocess.Popen([sys.executable, "-m", "rftlab", "finetune", *TINY_FLAGS, "--steps", "50",
                             "--checkpoint-every", "1", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    ckpt = out / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while not ckpt.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, (stdout, stderr)
    assert "Traceback" not in stdout + stderr
    assert f"continue with `rftlab finetune --resume {out}`" in stdout + stderr
    step = torch.load(ckpt, weights_only=True)["step"]
    assert 1 <= step < 50 and not (out / "metrics.json").exists()


# ====================================================================== feature cache
def test_a_damaged_cache_entry_is_named_and_recomputed(tmp_path, small_spurious, clip):
    from rftlab.cache import FeatureCache
    zs = rftlab.ClipClassifier.zeroshot(clip, small_spurious.classnames, small_spurious.templates)
    cache = FeatureCache(tmp_path)
    good = {s: cache.features(zs, getattr(small_spurious, s), clip.preprocess) for s in ("val", "test")}
    damaged = cache.path(cache.key(zs, small_spurious.val, clip.preprocess))
    damaged.write_bytes(b"\x00" * 100)
    others = snapshot(*[p for p in tmp_path.iterdir() if p != damaged])
    with pytest.warns(UserWarning, match=f"feature cache file {damaged} is unreadable"):
        again = cache.features(zs, small_spurious.val, clip.preprocess)
    assert torch.equal(again, good["val"]) and snapshot(*[p for p in tmp_path.iterdir() if p != damaged]) == others


def test_a_cache_folder_that_is_a_file(tmp_path, capsys):
    (tmp_path / "cache").write_text("my notes")
    before = snapshot(tmp_path)
    refused(capsys, ["zeroshot", "--task", "spurious", "--task-arg", "n_test=16", "--cache", tmp_path / "cache"],
            ["feature cache folder", "cache is a file: give a folder"])
    assert snapshot(tmp_path) == before


# ====================================================================== analyses and widgets
def test_analyses_refuse_bad_arguments(clip, small_spurious):
    from rftlab import analysis
    zs = rftlab.ClipClassifier.zeroshot(clip, small_spurious.classnames, small_spurious.templates)
    cases = [
        (lambda: analysis.subsample(small_spurious, 0), ValueError, "n must be at least 1"),
        (lambda: analysis.resolve_split(small_spurious, "tset"), ValueError, "has no split 'tset'"),
        (lambda: analysis.wise_curve(zs, zs, small_spurious, clip.preprocess, alphas=[0, 1.5]), ValueError,
         "alphas must be numbers in [0, 1]"),
        (lambda: analysis.calibration_report("model", small_spurious, clip.preprocess), TypeError,
         "expected a ClipClassifier, a ClipModel, an open_clip model, or a TrainResult / TrainPanel; got str"),
        (lambda: analysis.apply_temperature(torch.zeros(2, 2), -1), ValueError, "temperature must be positive"),
    ]
    for call, kind, words in cases:
        with pytest.raises(kind) as err:
            call()
        assert words in str(err.value)


def test_widgets_refuse_bad_arguments_and_unreadable_images(clip, small_spurious, disk_task, tmp_path):
    from rftlab.widgets import DriftExplorer, TrainPanel
    with pytest.raises(ValueError, match="unknown method 'magic'; registered methods"):
        TrainPanel(clip, task=small_spurious, method="magic", device="cpu")
    with pytest.raises(ValueError, match=r"alphas must include 0 \(zero-shot\) and 1"):
        DriftExplorer(clip, None, small_spurious, alphas=(0.2, 0.5))
    import dataclasses
    train = disk_task.train.select(torch.arange(16))
    (tmp_path / "train").mkdir()
    images = [shutil.copy(p, tmp_path / "train") for p in train.images]
    Path(images[3]).write_bytes(b"not a png")
    task = dataclasses.replace(disk_task, train=dataclasses.replace(train, images=images))
    p = TrainPanel(clip, task=task, device="cpu")
    p.set_config(steps=1, batch_size=16, eval_every=0)
    p.run(block=True)
    assert "run failed: ImageReadError" in p.message.last and f"cannot read image {images[3]}" in p.message.last
    assert not p.results
    ok = TrainPanel(clip, task=small_spurious, device="cpu")
    ok.set_config(steps=1, batch_size=32, eval_every=0)
    ok.run(block=True)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("mine")
    before = snapshot(tmp_path / "taken")
    assert ok.save(tmp_path / "taken") is None and "could not save" in ok.message.last
    assert snapshot(tmp_path / "taken") == before and not list(tmp_path.glob("taken.*.tmp"))


# ====================================================================== run.py lab
def _run_py():
    spec = importlib.util.spec_from_file_location("run_py", REPO / "run.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("euid, extra, expect_root", [(0, [], True), (1000, [], False),
                                                      (0, ["--allow-root", "--port", "9999"], True)])
def test_lab_starts_as_root_and_as_a_user(euid, extra, expect_root):
    run_py = _run_py()
    cmd = run_py.lab_command(extra, euid=euid)
    assert cmd[1:4] == ["lab", f"--ServerApp.root_dir={REPO}", "--LabApp.default_url=/lab/tree/notebooks/00_start_here.ipynb"]
    assert cmd[0].endswith("jupyter") and (REPO / run_py.START).is_file()
    assert cmd.count("--allow-root") == (1 if expect_root else 0)
    assert cmd[-len(extra):] == extra if extra else True


def test_lab_opens_the_course_guide_with_tutorials_reachable():
    run_py = _run_py()
    cmd = run_py.lab_command(["--course"], euid=1000)
    assert "--LabApp.default_url=/lab/tree/tutorials/README.md" in cmd and "--course" not in cmd
    assert (REPO / run_py.COURSE).is_file() and f"--ServerApp.root_dir={REPO}" in cmd   # the root holds tutorials/
