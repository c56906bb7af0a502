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
