"""Code paths that run on CUDA only: bf16 autocast, pinned-memory loading, steps that never wait
for the device, the CUDA defaults. Skipped where there is no GPU (CI); every test here is
listed in docs/skipped-tests.md. The CPU halves of these promises are tested in test_loader.py."""
import copy

import pytest
import torch

import rftlab
from rftlab.methods import METHODS, Method, get_method

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA GPU: bf16 autocast, pinned memory, sync-free steps run on CUDA only")


@pytest.fixture(scope="module")
def gpu_clip():
    return rftlab.load_model(device="cuda")


def _fresh(clip):
    c = copy.copy(clip)
    c.model = copy.deepcopy(clip.model)
    return c


def _cfg(**kw):
    return rftlab.TrainConfig(**{**dict(steps=4, batch_size=16, lr=1e-3, eval_every=0, progress=False, seed=0), **kw})


def test_cuda_defaults(gpu_clip, small_spurious):
    trainer = rftlab.Trainer("ft", _fresh(gpu_clip), small_spurious, _cfg())
    assert trainer.device.type == "cuda" and trainer.sync_every == 10 and trainer.channels_last
    images, labels, _ = next(trainer._batches())
    assert images.is_pinned() and labels.is_pinned()  # in-memory world batches are pinned too


def test_loader_pins_batches_read_from_disk(disk_task, clip):
    x, y, _ = next(disk_task.train.batches(8, clip.preprocess, shuffle=True, workers=1, pin_memory=True))
    assert x.is_pinned() and y.is_pinned()


def test_bf16_autocast_trains_close_to_float32(gpu_clip, clip, small_spurious):
    gpu = rftlab.Trainer("ft", _fresh(gpu_clip), small_spurious, _cfg()).fit()
    cpu = rftlab.Trainer("ft", _fresh(clip), small_spurious, _cfg(device="cpu")).fit()
    lg, lc = ([h["loss"] for h in r.history if "loss" in h] for r in (gpu, cpu))
    assert len(lg) == 4 and all(torch.isfinite(torch.tensor(lg)))
    assert lg == pytest.approx(lc, rel=0.1)  # bf16 matmuls: a few per cent, not more


TRAINED = [m for m in METHODS if isinstance(get_method(m), Method) and get_method(m).trainable]  # a step loop


@pytest.mark.parametrize("method", TRAINED)
def test_a_cuda_step_never_waits_for_the_device(method, gpu_clip, small_spurious):
    trainer = rftlab.Trainer(method, _fresh(gpu_clip), small_spurious, _cfg(steps=8, sync_every=8))
    trainer.step()  # first step: lazy set-up (optimiser state, library handles) may synchronise
    trainer._stream = iter([next(trainer._batches()) for _ in range(3)])
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")  # any synchronising CUDA call raises
    try:
        for _ in range(3):
            trainer._pending.append(trainer._advance(check=False))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert len(trainer._read()) == 3


def test_a_late_non_finite_loss_on_cuda_puts_back_the_last_state_read(gpu_clip, small_spurious, nan_at):
    trainer = rftlab.Trainer(nan_at(12), _fresh(gpu_clip), small_spurious, _cfg(steps=30))
    with pytest.warns(UserWarning, match="loss became nan at step 12; the weights are those of step 10"):
        res = trainer.fit()
    assert res.step == 10 and all(torch.isfinite(v).all() for v in res.classifier.state_dict().values()
                                  if v.is_floating_point())


def test_pinned_batches_keep_the_stream_of_the_cpu_loader(disk_task, clip):
    kw = dict(batch_size=8, transform=clip.preprocess, shuffle=True, seed=1, start=2)
    plain = [b for _, b in zip(range(3), disk_task.train.batches(**kw))]
    pinned = [b for _, b in zip(range(3), disk_task.train.batches(**kw, workers=2, pin_memory=True))]
    assert all(torch.equal(a[2], b[2]) and torch.equal(a[0], b[0]) for a, b in zip(plain, pinned))


def test_evaluation_on_cuda_matches_the_cpu(gpu_clip, clip, small_spurious):
    zs_gpu = rftlab.ClipClassifier.zeroshot(gpu_clip, small_spurious.classnames, small_spurious.templates)
    zs_cpu = rftlab.ClipClassifier.zeroshot(clip, small_spurious.classnames, small_spurious.templates)
    a = rftlab.evaluate(zs_gpu, small_spurious, gpu_clip.preprocess)
    b = rftlab.evaluate(zs_cpu, small_spurious, clip.preprocess)
    assert a["id_acc"] == pytest.approx(b["id_acc"], abs=0.02)
