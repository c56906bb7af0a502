"""Step time of every method relative to FT, measured side by side in one run, and peak memory.

    .venv/bin/python benchmarks/method_speed.py [--steps 20] [--batch 64] [--threads 2]

For each method the unavoidable extra work is timed on its own (the frozen forwards of
theta0 or the teacher), and the target is: method time <= 1.10 x (FT time + that extra),
or for FLYP-based methods (FLYP time + their extra). Also: LP through features encoded once
versus re-encoding every epoch. Peak memory is the process's resident-set growth per method
(each method runs in its own subprocess). Run on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import torch

SETUP = {"lipsum-ft": "frozen image forward + M random texts through the text tower",
         "car-ft": "frozen image forward",
         "carot": "FLYP + teacher image and caption forwards",
         "starft": "FLYP + injected captions (student) + teacher image and caption forwards"}


def time_method(name: str, steps: int, batch: int) -> dict:
    import rftlab
    from rftlab.methods._common import encode_image, encode_text, random_texts, step_generator
    clip = rftlab.load_model()
    task = rftlab.load_task("shift")
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cfg = rftlab.TrainConfig(steps=steps + 3, batch_size=batch, eval_every=0, progress=False)
    tr = rftlab.Trainer(name, clip, task, cfg)
    for _ in range(3):
        tr.step()  # warm-up
    t = time.perf_counter()
    for _ in range(steps):
        tr.step()
    per_step = (time.perf_counter() - t) / steps
    out = {"method": name, "step_s": per_step,
           "peak_rss_mb": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024}
    # the unavoidable extra work, timed alone on the same batch
    images, labels, _ = next(tr._batches())
    m = tr.method
    extra = None
    with torch.no_grad():
        def timed(fn, reps=5):
            fn()
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            return (time.perf_counter() - t0) / reps
        if name == "lipsum-ft":
            extra = timed(lambda: (m.ref.features(images),
                                   encode_text(m.ref.clip, random_texts(m.tokenizer, m.m, m.length, step_generator(0, 1)))))
        elif name == "car-ft":
            extra = timed(lambda: m.ref.features(images))
        elif name == "carot":
            extra = timed(lambda: (encode_image(m.teacher, images), encode_text(m.teacher, m.captions(labels, 1))))
        elif name == "starft":
            extra = timed(lambda: (encode_image(m.teacher, images), encode_text(m.teacher, m.spurious.sample(labels, step_generator(0, 1)))))
    out["extra_s"] = extra
    return out


def lp_cache_ratio() -> dict:
    import rftlab
    from rftlab.evaluation import encode_split
    from rftlab.methods.lp import fit_linear_probe
    clip = rftlab.load_model()
    task = rftlab.load_task("shift")
    clf = rftlab.ClipClassifier.zeroshot(clip, task.classnames, task.templates)
    epochs = 10
    t = time.perf_counter()
    feats = encode_split(clf, task.train, clip.preprocess)
    for _ in range(epochs):
        fit_linear_probe(clf, feats, task.train.labels, 1e-4, 5)
    cached = time.perf_counter() - t
    t = time.perf_counter()
    for _ in range(epochs):
        f = encode_split(clf, task.train, clip.preprocess)
        fit_linear_probe(clf, f, task.train.labels, 1e-4, 5)
    reencode = time.perf_counter() - t
    return {"lp_cached_s": cached, "lp_reencode_s": reencode, "ratio": reencode / cached}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--one", default=None, help=argparse.SUPPRESS)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    if a.one:
        print(json.dumps(time_method(a.one, a.steps, a.batch)))
        return
    import rftlab
    names = [n for n, c in rftlab.METHODS.items() if c.trainable and not n.startswith(("soup", "lp"))] + ["lp-ft"]
    results = {}
    for n in dict.fromkeys(["ft", "flyp", *names]):
        out = subprocess.run([sys.executable, __file__, "--one", n, "--steps", str(a.steps), "--batch",
                              str(a.batch), "--threads", str(a.threads)], capture_output=True, text=True, check=True)
        results[n] = json.loads(out.stdout.strip().splitlines()[-1])
    ft, flyp = results["ft"]["step_s"], results["flyp"]["step_s"]
    print(f"batch {a.batch}, {a.steps} timed steps, {a.threads} threads, torch {torch.__version__}")
    print(f"{'method':<12}{'step ms':>10}{'x FT':>8}{'target x':>10}{'ok':>5}{'peak MB':>10}  unavoidable extra")
    for n, r in results.items():
        base = flyp if n in ("carot", "starft") else ft
        target = (base + (r["extra_s"] or 0)) / ft
        ratio = r["step_s"] / ft
        ok = ratio <= 1.10 * target
        print(f"{n:<12}{1000 * r['step_s']:>10.1f}{ratio:>8.2f}{target:>10.2f}{'yes' if ok else 'NO':>5}"
              f"{r['peak_rss_mb']:>10.0f}  {SETUP.get(n, '')}")
    lp = lp_cache_ratio()
    print(f"LP, 10 epochs: features encoded once {lp['lp_cached_s']:.2f}s vs re-encoded each epoch "
          f"{lp['lp_reencode_s']:.2f}s: {lp['ratio']:.1f}x faster (target >= 20x)")


if __name__ == "__main__":
    main()
