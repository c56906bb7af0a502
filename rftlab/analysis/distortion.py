"""Feature distortion: how far fine-tuning moves features, layer by layer, on ID and OOD data;
Lipsum-FT's energy gap; WiSE-FT curves and effective robustness.

Layer features come from the image tower's ``forward_intermediates`` (open_clip's ViTs and
timm towers, rftlab's world CNN included: its four stage outputs) or, for towers without it or
when ``layers`` names modules, from forward hooks on those modules.
"""
from __future__ import annotations

import copy
import math
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from ..cache import as_cache, cached_encode_split
from ..classifier import as_classifier
from ..data import Split, Task
from ..encode import clip_of, encode_text, image_tower
from ..methods.wiseft import ALPHAS, wise_ft
from ._common import check_classes, check_pair, first_value, logit_scale
from .inputs import image_features, resolve_split

_CONTAINERS = ("trunk.stages", "trunk.blocks", "trunk.layers", "transformer.resblocks", "stages", "blocks", "layers")


def _pool(x: torch.Tensor, pool: str) -> torch.Tensor:
    if pool == "flatten" or x.ndim == 2:
        return x.flatten(1)
    if x.ndim == 4:   # N, C, H, W
        return x.mean(dim=(2, 3))
    if x.ndim == 3:   # N, L, C (tokens)
        return x.mean(dim=1)
    raise ValueError(f"cannot pool a layer output of shape {tuple(x.shape)}")


def _has_intermediates(visual) -> bool:
    return callable(getattr(visual, "forward_intermediates", None))


def default_layers(model) -> list[str]:
    """Module names (inside ``model.visual``) hooked when the tower has no ``forward_intermediates``:
    the children of its first block container (stages, blocks, resblocks), else its top-level children."""
    visual = clip_of(model).visual
    modules = dict(visual.named_modules())
    for name in _CONTAINERS:
        if name in modules:
            return [f"{name}.{child}" for child, _ in modules[name].named_children()]
    return [name for name, _ in visual.named_children()]


def layer_source(model, layers: Sequence[str] | None = None) -> str:
    """``"forward_intermediates"`` or ``"hooks"``: how :func:`layer_features` reads this model's layers."""
    if layers is None and _has_intermediates(clip_of(model).visual):
        return "forward_intermediates"
    return "hooks"


@torch.no_grad()
def layer_features(model, data: Task | Split, transform=None, *, split: str = "test",
                   layers: Sequence[str] | None = None, pool: str = "mean",
                   batch_size: int = 256) -> dict[str, torch.Tensor]:
    """Per-layer image representations {layer name: (N, d)} on the CPU, in depth order.

    With ``layers=None`` the tower's ``forward_intermediates`` gives its block outputs, named
    ``layer0``, ``layer1``...; otherwise forward hooks read the named modules of
    ``model.visual`` (see :func:`default_layers`). The last entry, ``embedding``, is the
    normalised image feature. ``pool``: ``mean`` averages spatial positions (N,C,H,W) or
    tokens (N,L,C); ``flatten`` keeps every position.
    """
    if pool not in ("mean", "flatten"):
        raise ValueError(f"pool={pool!r}: choose 'mean' or 'flatten'")
    if transform is None:
        raise ValueError("layer features need the image transform: pass transform=clip.preprocess")
    s, _ = resolve_split(data, split)
    clf = as_classifier(model, features_only=True)
    clip = clf.clip
    visual = clip.visual
    source = layer_source(clip, layers)
    hooked: dict[str, list] = {}
    handles = []
    if source == "hooks":
        names = list(layers) if layers is not None else default_layers(clip)
        modules = dict(visual.named_modules())
        missing = [n for n in names if n not in modules]
        if missing:
            sample = [n for n in modules if n][:8]
            raise ValueError(f"the image tower has no module(s) {missing}; its modules include {sample}")
        for n in names:
            hooked[n] = []
            handles.append(modules[n].register_forward_hook(
                lambda _m, _i, out, n=n: hooked[n].append(_pool(out[0] if isinstance(out, tuple) else out, pool).float().cpu())))
    device = next(clf.parameters()).device
    was = clf.training
    clf.eval()
    inter: list[list[torch.Tensor]] = []
    final = []
    try:
        for x, _, _ in s.batches(batch_size, transform, workers=None):
            x = x.to(device)
            if source == "forward_intermediates":
                out = visual.forward_intermediates(x)
                feats = out["image_features"]
                inter.append([_pool(t, pool).float().cpu() for t in out["image_intermediates"]])
            else:
                feats = visual(x)
            final.append(F.normalize(feats.float(), dim=-1).cpu())
    finally:
        for h in handles:
            h.remove()
        clf.train(was)
    if source == "forward_intermediates":
        result = {f"layer{i}": torch.cat([b[i] for b in inter]) for i in range(len(inter[0]))}
    else:
        result = {n: torch.cat(v) for n, v in hooked.items()}
    result["embedding"] = torch.cat(final)
    return result


