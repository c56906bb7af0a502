"""Data-parallel training: two gloo processes launched by torchrun train exactly as one process
on the whole batch (loss history and weights), for every method, BatchNorm included.

Run as a script, this file is the torchrun worker: ``torchrun --nproc_per_node 2 tests/test_distributed.py OUT``.
"""
import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import rftlab
from rftlab.distributed import Ranks, start
from rftlab.methods import METHODS, Method

HPARAMS = {"carot": {"ema_updates": 2}, "soup-uniform": {"ingredients": 2}, "soup-greedy": {"ingredients": 2}}
# methods with their own gradient loop, compared in float64: weights, gradients and losses agree to
# rounding. In float32 AdamW turns rounding noise in near-zero gradient coordinates into update
# differences of up to ~lr * 0.1 (it divides by sqrt(v) + 1e-8), so float32 runs are compared loosely.
FLOAT64 = ["ft", "l2-sp", "wise-ft", "flyp", "lipsum-ft", "car-ft", "carot", "starft"]
FLOAT32 = [m for m in METHODS if m not in FLOAT64]  # zero-shot, LP (replicated), LP-FT, soups
TOL = {torch.float64: 1e-9, torch.float32: 5e-4}  # observed: 4e-12 and 4e-5 (soups)


def _task():
    return rftlab.make_task("tiny", ("circle", "square", "star"), 0.9, n_train=48, n_val=24, n_test=24, seed=2)


def _fresh(clip, dtype=torch.float32):
    c = copy.copy(clip)
    c.model = copy.deepcopy(clip.model).to(dtype)
    if dtype != torch.float32:
        c.preprocess = lambda x, tf=clip.preprocess: tf(x).to(dtype)
    return c


CFG = dict(steps=3, batch_size=8, lr=1e-3, grad_clip=0.0, eval_every=2, progress=False)


def _trainer(name, clip, task, callbacks=(), **kw):
    """grad_clip=0: clipping would rescale the gradients that the test compares."""
    dtype = next(clip.model.parameters()).dtype
    cfg = rftlab.TrainConfig(**{**CFG, **kw})
    clf = rftlab.ClipClassifier.zeroshot(clip, task.classnames, task.templates).to(dtype)
    trainer = rftlab.Trainer(name, clip, task, cfg, classifier=clf, callbacks=callbacks, **HPARAMS.get(name, {}))
    if hasattr(trainer.method, "w_ctx"):  # CAR-FT's context weights are built in float32
        trainer.method.w_ctx = trainer.method.w_ctx.to(dtype)
    return trainer


def _dtype(name):
    return torch.float64 if name in FLOAT64 else torch.float32


def _run(trainer, resume=None) -> dict:
    res = trainer.fit(resume)
    grads = {n: p.grad.clone() for n, p in trainer.classifier.named_parameters() if p.grad is not None}
    return {"history": res.history, "state": res.classifier.state_dict(), "grads": grads}


def _train(name, clip, task) -> dict:
    """A method through one Trainer (its gradients and frozen references kept); a recipe (soups)
    through rftlab.finetune, each of its runs a Trainer."""
    if isinstance(rftlab.get_method(name), Method):
        trainer = _trainer(name, clip, task)
        refs = _frozen_refs(trainer.method)
        return {**_run(trainer), "refs": refs, "ranks": (trainer.ranks.rank, trainer.ranks.size)}
    res = rftlab.finetune(name, clip, task, rftlab.TrainConfig(**CFG), **HPARAMS.get(name, {}))
    ranks = start()
    return {"history": res.history, "state": res.classifier.state_dict(), "grads": {}, "refs": {},
            "ranks": (ranks.rank, ranks.size)}


def _frozen_refs(method) -> dict:
    out = {}
    for name in ("ref", "teacher"):
        obj = getattr(method, name, None)
        if obj is not None:
            out.update({f"{name}.{k}": v.clone() for k, v in obj.state_dict().items()})
    return out


