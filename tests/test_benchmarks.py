"""The throughput benchmark runs end to end (tiny, on the CPU) and its MFU arithmetic holds."""
import importlib.util
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
