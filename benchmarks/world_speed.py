"""World rendering throughput on one core (target: >= 5,000 images/s at 32 px).

    .venv/bin/python benchmarks/world_speed.py [--n 4000] [--size 32]

Prints images per second for rendering alone and with captions, one thread.
Run it on an otherwise idle machine.
"""
import argparse
import time

import torch

from rftlab.world import captions, render, sample_factors

p = argparse.ArgumentParser()
p.add_argument("--n", type=int, default=4000)
p.add_argument("--size", type=int, default=32)
p.add_argument("--repeats", type=int, default=3)
a = p.parse_args()
torch.set_num_threads(1)
f = sample_factors(a.n, seed=0)
render(f["shape"][:64], f["color"][:64], f["background"][:64], f["style"][:64], size=a.size)  # warm-up
best_r = best_c = 0.0
for r in range(a.repeats):
    t = time.perf_counter()
    render(f["shape"], f["color"], f["background"], f["style"], size=a.size, seed=r)
    best_r = max(best_r, a.n / (time.perf_counter() - t))
    t = time.perf_counter()
    captions(f["shape"], f["color"], f["background"], f["style"], seed=r)
    best_c = max(best_c, a.n / (time.perf_counter() - t))
print(f"render   {a.size}px: {best_r:,.0f} images/s (1 thread, best of {a.repeats}, n={a.n})")
print(f"captions      : {best_c:,.0f} captions/s")
print(f"target 5,000 images/s: {'met' if best_r >= 5000 else 'NOT met'} (ratio {best_r / 5000:.2f})")
