"""The throughput benchmark runs end to end (tiny, on the CPU) and its MFU arithmetic holds."""
import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("train_throughput", ROOT / "benchmarks" / "train_throughput.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_throughput_benchmark_runs_from_memory_and_disk(bench, tmp_path):
    tiny = ["--model", "rftlab-world", "--device", "cpu", "--methods", "ft,flyp", "--batch", "8", "--steps", "2",
            "--warmup", "1", "--n-train", "32"]
    mem = bench.main(tiny + ["--json", str(tmp_path / "m.json")])
    disk = bench.main(tiny + ["--image-source", "disk", "--workers", "1", "--peak-tflops", "2"])
    assert (tmp_path / "m.json").exists() and mem["device"] == "cpu" and [r["method"] for r in mem["rows"]] == ["ft", "flyp"]
    for run in (mem, disk):
        for r in run["rows"]:
            assert r["images_per_s"] > 0 and r["step_ms"] > 0 and r["gflops_per_image"] > 0
    ft, flyp = mem["rows"]
    assert flyp["gflops_per_image"] > ft["gflops_per_image"]  # FLYP also runs the text tower forward and backward
    assert mem["rows"][0]["gflops_per_image"] == pytest.approx(disk["rows"][0]["gflops_per_image"])
    assert mem["rows"][0]["mfu"] is None  # no known peak for a CPU
    r = disk["rows"][0]
    assert r["mfu"] == pytest.approx(r["achieved_tflops"] / 2)


def test_known_gpu_peaks(bench):
    assert bench.PEAKS[0][0] == "H100 PCIe"  # matched before the SXM part's name
    names = {"NVIDIA H100 80GB HBM3": 989e12, "NVIDIA H100 PCIe": 756e12, "NVIDIA A100-SXM4-80GB": 312e12}
    for name, peak in names.items():
        assert next(p for key, p in bench.PEAKS if key in name) == peak


def test_shortcut_discovery_benchmark_runs_tiny(tmp_path):
    spec = importlib.util.spec_from_file_location("shortcut_discovery", ROOT / "benchmarks" / "shortcut_discovery.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.main(["--seeds", "1", "--steps", "3", "--factors", "background,color", "--n-train", "64", "--n-val",
                    "64", "--batch-size", "16", "--n-boot", "20", "--min-errors", "0", "--json", str(tmp_path / "s.json")])
    runs, summary = out["runs"], out["summary"]
    assert [(r["kind"], r["factor"]) for r in runs] == [
        ("planted", "background"), ("zeroshot", "background"), ("control", "background"),
        ("planted", "color"), ("zeroshot", "color"), ("control", "color")]
    assert all(len(r["top"]) == 3 and "error" not in r for r in runs)
    planted = [r for r in runs if r["kind"] == "planted"]
    assert summary["ft_precision_at_3"] == sum(r["top3"] for r in planted) / 2
    assert summary["false_alarms"] == sum(r["found"] for r in runs if r["kind"] == "control") / 2
    assert summary["n_planted"] == 2 and summary["n_controls"] == 2 and set(summary["goals"]) == {
        "precision@3 >= 0.9", "false alarms <= 0.1", "within 15 minutes"}
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["summary"] == summary and len(saved["runs"]) == 6
