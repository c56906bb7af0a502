"""Image features on disk: encode a split once per (image tower, preprocessing, split).

The key is a SHA-256 over three fingerprints:

* the image tower's weights: every tensor of its state dict (name, dtype, shape and raw
  bytes), so any change to any weight or buffer gives a new key. Only the image tower is
  hashed (``classifier.clip.visual``): the head, the scale and the text tower do not change
  image features, so a linear probe, head-only WiSE-FT or a new prompt reuse the same entry.
  Hashing every byte is the chosen fingerprint (no sampling, so no change can slip through);
  it is one SHA-256 pass over the tower's weights per lookup, small next to encoding any real
  split with that tower (``benchmarks/cache_speed.py`` prints its time for a ViT-B/32 tower);
* the preprocessing: ``repr(transform)`` with memory addresses removed;
* the split: its name, length, a hash of its labels and a hash of its images (the bytes of
  an image tensor, or the list of image paths and the ``load_image`` function's name).
  Files edited in place under unchanged paths are not noticed: clear the cache then.

Files are ``<dir>/<key>.pt``, written to a temporary file and renamed, so a crash never
leaves half a file under a key; an unreadable file is recomputed with a warning. The folder
is ``~/.cache/rftlab/features`` unless ``RFTLAB_CACHE_DIR`` or an argument says otherwise.
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from .data import Split, Task
from .encode import encode_split, image_tower

ENV_VAR = "RFTLAB_CACHE_DIR"
DEFAULT_DIR = "~/.cache/rftlab/features"


def default_cache_dir() -> Path:
    """``$RFTLAB_CACHE_DIR`` if set, else ``~/.cache/rftlab/features``."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_DIR).expanduser()


# ---------------------------------------------------------------------- fingerprints
def _tensor_bytes(t: torch.Tensor) -> memoryview:
    return t.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().data


def weights_fingerprint(module: nn.Module) -> str:
    """SHA-256 of every tensor in ``module.state_dict()`` (names, dtypes, shapes, bytes)."""
    h = hashlib.sha256(type(module).__qualname__.encode())
    for name, t in module.state_dict().items():
        h.update(f"|{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(_tensor_bytes(t))
    return h.hexdigest()


def transform_fingerprint(transform: Callable) -> str:
    """SHA-256 of ``repr(transform)`` without memory addresses (stable across processes)."""
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", repr(transform))
    return hashlib.sha256(text.encode()).hexdigest()


def split_fingerprint(split: Split) -> str:
    """SHA-256 of a split's name, length, labels and images (tensor bytes, or paths)."""
    h = hashlib.sha256(f"{split.name}|{len(split)}|".encode())
    h.update(_tensor_bytes(split.labels))
    if isinstance(split.images, torch.Tensor):
        h.update(f"tensor|{split.images.dtype}|{tuple(split.images.shape)}|".encode())
        h.update(_tensor_bytes(split.images))
    else:
        load = split.load_image
        h.update(f"paths|{getattr(load, '__module__', '')}.{getattr(load, '__qualname__', repr(load))}|".encode())
        h.update("\n".join(str(p) for p in split.images).encode())
    return h.hexdigest()


class FeatureCache:
    """Normalised image features of splits, kept on disk under a key of model, transform and split.

    >>> cache = FeatureCache()                        # ~/.cache/rftlab/features
    >>> feats = cache.features(classifier, task.test, clip.preprocess)   # (N, D) on the CPU
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root).expanduser() if root is not None else default_cache_dir()
        if self.root.exists() and not self.root.is_dir():
            from .errors import BadFileError
            raise BadFileError(f"feature cache folder {self.root} is a file: give a folder (it is created if "
                               f"missing), or no folder for the default (${ENV_VAR} or {DEFAULT_DIR})", self.root)
        self.hits = 0
        self.misses = 0

    def __repr__(self):
        return f"FeatureCache({str(self.root)!r}, hits={self.hits}, misses={self.misses})"

    def key(self, model, split: Split, transform: Callable) -> str:
        parts = (weights_fingerprint(image_tower(model)), transform_fingerprint(transform), split_fingerprint(split))
        return hashlib.sha256("|".join(parts).encode()).hexdigest()

    def path(self, key: str) -> Path:
        return self.root / f"{key}.pt"

    def _read(self, path: Path, n: int) -> torch.Tensor | None:
        if not path.exists():
            return None
        try:
            from .files import load_torch
            payload = load_torch(path, "feature cache file")
            feats = payload["features"]
            if not (isinstance(feats, torch.Tensor) and feats.ndim == 2 and feats.shape[0] == n):
                raise ValueError(f"expected features of shape ({n}, D), found "
                                 f"{tuple(feats.shape) if isinstance(feats, torch.Tensor) else type(feats).__name__}")
            return feats
        except Exception as err:  # any unreadable file is recomputed, never trusted
            warnings.warn(f"feature cache file {path} is unreadable ({type(err).__name__}: {err}); "
                          f"recomputing it (the cache holds derived data only)", stacklevel=3)
            return None

    def _write(self, path: Path, payload: dict) -> None:
        from .files import save_torch
        save_torch(payload, path)

    def features(self, model, split: Split, transform: Callable, batch_size: int = 256,
                 device=None) -> torch.Tensor:
        """Features of ``split`` (N, D) on the CPU: read from disk, or encoded and stored
        (:func:`rftlab.encode.encode_split`). ``model``: anything :func:`rftlab.encode.clip_of` takes."""
        path = self.path(self.key(model, split, transform))
        feats = self._read(path, len(split))
        if feats is not None:
            self.hits += 1
            return feats
        self.misses += 1
        feats = encode_split(model, split, transform, batch_size, device)
        self._write(path, {"features": feats, "split": split.name, "n": len(split),
                           "transform": repr(transform), "tower": type(image_tower(model)).__name__})
        return feats

    def task_features(self, model, task: Task, transform: Callable, batch_size: int = 256,
                      device=None) -> dict[str, torch.Tensor]:
        """Features of every split of a task: ``train``, ``val``, then ``id`` and each OOD set."""
        splits = {"train": task.train, "val": task.val, **task.eval_splits()}
        return {k: self.features(model, s, transform, batch_size, device) for k, s in splits.items()}

    def clear(self) -> int:
        """Delete every cached file; returns how many were removed."""
        n = 0
        for p in list(self.root.glob("*.pt")) + list(self.root.glob("*.tmp")):
            p.unlink(missing_ok=True)
            n += 1
        return n


def as_cache(cache) -> FeatureCache | None:
    """None, a FeatureCache, True (the default folder) or a folder path -> a FeatureCache or None."""
    if cache is None or cache is False:
        return None
    if isinstance(cache, FeatureCache):
        return cache
    if cache is True:
        return FeatureCache()
    if isinstance(cache, (str, os.PathLike)):
        return FeatureCache(cache)
    raise TypeError(f"cache must be None, True, a folder path or a FeatureCache; got {type(cache).__name__}")


def cached_encode_split(classifier, split: Split, transform: Callable, batch_size: int = 256,
                        device=None, cache=None) -> torch.Tensor:
    """:func:`rftlab.encode.encode_split` through a feature cache (``cache=None``: no cache)."""
    store = as_cache(cache)
    if store is None:
        return encode_split(classifier, split, transform, batch_size, device)
    return store.features(classifier, split, transform, batch_size, device)