def linear_cka(x: torch.Tensor, y: torch.Tensor) -> float:
    """Linear CKA between two representations of the same N samples, (N, d1) and (N, d2):
    ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F) with column-centred Xc, Yc. 1 for
    representations equal up to an orthogonal transform and isotropic scaling."""
    if x.ndim != 2 or y.ndim != 2 or len(x) != len(y):
        raise ValueError(f"linear_cka needs (N, d1) and (N, d2) for the same N; got {tuple(x.shape)} and {tuple(y.shape)}")
    if len(x) < 2:
        raise ValueError("linear_cka needs at least 2 samples")
    x = x.double() - x.double().mean(0)
    y = y.double() - y.double().mean(0)
    if x.shape[1] + y.shape[1] > 2 * len(x):   # Gram form is cheaper when features outnumber samples
        kx, ky = x @ x.t(), y @ y.t()
        num, dx, dy = (kx * ky).sum(), kx.norm(), ky.norm()
    else:
        num, dx, dy = (y.t() @ x).pow(2).sum(), (x.t() @ x).norm(), (y.t() @ y).norm()
    if dx == 0 or dy == 0:
        raise ValueError("linear_cka is undefined for a constant representation (zero variance)")
    return float(num / (dx * dy))


def layer_drift(theta0, theta, data: Task | Split | None = None, transform=None, *, split: str = "test",
                layers: Sequence[str] | None = None, pool: str = "mean",
                features0: Mapping[str, torch.Tensor] | None = None,
                features: Mapping[str, torch.Tensor] | None = None, batch_size: int = 256) -> list[dict]:
    """How far theta moved each layer's representation from theta0's, on one split.

    Rows, one per layer in depth order: ``layer``, ``depth``, ``cosine`` (mean over images of
    cos(h0_i, h_i)), ``cosine_drift`` (1 - cosine), ``cka`` (:func:`linear_cka` of H0 and H),
    ``relative_change`` (||H - H0||_F / ||H0||_F), ``n``, ``dim``. Pass ``features0`` /
    ``features`` (dicts from :func:`layer_features`) to skip encoding.
    """
    check_pair(theta0, theta)
    if features0 is None or features is None:
        if data is None:
            raise ValueError("give data (a Task or Split) or both features0 and features")
        kw = dict(split=split, layers=layers, pool=pool, batch_size=batch_size)
        features0 = features0 if features0 is not None else layer_features(theta0, data, transform, **kw)
        features = features if features is not None else layer_features(theta, data, transform, **kw)
    if list(features0) != list(features):
        raise ValueError(f"the two feature dicts name different layers: {list(features0)} vs {list(features)}")
    rows = []
    for depth, name in enumerate(features0):
        h0, h = features0[name].float(), features[name].float()
        if h0.shape != h.shape:
            raise ValueError(f"layer {name!r}: shapes {tuple(h0.shape)} and {tuple(h.shape)} differ")
        cos = F.cosine_similarity(h0, h, dim=1).mean().item()
        rel = ((h - h0).norm() / h0.norm().clamp_min(1e-12)).item()
        rows.append({"layer": name, "depth": depth, "cosine": cos, "cosine_drift": 1.0 - cos,
                     "cka": linear_cka(h0, h), "relative_change": rel, "n": len(h0), "dim": h0.shape[1]})
    return rows


def feature_distortion(theta0, theta, task: Task, transform=None, *,
                       splits: Sequence[str] | Mapping[str, Split] | None = None,
                       layers: Sequence[str] | None = None, pool: str = "mean", batch_size: int = 256,
                       progress: bool = True) -> list[dict]:
    """:func:`layer_drift` on several splits (default: ID test and each OOD set), rows tagged
    with ``split`` (the set's name) and ``ood`` (False for the ID test set)."""
    if isinstance(splits, Mapping):
        named = dict(splits)
    else:
        if not isinstance(task, Task):
            raise TypeError("feature_distortion needs a Task (or pass splits={name: Split})")
        names = list(splits) if splits is not None else list(task.eval_splits())
        named = {n: resolve_split(task, n)[0] for n in names}
    from tqdm.auto import tqdm
    rows = []
    for name, s in tqdm(named.items(), desc="layer drift", disable=not progress):
        for r in layer_drift(theta0, theta, s, transform, layers=layers, pool=pool, batch_size=batch_size):
            rows.append({"split": name, "ood": name not in ("id", "test", "train", "val"), **r})
    return rows


