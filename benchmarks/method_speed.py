"""Step time of every method relative to FT, measured side by side in one run.

    .venv/bin/python benchmarks/method_speed.py [--rounds 7] [--steps 3] [--batch 64] [--threads 2]

All trainers live in one process and are timed round-robin (a few steps of each method, then
the next, repeated), so drifts in this machine's speed hit every method alike; the median step
time per method is reported. For each method the work it cannot avoid beyond FT is timed on
its own with the same batch, and the target is: method time <= 1.10 x (FT time + that work).

Memory: the peak of torch's CUDA allocator when run on a GPU; on the CPU, the size of the extra
state each method keeps (frozen copies, teachers, snapshots), which is what it adds to FT.
LP: features encoded once versus re-encoded for every L-BFGS iteration (LP's epoch). Model Stock and the
soups are recipes of FT runs: each of their steps is an FT step.
Run on an otherwise idle machine.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch

UNAVOIDABLE = {
    "l2-sp": "sum of squared distances to theta0 over every trained tensor, and its gradient",
    "lipsum-ft": "frozen image forward + M random texts through the frozen text tower",
    "car-ft": "frozen image forward",
    "flyp": "captions through the text tower, forward and backward; AdamW and clipping over the text tower",
    "carot": "FLYP's work + teacher image and caption forwards",
    "starft": "FLYP's work + injected captions (forward and backward) + teacher image and caption forwards",
    "spd": "a copy of every trained tensor before the step, then its condition, two norms and the decay",
}


def _timed(fn, reps: int = 7) -> float:
    fn()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def _state_mb(method) -> float:
    total = 0
    for name in ("ref", "teacher"):
        obj = getattr(method, name, None)
        if obj is not None:
            total += sum(t.numel() * t.element_size() for t in obj.state_dict().values())
    for t in getattr(method, "_params0", None) or []:
        total += t.numel() * t.element_size()
    for t in (getattr(method, "theta0", None) or {}).values():
        total += t.numel() * t.element_size()
    return total / 2 ** 20


def extra_work(name, trainer, images, labels) -> float:
    """Seconds of the work ``name`` cannot avoid beyond FT, on this batch."""
    from rftlab.losses import l2sp
    from rftlab.encode import encode_image, encode_text
    from rftlab.methods._common import step_generator
    from rftlab.methods.lipsum import random_texts
    m, clf = trainer.method, trainer.classifier
    if name == "spd":
        from rftlab.optim import selective_projection_decay
        params, anchors = trainer.params, trainer.optimizer.anchors

        def f():
            with torch.no_grad():
                before = [p.detach().clone() for p in params]
                for p, b, a in zip(params, before, anchors):   # lam = 0: the same work, the weights unchanged
                    p.copy_(selective_projection_decay(b, p, p.grad if p.grad is not None else torch.zeros_like(p), a, 0.0))
        return _timed(f)
    if name == "l2-sp":
        def f():
            reg = l2sp(m._params, m._params0)
            reg.backward()
        return _timed(f)
    with torch.no_grad():
        if name == "lipsum-ft":
            return _timed(lambda: (m.ref.features(images), encode_text(
                m.ref.clip, random_texts(m.tokenizer, m.m, m.length, step_generator(0, 1)))))
        if name == "car-ft":
            return _timed(lambda: m.ref.features(images))

    def captions_fb(tokens):
        def f():
            encode_text(clf.clip, tokens).sum().backward()
        return f

    def text_update() -> float:
        """AdamW step and gradient clipping over the parameters FT does not train (text tower,
        temperature): work every method that trains both towers must do each step."""
        extra = [p for n, p in clf.clip.named_parameters() if not n.startswith("visual.")]
        copies = [torch.nn.Parameter(p.detach().clone()) for p in extra]
        for c in copies:
            c.grad = torch.randn_like(c)
        opt = torch.optim.AdamW(copies, lr=1e-9)

        def f():
            torch.nn.utils.clip_grad_norm_(copies, 1.0)
            opt.step()
        return _timed(f)
    caps = m.captions(labels, 1) if hasattr(m, "captions") else None
    if name == "flyp":
        return _timed(captions_fb(caps)) + text_update()
    with torch.no_grad():
        teacher_img = _timed(lambda: encode_image(m.teacher, images))
    if name == "carot":
        with torch.no_grad():
            t_txt = _timed(lambda: encode_text(m.teacher, caps))
        return _timed(captions_fb(caps)) + text_update() + teacher_img + t_txt
    if name == "starft":
        spur = m.spurious.sample(labels, step_generator(0, 1))
        with torch.no_grad():
            t_txt = _timed(lambda: encode_text(m.teacher, spur))
        return _timed(captions_fb(torch.cat([caps, spur]))) + text_update() + teacher_img + t_txt
    return 0.0


def lp_cache_ratio(clip, task, iters: int = 100) -> tuple[float, float]:
    import rftlab
    from rftlab.encode import encode_split
    from rftlab.methods.lp import fit_linear_probe
    clf = rftlab.ClipClassifier.zeroshot(clip, task.classnames, task.templates)
    t = time.perf_counter()
    feats = encode_split(clf, task.train, clip.preprocess)
    fit_linear_probe(clf, feats, task.train.labels, 1e-4, iters)
    cached = time.perf_counter() - t
    clf = rftlab.ClipClassifier.zeroshot(clip, task.classnames, task.templates)
    t = time.perf_counter()
    for _ in range(iters):
        f = encode_split(clf, task.train, clip.preprocess)
        fit_linear_probe(clf, f, task.train.labels, 1e-4, 1)
    return cached, time.perf_counter() - t


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--steps", type=int, default=3, help="steps per method per round")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    import copy

    import rftlab
    clip = rftlab.load_model()
    task = rftlab.load_task("shift")
    names = ["ft", "lp-ft", "wise-ft", "lines", "l2-sp", "spd", "lipsum-ft", "car-ft", "flyp", "carot", "starft"]
    trainers = {}
    for n in names:
        c = copy.copy(clip)
        c.model = copy.deepcopy(clip.model)
        cfg = rftlab.TrainConfig(steps=10_000, batch_size=a.batch, eval_every=0, progress=False)
        trainers[n] = rftlab.Trainer(n, c, task, cfg)
        trainers[n].step()  # warm-up
    times = {n: [] for n in names}
    for _ in range(a.rounds):
        for n, tr in trainers.items():
            t = time.perf_counter()
            for _ in range(a.steps):
                tr.step()
            times[n].append((time.perf_counter() - t) / a.steps)
    step = {n: statistics.median(v) for n, v in times.items()}
    images, labels, _ = next(trainers["ft"]._batches())
    ft = step["ft"]
    print(f"batch {a.batch}, {a.rounds} rounds x {a.steps} steps per method, {a.threads} threads, "
          f"torch {torch.__version__}, device {trainers['ft'].device}")
    print(f"{'method':<11}{'step ms':>9}{'x FT':>7}{'target':>8}{'ok':>5}{'extra MB':>10}  work it cannot avoid beyond FT")
    for n in names:
        extra = extra_work(n, trainers[n], images, labels) if n in UNAVOIDABLE else 0.0
        target = (ft + extra) / ft
        ratio = step[n] / ft
        ok = "yes" if ratio <= 1.10 * target else "NO"
        print(f"{n:<11}{1000 * step[n]:>9.1f}{ratio:>7.2f}{target:>8.2f}{ok:>5}{_state_mb(trainers[n].method):>10.1f}"
              f"  {UNAVOIDABLE.get(n, 'none')}")
    print("model-stock, soup-uniform, soup-greedy: recipes of FT runs (each step is FT's), then one merge")
    if torch.cuda.is_available():
        print(f"peak CUDA memory: {torch.cuda.max_memory_allocated() / 2 ** 20:.0f} MB")
    cached, reencode = lp_cache_ratio(clip, task)
    print(f"LP, 100 L-BFGS iterations: features encoded once {cached:.2f}s, re-encoded every iteration "
          f"{reencode:.2f}s: {reencode / cached:.1f}x faster (target >= 20x)")


if __name__ == "__main__":
    main()
