"""The loader (worker processes over the very index stream) and the loop's host reads:
the same batches, the same history and weights whatever the workers, sync interval or
memory format, and no read of a device value inside a step."""
import copy
import sys

import pytest
import torch

import rftlab
from rftlab.data import default_workers
from rftlab.distributed import Ranks
from rftlab.methods import METHODS, Method, get_method


def _fresh(clip):
    c = copy.copy(clip)
    c.model = copy.deepcopy(clip.model)
    return c


def _cfg(**kw):
    base = dict(steps=6, batch_size=16, lr=1e-3, eval_every=3, progress=False, seed=0)
    return rftlab.TrainConfig(**{**base, **kw})


def _take(stream, n):
    return [next(stream) for _ in range(n)]


def test_workers_yield_the_same_batches_as_the_main_process(clip, disk_task, small_spurious):
    split = disk_task.train
    kw = dict(batch_size=24, transform=clip.preprocess, shuffle=True, seed=5, start=7)  # across an epoch edge
    plain = _take(split.batches(**kw, workers=0), 6)
    loaded = _take(split.batches(**kw, workers=2), 6)
    for (xa, ya, ia), (xb, yb, ib) in zip(plain, loaded):
        assert torch.equal(ia, ib) and torch.equal(ya, yb) and torch.equal(xa, xb)
    # the PNGs read back are the in-memory images, and the stream is the in-memory split's
    x, y, idx = plain[0]
    xm, ym, im = next(small_spurious.train.batches(**kw))
    assert torch.equal(idx, im) and torch.equal(y, ym) and torch.allclose(x, xm, atol=1e-6)


def test_index_stream_is_what_batches_load_and_what_ranks_shard(clip, small_spurious):
    split = small_spurious.train
    idx = _take(split.index_batches(32, shuffle=True, seed=2, start=3), 4)
    got = [i for _, _, i in _take(split.batches(32, clip.preprocess, shuffle=True, seed=2, start=3), 4)]
    assert all(torch.equal(a, b) for a, b in zip(idx, got))
    for rank in (0, 1):
        shards = _take(Ranks(rank=rank, size=2).batches(split, 32, clip.preprocess, seed=2, start=3, workers=0), 4)
        for (x, y, i), full in zip(shards, idx):
            assert torch.equal(i, full[rank * 16:(rank + 1) * 16]) and torch.equal(y, split.labels[i])
            assert torch.equal(x, clip.preprocess(split.images[i]))


def test_default_workers_and_bad_values(disk_task, small_spurious, monkeypatch):
    assert default_workers(small_spurious.train) == 0  # in-memory images: one tensor op per batch
    monkeypatch.delenv("RFTLAB_WORKERS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 16)
    assert default_workers(disk_task.train, for_gpu=True) == 8  # the GPU computes; the cores decode
    monkeypatch.setattr(torch, "get_num_threads", lambda: 16)
    assert default_workers(disk_task.train) == 0  # CPU training: torch's threads already use every core
    monkeypatch.setattr(torch, "get_num_threads", lambda: 12)
    assert default_workers(disk_task.train) == 4
    monkeypatch.setenv("RFTLAB_WORKERS", "3")
    assert default_workers(disk_task.train) == 3
    monkeypatch.setenv("RFTLAB_WORKERS", "many")
    with pytest.raises(ValueError, match="RFTLAB_WORKERS.*number of loader processes"):
        default_workers(disk_task.train)
    with pytest.raises(ValueError, match="workers=-1"):
        next(disk_task.train.batches(8, lambda x: x, workers=-1))
    with pytest.raises(ValueError, match="TrainConfig.workers"):
        rftlab.TrainConfig(workers=-2)
    with pytest.raises(ValueError, match="TrainConfig.sync_every"):
        rftlab.TrainConfig(sync_every=0)


def test_training_from_disk_with_workers_equals_training_in_memory(clip, disk_task, small_spurious):
    runs = [rftlab.Trainer("ft", _fresh(clip), task, _cfg(steps=4, eval_every=2, workers=w)).fit()
            for task, w in ((small_spurious, 0), (disk_task, 1))]
    losses = [[h["loss"] for h in r.history if "loss" in h] for r in runs]
    assert len(losses[0]) == 4 and losses[0] == pytest.approx(losses[1], abs=1e-5)
    a, b = (r.classifier.state_dict() for r in runs)
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)


def _steps(history):
    return [h for h in history if "loss" in h]