@torch.no_grad()
def energy_gap(theta0, theta, data: Task | Split, tokenizer, transform=None, *, split: str = "test",
               m: int = 80, length: int = 8, seed: int = 0, features0: torch.Tensor | None = None,
               features: torch.Tensor | None = None, reduce: bool = True):
    """Lipsum-FT's energy gap on ``m`` random texts of ``length`` tokens (drawn with ``seed``):
    per image (1/2M) sum_m (s<phi(x), psi(t_m)> - s<phi0(x), psi(t_m)>)^2, with psi from theta0's
    text tower and s theta0's logit scale, exactly :func:`rftlab.losses.lipsum_regularizer`.

    Returns the mean over images (a float), or with ``reduce=False`` the per-image gaps (N,).
    """
    from ..losses import lipsum_regularizer
    from ..methods.lipsum import random_texts

    check_pair(theta0, theta)
    s, _ = resolve_split(data, split)
    f0 = image_features(theta0, s, transform, features0)
    f = image_features(theta, s, transform, features)
    clip0 = clip_of(theta0)
    tokens = random_texts(tokenizer, m, length, torch.Generator().manual_seed(seed))
    text = encode_text(clip0, tokens).float().cpu()
    scale = logit_scale(theta0)
    if reduce:
        return float(lipsum_regularizer(f, f0, text, scale))
    return torch.stack([lipsum_regularizer(f[i:i + 1], f0[i:i + 1], text, scale) for i in range(len(f))])


def wise_classifier(classifier0, classifier1, alpha: float):
    """A new classifier with the WiSE-FT weights (1 - alpha) * theta0 + alpha * theta1
    (:func:`rftlab.wise_ft` on the two state dicts); the inputs are left untouched."""
    check_pair(classifier0, classifier1)
    out = copy.deepcopy(classifier1)
    with torch.no_grad():
        out.load_state_dict(wise_ft(classifier0.state_dict(), classifier1.state_dict(), alpha))
    return out


def wise_curve(classifier0, classifier1, task, transform, alphas=ALPHAS, progress: bool = False,
               cache=None, batch_size: int = 256) -> list[dict]:
    """The WiSE-FT curve: the metrics of the interpolation at each alpha (0 = classifier0,
    1 = classifier1), one row ``{"alpha": a, **rftlab.evaluate(...)}`` per alpha.

    When the image towers are identical (LP, or any head-only method) heads are interpolated on
    features encoded once; otherwise each alpha is evaluated in full, through ``cache`` (a
    :class:`~rftlab.cache.FeatureCache` or a folder) when one is given. The curve of a run
    folder: :func:`rftlab.run_folder.wise_curve_of_run`."""
    from tqdm.auto import tqdm

    from ..evaluation import evaluate
    alphas = [float(a) for a in alphas]
    bad = [a for a in alphas if not 0.0 <= a <= 1.0]
    if not alphas or bad:
        raise ValueError(f"alphas must be numbers in [0, 1] (0 = zero-shot, 1 = fine-tuned); got {alphas}")
    check_pair(classifier0, classifier1)
    check_classes(classifier1, task)
    cache = as_cache(cache)
    sd0 = {k: v.detach().to(classifier1.head.device) for k, v in classifier0.state_dict().items()}
    sd1 = {k: v.detach() for k, v in classifier1.state_dict().items()}
    t0, t1 = image_tower(classifier0).state_dict(), image_tower(classifier1).state_dict()
    head_only = t0.keys() == t1.keys() and all(torch.equal(t0[k], t1[k].to(t0[k].device)) for k in t0)
    feats = {k: cached_encode_split(classifier1, s, transform, batch_size, cache=cache)
             for k, s in task.eval_splits().items()} if head_only else None
    probe = copy.deepcopy(classifier1).eval()
    rows = []
    for a in tqdm(alphas, desc="WiSE-FT curve", leave=False, **({} if progress else {"disable": True})):
        with torch.no_grad():
            probe.load_state_dict(wise_ft(sd0, sd1, a))
            if head_only:
                head, scale = probe.head.detach().float().cpu(), probe.scale.cpu()
                metrics = task.evaluate({k: scale * f @ head for k, f in feats.items()})
            else:
                metrics = evaluate(probe, task, transform, batch_size, cache=cache)
        rows.append({"alpha": a, **metrics})
    return rows