def _worker(out: Path) -> None:
    """Runs on each rank. Rank 1 perturbs its copy of the model first: the trainer must
    broadcast rank 0's weights, so every rank (and its frozen references) starts identical."""
    torch.set_num_threads(1)
    rank = int(os.environ["RANK"])
    clip0, task = rftlab.load_model(), _task()
    for name in METHODS:
        clip = _fresh(clip0, _dtype(name))
        if rank == 1:
            with torch.no_grad():
                for p in clip.model.parameters():
                    p.add_(0.01 * torch.randn_like(p))
        got = _train(name, clip, task)
        assert got["ranks"] == (rank, 2)
        torch.save(got, out / f"{name}.{rank}.pt")
    # checkpoint and resume under torchrun: stop after step 1, resume, finish
    ckpt = out / "ckpt"

    def stop_at_one(event, info):
        if event == "step" and info["step"] == 1:
            raise KeyboardInterrupt
    _trainer("carot", _fresh(clip0, torch.float64), task, [stop_at_one], checkpoint_dir=str(ckpt)).fit()
    resumed = _run(_trainer("carot", _fresh(clip0, torch.float64), task), resume=ckpt / "last.pt")
    torch.save(resumed, out / f"resumed.{rank}.pt")


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           __file__, str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def single(clip):
    task = _task()
    return {name: _train(name, _fresh(clip, _dtype(name)), task) for name in METHODS}


def _max_diff(a: dict, b: dict, label: str) -> float:
    assert a.keys() == b.keys(), label
    return max([(a[k].double() - b[k].double()).abs().max().item() for k in a if a[k].numel()] + [0.0])


def _assert_same_run(got: dict, ref: dict, tol: float, label: str) -> None:
    assert len(got["history"]) == len(ref["history"]), label
    for h, r in zip(got["history"], ref["history"]):
        assert h.keys() == r.keys(), label
        for k in h:
            assert h[k] == pytest.approx(r[k], rel=1e-5, abs=min(tol, 1e-5)), f"{label}: history {k} at step {r['step']}"
    assert _max_diff(got["state"], ref["state"], label) <= tol, f"{label}: weights differ"
    assert _max_diff(got["grads"], ref["grads"], label) <= tol * 10, f"{label}: gradients differ"


@pytest.mark.parametrize("name", list(METHODS))
def test_two_processes_train_as_one_on_the_whole_batch(name, two_ranks, single):
    ranks = [torch.load(two_ranks / f"{name}.{r}.pt", weights_only=False) for r in (0, 1)]
    for r, got in enumerate(ranks):
        _assert_same_run(got, single[name], TOL[_dtype(name)], f"{name} rank {r}")
    for k in ranks[0]["state"]:  # the ranks stay bitwise in step: they apply the same averaged gradients
        assert torch.equal(ranks[0]["state"][k], ranks[1]["state"][k]), f"{name}: ranks disagree on {k}"
    for k in ranks[0]["refs"]:  # frozen references and teachers are built from rank 0's weights
        assert torch.equal(ranks[0]["refs"][k], ranks[1]["refs"][k]), f"{name}: frozen {k} differs"


def test_checkpoint_and_resume_under_torchrun(two_ranks, single):
    assert (two_ranks / "ckpt" / "last.pt").is_file()
    for r in (0, 1):
        got = torch.load(two_ranks / f"resumed.{r}.pt", weights_only=False)
        _assert_same_run(got, single["carot"], TOL[torch.float64], f"resumed rank {r}")


def test_one_process_ranks_are_the_identity():
    one = Ranks()
    x, terms = torch.randn(6, 3), {"loss": torch.tensor(1.5)}
    assert not one.active and one.is_main
    assert one.gather(x) is x and one.gather_with_grad(x) is x and one.shard(x) is x
    assert one.mean_terms(terms) is terms and one.on_main(lambda a: a + 1, 1) == 2


def test_sharding_and_its_errors(monkeypatch):
    second = Ranks(rank=1, size=2)
    assert second.shard(torch.arange(8)).tolist() == [4, 5, 6, 7]
    with pytest.raises(ValueError, match="multiple of 2"):
        second.shard_size(7)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(ValueError, match="torchrun --nproc_per_node"):
        start(True)
    assert not start(None).active and not start(False).active
    with pytest.raises(ValueError, match="distributed="):
        rftlab.TrainConfig(distributed="yes")


if __name__ == "__main__":
    _worker(Path(sys.argv[1]))