def test_reading_losses_every_few_steps_changes_nothing(clip, small_spurious):
    events = {1: [], 4: []}
    runs = {n: rftlab.Trainer("ft", _fresh(clip), small_spurious, _cfg(steps=9, eval_every=6, sync_every=n),
                              callbacks=[lambda e, i, n=n: events[n].append((e, i.get("step")))]).fit()
            for n in (1, 4)}
    assert runs[1].history == runs[4].history  # the same records, validation included, in the same order
    assert [e for e in events[4] if e[0] == "step"] == [("step", k) for k in range(1, 10)]
    assert events[1] == events[4]
    a, b = runs[1].classifier.state_dict(), runs[4].classifier.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_non_finite_loss_found_late_puts_back_the_last_state_read(clip, small_spurious, nan_at):
    trainer = rftlab.Trainer(nan_at(5), _fresh(clip), small_spurious, _cfg(steps=12, eval_every=0, sync_every=4))
    seen = {}
    trainer.callbacks.append(lambda e, i: seen.__setitem__(i["step"], copy.deepcopy(trainer.classifier.state_dict()))
                             if e == "step" else None)
    with pytest.warns(UserWarning, match=r"loss became nan at step 5; the weights are those of step 4"):
        res = trainer.fit()
    assert res.step == 4 and "last good weights" in res.stopped
    assert [h["step"] for h in _steps(res.history)] == [1, 2, 3, 4]
    final = res.classifier.state_dict()
    assert all(torch.equal(final[k], seen[4][k]) for k in final)  # weights and BatchNorm statistics of step 4
    assert trainer.optimizer.state_dict()["state"][0]["step"].item() == 4


# ------------------------------------------------------------------ no host reads inside a step
_READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__float__", "__int__", "__index__")


@pytest.fixture
def host_reads(monkeypatch):
    """Records every Tensor method that reads a value to the host, or copies between devices and
    waits, when rftlab's code calls it."""
    calls = []
    for name in _READS:
        orig = getattr(torch.Tensor, name)

        def spy(self, *a, _orig=orig, _name=name, **k):
            module = sys._getframe(1).f_globals.get("__name__", "")
            if module.startswith("rftlab"):
                calls.append(f"{_name} in {module}:{sys._getframe(1).f_lineno}")
            return _orig(self, *a, **k)
        monkeypatch.setattr(torch.Tensor, name, spy)
    to = torch.Tensor.to

    def spy_to(self, *a, **k):  # a copy between devices that waits for the device (non_blocking=False)
        module = sys._getframe(1).f_globals.get("__name__", "")
        moves = any(isinstance(x, (torch.device, str)) for x in (*a, k.get("device")))
        if moves and not k.get("non_blocking") and module.startswith("rftlab"):
            calls.append(f"blocking to() in {module}:{sys._getframe(1).f_lineno}")
        return to(self, *a, **k)
    monkeypatch.setattr(torch.Tensor, "to", spy_to)
    return calls


TRAINED = [m for m in METHODS if isinstance(get_method(m), Method) and get_method(m).trainable]  # a step loop


@pytest.mark.parametrize("method", TRAINED)
def test_a_step_reads_nothing_back_to_the_host(method, clip, small_spurious, host_reads):
    trainer = rftlab.Trainer(method, _fresh(clip), small_spurious, _cfg(steps=4, sync_every=4))
    trainer._stream = iter([next(trainer._batches()) for _ in range(3)])  # the loader works on host tensors
    host_reads.clear()  # setup may read (zero-shot heads, scales); the steps may not
    for _ in range(3):
        trainer._pending.append(trainer._advance(check=False))
    assert host_reads == [], f"{method} reads device values inside a step: {host_reads[:5]}"
    assert len(trainer._read()) == 3


def test_channels_last_trains_the_same_model(clip, small_spurious):
    from rftlab.train import is_convolutional
    assert is_convolutional(clip.model)
    runs = {cl: rftlab.Trainer("ft", _fresh(clip), small_spurious, _cfg(steps=3, eval_every=0, channels_last=cl))
            for cl in (False, True)}
    convs = [m.weight for m in runs[True].classifier.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not all(w.is_contiguous() for w in convs)  # really NHWC, not merely 1x1 kernels
    res = {cl: r.fit() for cl, r in runs.items()}
    la, lb = ([h["loss"] for h in _steps(r.history)] for r in res.values())
    assert la == pytest.approx(lb, abs=1e-4)


def test_channels_last_is_the_default_for_convolutional_towers_only(clip, small_spurious):
    from open_clip.transformer import VisionTransformer

    from rftlab.train import is_convolutional
    vit = VisionTransformer(image_size=32, patch_size=8, width=32, layers=1, heads=2, mlp_ratio=2, output_dim=16)
    assert not is_convolutional(vit)  # one patchifying conv: NHWC buys nothing
    trainer = rftlab.Trainer("ft", _fresh(clip), small_spurious, _cfg(steps=1))
    assert trainer.channels_last and trainer.sync_every == 1  # the world CNN on the CPU
    assert not rftlab.Trainer("ft", _fresh(clip), small_spurious, _cfg(steps=1, channels_last=False)).channels_last


def test_the_trained_model_comes_back_in_the_standard_layout(clip, small_spurious):
    res = rftlab.Trainer("ft", _fresh(clip), small_spurious, _cfg(steps=2, channels_last=True)).fit()
    convs = [m.weight for m in res.classifier.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w.is_contiguous() for w in convs)  # so evaluating it equals evaluating it reloaded from disk
