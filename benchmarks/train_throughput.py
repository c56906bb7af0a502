"""Training throughput (images/s) and model-FLOPs utilisation of every method, on any device.

    .venv/bin/python benchmarks/train_throughput.py --device cuda                 # ViT-B-32, random weights
    .venv/bin/python benchmarks/train_throughput.py --device cpu --batch 32 --steps 5 --warmup 1
    .venv/bin/python benchmarks/train_throughput.py --model rftlab-world --image-source disk

The model is an open_clip architecture with random weights (nothing is downloaded) or the world
CLIP. The task is the world's shape task with its images upsampled to the model's input size:
``--image-source memory`` holds them as one uint8 tensor (the loop and the model alone), ``disk``
writes them as PNG files and trains through the model's own preprocessing with loader worker
processes and pinned memory on CUDA (the real-dataset path). Each method runs the trainer's own
step loop (bf16 autocast on CUDA, losses read every ``sync_every`` steps); the clock covers
``--steps`` steps after ``--warmup`` steps and a device synchronisation at both ends.

FLOPs per step are counted by ``torch.utils.flop_counter.FlopCounterMode`` over one step
(forward and backward of every matmul and convolution; the optimiser's elementwise work is not
counted). MFU = counted FLOPs per second / the device's peak dense bf16 FLOPs (known GPUs, or
``--peak-tflops``); none on a CPU unless a peak is given.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

DEFAULT_METHODS = "ft,l2-sp,wise-ft,lipsum-ft,car-ft,flyp,carot,starft"
# peak dense bf16 tensor FLOPs per second (vendor data sheets); first match of the device name wins
PEAKS = (("H100 PCIe", 756e12), ("H100", 989e12), ("H200", 989e12), ("A100", 312e12), ("L40S", 362e12),
         ("L4", 121e12), ("A10", 125e12))


def peak_flops(device: torch.device, override_tflops: float | None) -> float | None:
    if override_tflops:
        return override_tflops * 1e12
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((p for key, p in PEAKS if key in name), None)


def build_task(size: int, n_train: int, source: str, folder: Path | None, clip):
    """The world's 4-shape shift task at ``size`` pixels, in memory or as PNG files on disk."""
    import rftlab
    from rftlab.datasets._common import make_split
    from rftlab.models.factory import WorldTransform
    task = rftlab.make_task("throughput", ("circle", "square", "star", "ring"), None, ("photo",), (),
                            n_train=n_train, n_val=8, n_test=8, seed=0)

    def resized(split):
        if size == split.images.shape[-1]:
            return split
        images = F.interpolate(split.images.float(), size=(size, size), mode="bilinear", align_corners=False)
        return dataclasses.replace(split, images=images.round().clamp(0, 255).to(torch.uint8))

    train = resized(task.train)
    if source == "memory":
        pre = clip.preprocess
        if not isinstance(pre, WorldTransform):  # open_clip's preprocess takes PIL images: normalise tensors instead
            mean, std = (getattr(clip.model.visual, k, None) for k in ("image_mean", "image_std"))
            pre = WorldTransform(mean or (0.48145466, 0.4578275, 0.40821073), std or (0.26862954, 0.26130258, 0.27577711), size)
        return dataclasses.replace(task, train=train), pre
    from PIL import Image
    paths = []
    for i, img in enumerate(train.images):
        paths.append(folder / f"{i:05d}.png")
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(paths[-1])
    disk = make_split("train", paths, train.labels, train.meta)
    return dataclasses.replace(task, train=disk), clip.preprocess


def count_flops(trainer) -> float:
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        trainer._pending.append(trainer._advance(check=False))
    trainer._read()
    return float(counter.get_total_flops())


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(method: str, clip, task, args, device) -> dict:
    import rftlab
    cfg = rftlab.TrainConfig(steps=args.warmup + args.steps + 1, batch_size=args.batch, eval_every=0,
                             progress=False, device=str(device), workers=args.workers,
                             channels_last=args.channels_last)
    c = copy.copy(clip)
    c.model = copy.deepcopy(clip.model)
    trainer = rftlab.Trainer(method, c, task, cfg)
    flops = count_flops(trainer)                 # also the first warm-up step
    for _ in range(args.warmup):
        trainer.step()
    sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    t0 = time.perf_counter()
    for i in range(args.steps):
        trainer._pending.append(trainer._advance(check=False))
        if (i + 1) % trainer.sync_every == 0:
            trainer._read()
    trainer._read()
    sync(device)
    seconds = time.perf_counter() - t0
    trainer._stream = None
    images_per_s = args.steps * args.batch / seconds
    peak = peak_flops(device, args.peak_tflops)
    return {"method": method, "step_ms": 1000 * seconds / args.steps, "images_per_s": images_per_s,
            "gflops_per_image": flops / args.batch / 1e9, "achieved_tflops": flops * args.steps / seconds / 1e12,
            "mfu": flops * args.steps / seconds / peak if peak else None,
            "peak_memory_gb": torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == "cuda" else None,
            "sync_every": trainer.sync_every, "channels_last": trainer.channels_last,
            "loss": trainer.history[-1]["loss"]}


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="ViT-B-32", help="an open_clip architecture (random weights) or rftlab-world")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    p.add_argument("--methods", default=DEFAULT_METHODS)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--steps", type=int, default=200, help="timed steps per method")
    p.add_argument("--warmup", type=int, default=20)
    p.add_argument("--n-train", type=int, default=2048)
    p.add_argument("--image-source", choices=("memory", "disk"), default="memory")
    p.add_argument("--workers", type=int, default=None, help="loader processes (default: rftlab's choice)")
    p.add_argument("--channels-last", type=int, choices=(0, 1), default=None, help="default: rftlab's choice")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's peak dense bf16 TFLOPs, for MFU")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0: torch's default)")
    p.add_argument("--json", default=None, help="write the rows here")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    import rftlab
    from rftlab.train import pick_device
    device = pick_device(args.device)
    clip = rftlab.load_model(args.model, device=str(device))
    size = clip.model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        task, pre = build_task(size, args.n_train, args.image_source, Path(tmp), clip)
        clip = dataclasses.replace(clip, preprocess=pre)
        for m in args.methods.split(","):
            rows.append(measure(m.strip(), clip, task, args, device))
            r = rows[-1]
            mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
            print(f"{r['method']:<10} {r['step_ms']:9.1f} ms/step {r['images_per_s']:9.1f} img/s "
                  f"{r['gflops_per_image']:7.2f} GFLOP/img {r['achieved_tflops']:8.3f} TFLOP/s MFU {mfu}", flush=True)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    out = {"device": name, "model": args.model, "image_size": size, "batch": args.batch, "steps": args.steps,
           "image_source": args.image_source, "torch": torch.__version__,
           "threads": torch.get_num_threads(), "rows": rows}
    print("\n| method | ms/step | images/s | GFLOP/image | TFLOP/s | MFU |\n|---|---|---|---|---|---|")
    for r in rows:
        mfu = f"{100 * r['mfu']:.1f}%" if r["mfu"] is not None else "n/a"
        print(f"| {r['method']} | {r['step_ms']:.1f} | {r['images_per_s']:.1f} | {r['gflops_per_image']:.2f} | "
              f"{r['achieved_tflops']:.3f} | {mfu} |")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return out


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