def _logit(p: float) -> float:
    p = min(max(p, 1e-4), 1 - 1e-4)
    return math.log(p / (1 - p))


def _sigmoid(z: float) -> float:
    return 1.0 / (1.0 + math.exp(-z))


def robustness_line(zeroshot: tuple[float, float], finetuned: tuple[float, float],
                    id_acc: Sequence[float], logit: bool = False) -> list[float]:
    """OOD accuracy the line through the zero-shot and fine-tuned (id_acc, ood_acc) points
    predicts at each ``id_acc``; with ``logit`` the line is straight in logit axes (Taori et al.)."""
    (x0, y0), (x1, y1) = zeroshot, finetuned
    t = _logit if logit else float
    if abs(t(x1) - t(x0)) < 1e-12:
        raise ValueError("the zero-shot and fine-tuned models have the same ID accuracy: the line between "
                         "them is vertical, so effective robustness is undefined")
    slope = (t(y1) - t(y0)) / (t(x1) - t(x0))
    out = [t(y0) + slope * (t(x) - t(x0)) for x in id_acc]
    return [_sigmoid(v) for v in out] if logit else out


def _points(points) -> list[dict]:
    if isinstance(points, Mapping):
        return [{"method": k, "id_acc": first_value(v["id_acc"]), "mean_ood_acc": first_value(v["mean_ood_acc"])}
                for k, v in points.items()]
    rows = []
    for p in points:
        if isinstance(p, Mapping):
            if "method" not in p:
                raise ValueError(f"each point needs a 'method' key; got {sorted(p)}")
            rows.append({"method": p["method"], "id_acc": first_value(p["id_acc"]),
                         "mean_ood_acc": first_value(p["mean_ood_acc"])})
        else:
            m, i, o = p
            rows.append({"method": m, "id_acc": float(i), "mean_ood_acc": float(o)})
    for r in rows:
        if r["id_acc"] is None or r["mean_ood_acc"] is None:
            raise ValueError(f"point {r['method']!r} has no id_acc or mean_ood_acc (a task without OOD sets?)")
    return rows


def effective_robustness(points, zeroshot: tuple[float, float] | None = None,
                         finetuned: tuple[float, float] | None = None, *,
                         reference: tuple[str, str] = ("zeroshot", "ft"), logit: bool = False) -> list[dict]:
    """Place (method, id_acc, mean_ood_acc) points against the zero-shot-to-FT line.

    ``points``: {method: metrics} (``rftlab.evaluate`` dicts or ``rftlab.compare`` rows), or a
    list of such dicts with a ``method`` key, or of (method, id_acc, mean_ood_acc) tuples.
    The line runs through ``zeroshot`` and ``finetuned`` (id, ood) pairs, by default the points
    named ``reference``. Rows add ``line_ood`` (the line's OOD accuracy at the point's ID
    accuracy), ``effective_robustness`` (mean_ood_acc - line_ood; > 0 above the line),
    ``id_gain`` (id_acc minus zero-shot ID accuracy) and ``reference`` (True for the two ends).
    """
    rows = _points(points)
    by_name = {r["method"]: r for r in rows}
    ends = []
    for given, name in ((zeroshot, reference[0]), (finetuned, reference[1])):
        if given is not None:
            ends.append((float(given[0]), float(given[1])))
        elif name in by_name:
            ends.append((by_name[name]["id_acc"], by_name[name]["mean_ood_acc"]))
        else:
            raise ValueError(f"no reference point {name!r} among {list(by_name)}: pass zeroshot=(id, ood) "
                             "and finetuned=(id, ood), or reference=(name0, name1)")
    line = robustness_line(ends[0], ends[1], [r["id_acc"] for r in rows], logit=logit)
    out = []
    for r, lo in zip(rows, line):
        out.append({**r, "line_ood": lo, "effective_robustness": r["mean_ood_acc"] - lo,
                    "id_gain": r["id_acc"] - ends[0][0],
                    "reference": (zeroshot is None and r["method"] == reference[0])
                    or (finetuned is None and r["method"] == reference[1])})
    return out
