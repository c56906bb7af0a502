"""Data-parallel training across processes (``torchrun``), on NCCL (GPUs) or gloo (CPU).

Every rank holds the same model and draws the same global batch stream; each takes its
equal shard of every batch. The training loop averages gradients with one all-reduce after
``backward`` (no ``DistributedDataParallel`` wrapper: methods call ``classifier.features``
and ``clip.encode_text`` directly, which a wrapper's ``forward`` would not see).

The rule that makes a distributed step equal a single-process step on the whole batch:
the average over ranks of the rank losses equals the single-process loss, and every
collective inside the graph has its exact adjoint. Batch-mean terms computed on a shard
(CE, Lipsum-FT, CAR-FT's KL) and terms without the batch (L2-SP, CaRot's projections)
satisfy it when shards are equal; batch-coupled terms (contrastive losses, B x B KLs) are
computed on features gathered with :meth:`Ranks.gather_with_grad`, whose backward sums the
gradient over ranks, so every rank computes the same global loss. BatchNorm layers (open_clip
ResNets) never use batch statistics in rftlab's loop (they run on their pretrained statistics:
see ``rftlab.train.freeze_batchnorm``), so nothing else couples the batch.
"""
from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from typing import Callable, Iterator

import torch
import torch.distributed as dist
from torch import nn


class _GatherRows(torch.autograd.Function):
    """Concatenate every rank's rows; backward sums the incoming gradient over ranks and
    returns this rank's rows (the adjoint of the gather)."""

    @staticmethod
    def forward(ctx, x):
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rows = (dist.get_rank() * x.shape[0], (dist.get_rank() + 1) * x.shape[0])
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rows[0]:ctx.rows[1]]


@dataclass(frozen=True)
class Ranks:
    """This process's place among the data-parallel processes. With ``size == 1`` (the
    default) every method is the identity, so single-process code pays nothing."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device | None = None

    @property
    def active(self) -> bool:
        return self.size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # ---- batch sharding ----------------------------------------------------------------
    def shard_size(self, batch_size: int) -> int:
        """Rows per rank of a global batch; refuses batches that do not split evenly."""
        if batch_size % self.size:
            raise ValueError(f"batch_size={batch_size} does not split evenly over {self.size} processes: "
                             f"use a multiple of {self.size} (it is the global batch, shared by all ranks)")
        return batch_size // self.size

    def shard(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's rows of a tensor that covers the whole global batch."""
        if not self.active:
            return x
        n = self.shard_size(len(x))
        return x[self.rank * n:(self.rank + 1) * n]

    def batches(self, split, batch_size: int, transform: Callable, seed: int = 0, start: int = 0,
                workers: int | None = 0, pin_memory: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """The shuffled training stream of ``split.batches``; on several ranks each yields its
        shard of every global batch, loading only its own images (``workers`` and
        ``pin_memory`` as in :meth:`rftlab.data.Split.batches`, per rank)."""
        self.shard_size(batch_size)
        stream = split.index_batches(batch_size, shuffle=True, seed=seed, start=start)
        return split.load(map(self.shard, stream), transform, workers, pin_memory)

    # ---- collectives (identity on one rank) ---------------------------------------------
    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """Every rank's ``x`` concatenated along dim 0, in rank order; no gradient."""
        if not self.active:
            return x
        parts = [torch.empty_like(x) for _ in range(self.size)]
        dist.all_gather(parts, x.detach().contiguous())
        return torch.cat(parts)

    def gather_with_grad(self, x: torch.Tensor) -> torch.Tensor:
        """As :meth:`gather`, with the gradient of every rank's loss flowing back to this rank's rows
        (summed over ranks): compute the same global loss on every rank from gathered features."""
        return _GatherRows.apply(x) if self.active else x

    def mean_terms(self, terms: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Loss terms averaged over ranks (detached): the whole batch's values, for the history."""
        if not self.active:
            return terms
        device = terms["loss"].device
        values = torch.stack([v.detach().double().reshape(()).to(device) for v in terms.values()])
        dist.all_reduce(values)
        return dict(zip(terms, values / self.size))

    def average_grads(self, params, bucket_mb: float = 32.0) -> None:
        """Replace each ``p.grad`` by its mean over ranks, in flat buckets (one all-reduce each).
        Every rank must have gradients for the same parameters (the same graph)."""
        if not self.active:
            return
        grads = list({id(p): p.grad for p in params if p.grad is not None}.values())
        limit = bucket_mb * 2 ** 20
        bucket: list[torch.Tensor] = []
        for g in grads + [None]:
            full = bucket and (g is None or g.dtype != bucket[0].dtype or g.device != bucket[0].device
                               or sum(b.numel() * b.element_size() for b in bucket) >= limit)
            if full:
                flat = torch.cat([b.reshape(-1) for b in bucket])
                dist.all_reduce(flat)
                flat /= self.size
                for b, v in zip(bucket, flat.split([b.numel() for b in bucket])):
                    b.copy_(v.view_as(b))
                bucket = []
            if g is not None:
                bucket.append(g)

    def broadcast_module(self, module: nn.Module) -> None:
        """Copy rank 0's parameters and buffers into every rank's ``module``, in place."""
        if not self.active:
            return
        with torch.no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)

    def on_main(self, fn: Callable, *args, **kwargs):
        """``fn(*args, **kwargs)`` run on rank 0 only; every rank gets its (picklable) result."""
        if not self.active:
            return fn(*args, **kwargs)
        box = [fn(*args, **kwargs) if self.is_main else None]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.active:
            dist.barrier()


def launched() -> bool:
    """True inside a multi-process launch (``torchrun`` sets WORLD_SIZE) or an initialised group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size() > 1
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def start(enabled: bool | None = None, device: str | torch.device | None = None) -> Ranks:
    """This process's :class:`Ranks`. ``enabled``: None = data-parallel when launched by
    ``torchrun`` with several processes, True = required, False = never. Initialises the
    default process group when needed (NCCL for CUDA devices, gloo otherwise); each rank
    uses ``cuda:LOCAL_RANK`` when the device is CUDA without an index. Idempotent."""
    if enabled not in (None, True, False):
        raise TypeError(f"distributed={enabled!r}: use None (automatic under torchrun), True or False")
    device = torch.device(device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    if enabled is False or not launched():
        if enabled:
            raise ValueError("distributed=True needs several processes: launch with "
                             "`torchrun --nproc_per_node N ...` (WORLD_SIZE is not set above 1)")
        return Ranks(device=device)
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device.type == "cuda":
        if device.index is None:
            device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(shutdown)
    if dist.get_backend() == "nccl" and device.type != "cuda":
        raise ValueError(f"the process group uses NCCL, which needs CUDA tensors, but the device is {device}: "
                         "train on CUDA or initialise the group with backend='gloo'")
    return Ranks(dist.get_rank(), dist.get_world_size(), local, device)


def shutdown() -> None:
    """Tear the default process group down (registered at exit by :func:`start`)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_main() -> bool:
    """True on rank 0, or when not distributed: guard printing and writing files with it."""
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
