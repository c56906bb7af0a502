"""The dataset interface every task uses, world-generated or read from disk.

A :class:`Task` holds splits (train, val, the ID test set and any OOD test sets), class
names, prompt templates and per-sample metadata, and owns its evaluation: given logits
for its test sets it returns the metrics of rftlab's protocol, per group and worst group
included (as WILDS datasets do).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Sequence

import torch

from .metrics import accuracy, ece, nll


@dataclass
class Split:
    """One split: images (a uint8 tensor (N,3,H,W), or anything ``load_image`` reads), labels,
    and per-sample metadata tensors (``group``, ``domain``, factors...)."""

    name: str
    images: torch.Tensor | Sequence
    labels: torch.Tensor
    meta: dict[str, torch.Tensor] = field(default_factory=dict)
    load_image: Callable | None = None  # for path-backed splits: path -> image for the transform

    def __post_init__(self):
        self.labels = torch.as_tensor(self.labels, dtype=torch.long)
        if len(self.images) != len(self.labels):
            raise ValueError(f"split {self.name!r}: {len(self.images)} images but {len(self.labels)} labels")
        for k, v in self.meta.items():
            if len(v) != len(self.labels):
                raise ValueError(f"split {self.name!r}: metadata {k!r} has {len(v)} rows, expected {len(self.labels)}")

    def __len__(self) -> int:
        return len(self.labels)

    def get(self, index: torch.Tensor, transform: Callable) -> torch.Tensor:
        """A batch of transformed images for the given indices."""
        if isinstance(self.images, torch.Tensor):
            return transform(self.images[index])
        load = self.load_image or (lambda p: p)
        return torch.stack([transform(load(self.images[int(i)])) for i in index])

    def batches(self, batch_size: int, transform: Callable, shuffle: bool = False, seed: int = 0,
                start: int = 0) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield (images, labels, indices). With ``shuffle`` the stream is endless, epoch after epoch,
        each epoch a permutation drawn from (seed, epoch); ``start`` skips that many batches,
        which makes a resumed run see exactly the batches an uninterrupted one would."""
        n = len(self)
        if n == 0:
            raise ValueError(f"split {self.name!r} is empty: nothing to iterate over")
        if not shuffle:
            for i in range(0, n, batch_size):
                idx = torch.arange(i, min(n, i + batch_size))
                yield self.get(idx, transform), self.labels[idx], idx
            return
        per_epoch = max(1, n // batch_size)  # drop the last partial batch when shuffling
        b, perm_epoch, perm = start, None, None
        while True:
            epoch, k = divmod(b, per_epoch)
            if epoch != perm_epoch:
                perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
                perm_epoch = epoch
            idx = perm[k * batch_size:(k + 1) * batch_size]
            yield self.get(idx, transform), self.labels[idx], idx
            b += 1


@dataclass
class Task:
    """A classification task with its splits and its own evaluation."""

    name: str
    classnames: list[str]
    templates: list[str]
    train: Split
    val: Split
    test: Split
    ood: dict[str, Split] = field(default_factory=dict)
    group_names: list[str] | None = None
    id_domain: str = "id"
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        for s in (self.train, self.val, self.test, *self.ood.values()):
            if len(s) == 0:
                raise ValueError(f"task {self.name!r}: split {s.name!r} is empty; give it at least one sample")
            bad = s.labels[(s.labels < 0) | (s.labels >= len(self.classnames))]
            if bad.numel():
                raise ValueError(f"task {self.name!r}: split {s.name!r} has labels outside 0..{len(self.classnames) - 1}")

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    @property
    def has_groups(self) -> bool:
        return self.group_names is not None and "group" in self.test.meta

    def eval_splits(self) -> dict[str, Split]:
        """The test sets: ``id`` (the ID test split) then each OOD set."""
        return {"id": self.test, **self.ood}

    def evaluate(self, logits: Mapping[str, torch.Tensor], n_bins: int = 15) -> dict:
        """Metrics of rftlab's protocol from logits of every test set (keys as ``eval_splits``).

        Keys: id_acc, ood_acc (domain -> acc), mean_ood_acc, avg_acc (pooled over every test
        sample), worst_group_acc (None without groups), group_acc, weighted_acc (train-frequency
        weighted), ece (ID, pooled, ``n_bins`` bins), ood_ece, nll.
        """
        splits = self.eval_splits()
        missing = set(splits) - set(logits)
        if missing:
            raise ValueError(f"evaluate() needs logits for {sorted(missing)}")
        out: dict = {}
        id_logits = logits["id"]
        if id_logits.shape != (len(self.test), self.num_classes):
            raise ValueError(f"ID logits have shape {tuple(id_logits.shape)}, expected "
                             f"({len(self.test)}, {self.num_classes}): model head and task disagree")
        out["id_acc"] = accuracy(id_logits, self.test.labels)
        out["ood_acc"] = {k: accuracy(logits[k], s.labels) for k, s in self.ood.items()}
        out["mean_ood_acc"] = (sum(out["ood_acc"].values()) / len(self.ood)) if self.ood else None
        correct = sum(int((logits[k].argmax(1) == s.labels).sum()) for k, s in splits.items())
        out["avg_acc"] = correct / sum(len(s) for s in splits.values())
        probs = id_logits.float().softmax(1)
        out["ece"] = ece(probs, self.test.labels, n_bins=n_bins)
        out["ood_ece"] = {k: ece(logits[k].float().softmax(1), s.labels, n_bins=n_bins) for k, s in self.ood.items()}
        out["nll"] = nll(id_logits, self.test.labels)
        out.update(self.group_metrics(id_logits))
        return out

    def group_metrics(self, logits: torch.Tensor, split: str = "test") -> dict:
        s = getattr(self, split)
        if not self.has_groups:
            return {"worst_group_acc": None, "group_acc": None, "weighted_acc": None}
        g = s.meta["group"]
        right = (logits.argmax(1) == s.labels).float()
        group_acc = {}
        for k, name in enumerate(self.group_names):
            m = g == k
            if m.any():
                group_acc[name] = right[m].mean().item()
        train_counts = torch.bincount(self.train.meta["group"], minlength=len(self.group_names)).float()
        w = {name: train_counts[k].item() for k, name in enumerate(self.group_names) if name in group_acc}
        total = sum(w.values())
        weighted = sum(group_acc[n] * w[n] for n in group_acc) / total if total else math.nan
        return {"worst_group_acc": min(group_acc.values()), "group_acc": group_acc, "weighted_acc": weighted}

    def summary(self) -> str:
        lines = [f"task {self.name}: {self.num_classes} classes ({', '.join(self.classnames[:8])}"
                 f"{'...' if self.num_classes > 8 else ''})"]
        for s in (self.train, self.val, self.test, *self.ood.values()):
            lines.append(f"  {s.name:<12} {len(s):>6} samples")
        return "\n".join(lines)
