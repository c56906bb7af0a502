"""What the trainer's speed options buy, each measured against its alternative in one run.

    .venv/bin/python benchmarks/step_options.py [--rounds 8] [--steps 3] [--batch 64] [--threads 2]

- memory layout: FT steps with the image tower in channels_last (NHWC) against NCHW;
- loading from disk: FT steps on the same images read as PNG files, by worker processes
  against the training process itself, and against the images held in memory;
- host reads: losses read every step against every 10 steps (on a CPU both should cost the same;
  the gap is what a GPU saves).

Trainers of one comparison live in one process and are timed round-robin (a few steps of each,
repeated), so drifts in the machine's speed hit both sides alike; medians are reported. The
world CLIP on its 4-shape shift task; run on an otherwise idle machine (with ``--device cuda``
on a GPU).
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import statistics
import tempfile
import time
from pathlib import Path

import torch


def _trainer(clip, task, args, **cfg):
    import rftlab
    c = copy.copy(clip)
    c.model = copy.deepcopy(clip.model)
    config = rftlab.TrainConfig(steps=10 ** 6, batch_size=args.batch, eval_every=0, progress=False,
                                device=args.device, **cfg)
    trainer = rftlab.Trainer("ft", c, task, config)
    for _ in range(2):
        trainer.step()
    return trainer


def _run(trainer, steps):
    for _ in range(steps):
        trainer._pending.append(trainer._advance(check=trainer.sync_every == 1))
        if trainer.step_count % trainer.sync_every == 0:
            trainer._read()
    trainer._read()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize(trainer.device)


def round_robin(trainers: dict, rounds: int, steps: int) -> dict[str, float]:
    times = {k: [] for k in trainers}
    for _ in range(rounds):
        for k, tr in trainers.items():
            t = time.perf_counter()
            _run(tr, steps)
            times[k].append((time.perf_counter() - t) / steps * 1000)
    return {k: statistics.median(v) for k, v in times.items()}


def write_pngs(split, folder: Path):
    from PIL import Image

    from rftlab.datasets._common import make_split
    folder.mkdir(parents=True)
    paths = [folder / f"{i:05d}.png" for i in range(len(split))]
    for p, img in zip(paths, split.images):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(p)
    return make_split(split.name, paths, split.labels, split.meta)


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=8)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--n-train", type=int, default=1024)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    import rftlab
    clip = rftlab.load_model(device=args.device)
    task = rftlab.make_task("shift", ("circle", "square", "star", "ring"), None, n_train=args.n_train,
                            n_val=8, n_test=8, seed=0)
    out = {}
    m = round_robin({"nchw": _trainer(clip, task, args, channels_last=False),
                     "nhwc": _trainer(clip, task, args, channels_last=True)}, args.rounds, args.steps)
    out["layout"] = m
    print(f"FT step, image tower NCHW {m['nchw']:.1f} ms, channels_last {m['nhwc']:.1f} ms: "
          f"channels_last {m['nchw'] / m['nhwc']:.2f}x faster", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        disk = dataclasses.replace(task, train=write_pngs(task.train, Path(tmp) / "train"))
        m = round_robin({"memory": _trainer(clip, task, args),
                         "disk, in process": _trainer(clip, disk, args, workers=0),
                         "disk, 1 worker": _trainer(clip, disk, args, workers=1)}, args.rounds, args.steps)
    out["loading"] = m
    print(f"FT step, images in memory {m['memory']:.1f} ms; PNG files read in the training process "
          f"{m['disk, in process']:.1f} ms, by 1 worker process {m['disk, 1 worker']:.1f} ms: the worker is "
          f"{m['disk, in process'] / m['disk, 1 worker']:.2f}x faster, {m['disk, 1 worker'] / m['memory']:.2f}x "
          f"the in-memory step", flush=True)
    m = round_robin({"every step": _trainer(clip, task, args, sync_every=1),
                     "every 10 steps": _trainer(clip, task, args, sync_every=10)}, args.rounds, 10)
    out["reads"] = m
    print(f"FT step, losses read every step {m['every step']:.1f} ms, every 10 steps {m['every 10 steps']:.1f} ms: "
          f"ratio {m['every step'] / m['every 10 steps']:.2f}", flush=True)
    return out


if __name__ == "__main__":
    main()
