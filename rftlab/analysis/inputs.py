"""What an analysis reads: the split to analyse (a Task's split by name, pooled test sets, a
subsample) and its image features (precomputed, cached or encoded)."""
from __future__ import annotations

from typing import Sequence

import torch

from ..cache import cached_encode_split
from ..classifier import as_classifier
from ..data import Split, Task
from ..encode import embed_dim


def resolve_split(data: Task | Split, split: str = "test") -> tuple[Split, Task | None]:
    """(the Split to analyse, its Task or None). ``split`` names a Task split: train, val,
    test (or id), an OOD set's name, or ``all`` (every test set pooled: ID then each OOD)."""
    if isinstance(data, Split):
        return data, None
    if not isinstance(data, Task):
        raise TypeError(f"expected a Task or a Split; got {type(data).__name__}")
    if split in ("test", "id"):
        return data.test, data
    if split in ("train", "val"):
        return getattr(data, split), data
    if split == "all":
        return concat_splits(list(data.eval_splits().values()), name="all"), data
    if split in data.ood:
        return data.ood[split], data
    raise ValueError(f"task {data.name!r} has no split {split!r}; choose train, val, test, all"
                     + (f" or an OOD set: {', '.join(data.ood)}" if data.ood else ""))


def concat_splits(splits: Sequence[Split], name: str = "pooled") -> Split:
    """One Split from several: images, labels and the metadata keys they all share."""
    if not splits:
        raise ValueError("nothing to pool: give at least one split")
    if len(splits) == 1:
        return splits[0]
    keys = set.intersection(*(set(s.meta) for s in splits))
    if all(isinstance(s.images, torch.Tensor) for s in splits):
        images = torch.cat([s.images for s in splits])
    else:
        images = [x for s in splits for x in s.images]
    meta = {k: torch.cat([torch.as_tensor(s.meta[k]) for s in splits]) for k in sorted(keys)}
    loaders = {s.load_image for s in splits}
    return Split(name, images, torch.cat([s.labels for s in splits]), meta,
                 next(iter(loaders)) if len(loaders) == 1 else None)


def subsample(data: Task | Split, n: int, seed: int = 0, by: str | None = "group") -> Task | Split:
    """A smaller copy: at most ``n`` samples per split, drawn without replacement.

    With ``by`` (a metadata key, default ``group`` where present) each value keeps a share
    as equal as possible, so small minority groups are not lost. On a Task every split
    (train, val, test, each OOD set) is cut to ``n``.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1; got {n}")
    if isinstance(data, Task):
        import dataclasses
        cut = {k: subsample(getattr(data, k), n, seed, by) for k in ("train", "val", "test")}
        ood = {k: subsample(s, n, seed, by) for k, s in data.ood.items()}
        return dataclasses.replace(data, ood=ood, **cut)
    if not isinstance(data, Split):
        raise TypeError(f"expected a Task or a Split; got {type(data).__name__}")
    if len(data) <= n:
        return data
    g = torch.Generator().manual_seed(seed)
    if by and by in data.meta:
        key = torch.as_tensor(data.meta[by])
        pools = [torch.nonzero(key == v).flatten() for v in torch.unique(key)]
        pools = [p[torch.randperm(len(p), generator=g)] for p in pools]
        take, i = [], 0
        while len(take) < n:  # round robin over the values
            for p in pools:
                if i < len(p) and len(take) < n:
                    take.append(int(p[i]))
            i += 1
        idx = torch.tensor(sorted(take))
    else:
        idx = torch.randperm(len(data), generator=g)[:n].sort().values
    return data.select(idx)  # keeps the image loader, class subset and pool


def image_features(model, split: Split, transform=None, features: torch.Tensor | None = None,
                   batch_size: int = 256, cache=None) -> torch.Tensor:
    """Normalised image features (N, D) of ``split`` on the CPU: ``features`` when given (checked
    against the split's length and the model's embedding width), else encoded with
    :func:`rftlab.encode.encode_split`, through ``cache`` when given (a
    :class:`~rftlab.cache.FeatureCache`, a folder, or True for the default folder)."""
    dim = embed_dim(model)
    if features is not None:
        features = torch.as_tensor(features).float().cpu()
        if features.ndim != 2 or len(features) != len(split):
            raise ValueError(f"precomputed features have shape {tuple(features.shape)} but split {split.name!r} "
                             f"has {len(split)} samples: pass the features of this split, (N, D)")
        if features.shape[1] != dim:
            raise ValueError(f"precomputed features are {features.shape[1]}-dimensional but the model embeds "
                             f"into {dim}: they come from another model")
        return features
    if transform is None:
        raise ValueError("encoding images needs their transform: pass transform=clip.preprocess "
                         "(or precomputed features=...)")
    return cached_encode_split(as_classifier(model, features_only=True), split, transform, batch_size, cache=cache)
