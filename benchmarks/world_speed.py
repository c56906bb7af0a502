"""World rendering throughput on one core (target: >= 5,000 images/s at 32 px).

    .venv/bin/python benchmarks/world_speed.py [--n 4000] [--size 32]

Prints the median, best and worst images per second over repeats (this machine's speed
varies from run to run), one thread.
Run it on an otherwise idle machine.
"""
import argparse
import statistics
import time

import torch

from rftlab.world import captions, render, sample_factors

p = argparse.ArgumentParser()
p.add_argument("--n", type=int, default=4000)
p.add_argument("--size", type=int, default=32)
p.add_argument("--repeats", type=int, default=7)
a = p.parse_args()
torch.set_num_threads(1)
f = sample_factors(a.n, seed=0)
render(f["shape"][:64], f["color"][:64], f["background"][:64], f["style"][:64], size=a.size)  # warm-up
rates, cap_rates = [], []
for r in range(a.repeats):
    t = time.perf_counter()
    render(f["shape"], f["color"], f["background"], f["style"], size=a.size, seed=r)
    rates.append(a.n / (time.perf_counter() - t))
    t = time.perf_counter()
    captions(f["shape"], f["color"], f["background"], f["style"], seed=r)
    cap_rates.append(a.n / (time.perf_counter() - t))
med = statistics.median(rates)
print(f"render   {a.size}px: median {med:,.0f} images/s, best {max(rates):,.0f}, worst {min(rates):,.0f} "
      f"(1 thread, {a.repeats} repeats, n={a.n})")
print(f"captions      : median {statistics.median(cap_rates):,.0f} captions/s")
print(f"target 5,000 images/s: {'met' if med >= 5000 else 'NOT met'} by the median (ratio {med / 5000:.2f})")
