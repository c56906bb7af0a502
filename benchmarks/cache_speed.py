"""Repeated evaluation through the feature cache versus re-encoding every time, in one run.

    .venv/bin/python benchmarks/cache_speed.py [--task shift] [--repeats 5] [--threads 1]
                                               [--model rftlab-world] [--pretrained PATH]

Evaluates the zero-shot classifier on the task's test sets ``repeats`` times without a cache,
then fills a fresh cache (in a temporary folder) once and evaluates ``repeats`` times through
it, alternating the two so drifts in this machine's speed hit both alike. Prints the median
seconds per evaluation of each, their ratio (target: >= 20x), that the metrics are identical,
and the time to fingerprint a ViT-B/32 image tower (random weights, nothing downloaded), the
part of every cache lookup that grows with the model. Run on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch


def _time(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--task", default="shift")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--model", default="rftlab-world")
    p.add_argument("--pretrained", default=None)
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)

    import open_clip

    import rftlab
    from rftlab.cache import FeatureCache, weights_fingerprint
    from rftlab.encode import image_tower
    from rftlab.models.factory import quiet_random_init
    clip = rftlab.load_model(a.model, a.pretrained)
    task = rftlab.load_task(a.task)
    clf = rftlab.ClipClassifier.zeroshot(clip, task.classnames, task.templates)
    n_images = sum(len(s) for s in task.eval_splits().values())

    with tempfile.TemporaryDirectory() as tmp:
        cache = FeatureCache(tmp)
        fill = _time(lambda: rftlab.evaluate(clf, task, clip.preprocess, cache=cache))
        plain, cached, same = [], [], True
        reference = rftlab.evaluate(clf, task, clip.preprocess)
        for _ in range(a.repeats):
            plain.append(_time(lambda: rftlab.evaluate(clf, task, clip.preprocess)))
            t = time.perf_counter()
            m = rftlab.evaluate(clf, task, clip.preprocess, cache=cache)
            cached.append(time.perf_counter() - t)
            same &= m == reference
        hits = cache.hits

    with quiet_random_init():
        vit = open_clip.create_model("ViT-B-32")
    tower = image_tower(vit)
    n_vit = sum(t.numel() for t in tower.state_dict().values())
    hash_s = statistics.median(_time(lambda: weights_fingerprint(tower)) for _ in range(3))
    n_world = sum(t.numel() for t in image_tower(clf).state_dict().values())

    med_p, med_c = statistics.median(plain), statistics.median(cached)
    print(f"model {clip.arch}, task {task.name}: {n_images} test images in {len(task.eval_splits())} sets, "
          f"{a.threads} thread(s), {a.repeats} repeats (median)")
    print(f"{'':<34}{'seconds':>10}")
    print(f"{'evaluate, re-encoding':<34}{med_p:>10.4f}")
    print(f"{'evaluate, cache filled (1st run)':<34}{fill:>10.4f}")
    print(f"{'evaluate, through the cache':<34}{med_c:>10.4f}")
    print(f"{'speed-up (re-encoding / cache)':<34}{med_p / med_c:>9.1f}x   target >= 20x: "
          f"{'met' if med_p / med_c >= 20 else 'NOT met'}")
    print(f"cache hits {hits}; metrics identical to re-encoding: {same}")
    print(f"fingerprint of the image tower per lookup: {clip.arch} {n_world / 1e6:.2f}M values; "
          f"ViT-B-32 {n_vit / 1e6:.1f}M values ({4 * n_vit / 2 ** 20:.0f} MiB) in {hash_s:.3f} s")


if __name__ == "__main__":
    main()
