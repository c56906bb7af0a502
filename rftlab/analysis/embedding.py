"""Embedding drift: 2-D views of image embeddings of theta0 and theta, fit jointly.

:class:`Projector` is fit once and then maps any new features (a WiSE-FT alpha slider moves
points without refitting). PCA is the fast, exact path; UMAP (umap-learn) is optional and
falls back to PCA, with a warning saying why, when it cannot run.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch

from ..data import Split, Task
from ._common import check_pair, value_names, warn
from .inputs import image_features, resolve_split


def _import_umap():
    import warnings
    with warnings.catch_warnings():  # umap-learn warns at import that TensorFlow (ParametricUMAP) is absent
        warnings.simplefilter("ignore")
        import umap
    return umap


class Projector:
    """Maps D-dimensional features to ``n_components`` (2 by default) with PCA or UMAP.

    ``fit`` takes one (N, D) tensor or several (fit jointly on their concatenation);
    ``transform`` maps new features with the fitted map. ``method_used`` says what was
    actually fit (``"pca"`` after a UMAP fallback). PCA components have a fixed sign (each
    component's largest-magnitude entry is positive), so refits of the same data agree.
    """

    def __init__(self, method: str = "pca", n_components: int = 2, seed: int = 0, n_neighbors: int = 15,
                 **umap_kwargs):
        if method not in ("pca", "umap"):
            raise ValueError(f"method={method!r}: choose 'pca' or 'umap'")
        if n_components < 1:
            raise ValueError("n_components must be at least 1")
        self.method, self.n_components, self.seed = method, n_components, seed
        self.n_neighbors, self.umap_kwargs = n_neighbors, umap_kwargs
        self.method_used: str | None = None
        self.mean = self.components = self.explained_variance_ratio = None
        self._umap = None
        self._fit_output: torch.Tensor | None = None

    @staticmethod
    def _stack(features) -> tuple[torch.Tensor, list[int]]:
        parts = [features] if isinstance(features, torch.Tensor) else list(features)
        if not parts:
            raise ValueError("nothing to fit: give an (N, D) tensor or a list of them")
        parts = [torch.as_tensor(p).float().cpu() for p in parts]
        dims = {p.shape[1] if p.ndim == 2 else None for p in parts}
        if None in dims or len(dims) != 1:
            raise ValueError(f"features must be (N, D) tensors of one width; got shapes {[tuple(p.shape) for p in parts]}")
        return torch.cat(parts), [len(p) for p in parts]

    def fit(self, features: torch.Tensor | Sequence[torch.Tensor]) -> "Projector":
        x, _ = self._stack(features)
        self.mean = self.components = self.explained_variance_ratio = self._umap = None
        n, d = x.shape
        if n < 2 or min(n, d) < self.n_components:
            raise ValueError(f"cannot project {n} samples of {d} dimensions onto {self.n_components} components")
        method = self.method
        if method == "umap":
            if n <= max(self.n_neighbors, self.n_components + 2):
                warn(f"UMAP needs more samples than n_neighbors={self.n_neighbors}; got {n}: fell back to PCA")
                method = "pca"
            else:
                try:
                    _import_umap()
                except ImportError:
                    warn("umap-learn is not installed: fell back to PCA (pip install umap-learn for UMAP)")
                    method = "pca"
        if method == "pca":
            self.mean = x.mean(0)
            _, sv, vh = torch.linalg.svd(x.double() - self.mean.double(), full_matrices=False)
            comp = vh[: self.n_components]
            sign = torch.sign(comp.gather(1, comp.abs().argmax(1, keepdim=True)))
            self.components = (comp * sign).float()
            var = sv.pow(2)
            self.explained_variance_ratio = (var[: self.n_components] / var.sum().clamp_min(1e-30)).float()
            self._fit_output = self.transform(x)
        else:
            umap = _import_umap()
            self._umap = umap.UMAP(n_components=self.n_components, n_neighbors=self.n_neighbors,
                                   random_state=self.seed, **self.umap_kwargs)
            import warnings
            with warnings.catch_warnings():  # "n_jobs overridden by random_state": expected, we ask for a seed
                warnings.filterwarnings("ignore", message="n_jobs value")
                self._fit_output = torch.as_tensor(self._umap.fit_transform(x.numpy())).float()
        self.method_used = method
        return self

    def transform(self, features: torch.Tensor) -> torch.Tensor:
        """(N, n_components) coordinates of new features under the fitted map."""
        if self.components is None and self._umap is None:
            raise ValueError("this Projector is not fitted yet: call fit(features) first")
        x = torch.as_tensor(features).float().cpu()
        d = self.components.shape[1] if self.components is not None else self._umap._raw_data.shape[1]
        if x.ndim != 2 or x.shape[1] != d:
            raise ValueError(f"features must be (N, {d}) like the fitted ones; got {tuple(x.shape)}")
        if self.components is not None and self._umap is None:
            return (x - self.mean) @ self.components.t()
        return torch.as_tensor(self._umap.transform(x.numpy())).float()

    def fit_transform(self, features: torch.Tensor | Sequence[torch.Tensor]):
        """Fit, then the coordinates of the fit data: a tensor for a tensor, a list for a list."""
        self.fit(features)
        _, sizes = self._stack(features)
        out = self._fit_output
        return out if isinstance(features, torch.Tensor) else list(out.split(sizes))


def points_table(coords: torch.Tensor, data: Task | Split, *, split: str = "test", model: str = "theta") -> list[dict]:
    """Rows for a scatter: ``x, y, model, index, class`` (class name), ``label`` (class index) and
    every metadata key of the split as a readable name (group, domain, background...)."""
    s, task = resolve_split(data, split)
    coords = torch.as_tensor(coords)
    if len(coords) != len(s):
        raise ValueError(f"{len(coords)} points but split {s.name!r} has {len(s)} samples")
    cols = {}
    for key in s.meta:
        vals = torch.as_tensor(s.meta[key])
        names = value_names(key, task, vals)
        cols[key] = [names[int(v)] for v in vals]
    classes = task.classnames if task is not None else None
    rows = []
    for i in range(len(s)):
        y = int(s.labels[i])
        r = {"x": coords[i, 0].item(), "y": coords[i, 1].item() if coords.shape[1] > 1 else 0.0,
             "model": model, "index": i, "label": y, "class": classes[y] if classes else str(y)}
        r.update({k: v[i] for k, v in cols.items()})
        rows.append(r)
    return rows


@dataclass
class EmbeddingDrift:
    """Projected points of theta0 and theta (``points``) and the fitted ``projector``."""

    points: list[dict]
    projector: Projector
    coords0: torch.Tensor
    coords: torch.Tensor


def embedding_drift(theta0, theta, data: Task | Split, transform=None, *, split: str = "test",
                    method: str = "pca", seed: int = 0, projector: Projector | None = None,
                    features0: torch.Tensor | None = None, features: torch.Tensor | None = None) -> EmbeddingDrift:
    """2-D views of theta0's and theta's image embeddings of one split, fit jointly on both
    (or mapped by a given, already fitted ``projector``). Points are tagged ``model`` =
    ``theta0`` / ``theta`` and carry the class and metadata names (:func:`points_table`)."""
    check_pair(theta0, theta)
    s, _ = resolve_split(data, split)
    f0 = image_features(theta0, s, transform, features0)
    f1 = image_features(theta, s, transform, features)
    if projector is None:
        projector = Projector(method, seed=seed)
        c0, c1 = projector.fit_transform([f0, f1])
    else:
        c0, c1 = projector.transform(f0), projector.transform(f1)
    points = points_table(c0, data, split=split, model="theta0") + points_table(c1, data, split=split, model="theta")
    return EmbeddingDrift(points, projector, c0, c1)
