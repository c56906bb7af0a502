"""Panel latency on the world, CPU, one thread (targets: first curve point after a Run click
within 2 s; a slider move redrawn within 0.5 s).

    .venv/bin/python benchmarks/widget_latency.py [--repeats 5]

Measured without a browser: from the click (or the slider's new value) until the figure object
holds the new data, the point where the widget sends its update to the page. Prints median and
worst over repeats. Run it on an otherwise idle machine.
"""
import argparse
import statistics
import time
import warnings

import torch

import rftlab
from rftlab.widgets import CalibrationView, DriftExplorer, SpuriosityProbe, TrainPanel

p = argparse.ArgumentParser()
p.add_argument("--repeats", type=int, default=5)
a = p.parse_args()
torch.set_num_threads(1)
warnings.filterwarnings("ignore", message="training interrupted")  # each Stop says so
clip = rftlab.load_model()
task = rftlab.load_task("spurious")


def report(name, times, target):
    med, worst = statistics.median(times), max(times)
    print(f"{name:<38} median {med * 1000:7.1f} ms, worst {worst * 1000:7.1f} ms  "
          f"(target {target * 1000:.0f} ms: {'met' if worst <= target else 'NOT met'} by the worst)")


# Run click -> first point on the loss curve
panel = TrainPanel(clip, task, device="cpu")
panel.set_config(steps=10_000)
firsts = []
for _ in range(a.repeats):
    t = time.perf_counter()
    panel.run_button.click()
    while not any(tr.name == "loss" and len(tr.y) for tr in panel.fig.data):
        time.sleep(0.002)
    firsts.append(time.perf_counter() - t)
    panel.stop()
    panel.wait()
report("TrainPanel: Run click -> first point", firsts, 2.0)

ft = panel.results[-1]["classifier"]
drift = DriftExplorer(clip, ft, task, n=400, progress=False)
times = []
for i in range(a.repeats * 4):
    t = time.perf_counter()
    drift.alpha_slider.value = round(0.05 + 0.9 * ((i * 0.37) % 1), 2)
    times.append(time.perf_counter() - t)
report("DriftExplorer: alpha slider (400 points)", times, 0.5)

cal = CalibrationView(clip, {"ft": ft}, task)
times = []
for i in range(a.repeats * 4):
    t = time.perf_counter()
    cal.temp_slider.value = 0.5 + (i % 7) * 0.4
    times.append(time.perf_counter() - t)
report("CalibrationView: temperature slider", times, 0.5)

probe = SpuriosityProbe(clip, ft, task)
times = []
for i, d in enumerate(["on the water", "in the forest", "a sketch of a {}", "red", "on the ice"] * a.repeats):
    t = time.perf_counter()
    probe.text.value = d + " " * (i // 5)  # a new value each time
    times.append(time.perf_counter() - t)
report("SpuriosityProbe: new description", times, 0.5)
