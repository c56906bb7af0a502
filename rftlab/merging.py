"""Pure functions on weights for the post-hoc and merge methods: Model Stock and LiNeS.

Each takes state dicts (name -> tensor) and returns a new one; nothing is changed in place. Floating
tensors are combined; other tensors (integer buffers) are copied from the fine-tuned side; a tensor
equal at both ends is copied bit for bit, so an unchanged tower keeps its feature-cache key.
The rules are restated from the official releases (docs/methods.md gives each file).
"""
from __future__ import annotations

import itertools
import re

import torch

EPS = 1e-8   # Model Stock's release guards its cosine and its ratio with this


def _check_same(reference: dict, others: list[dict], what: str) -> None:
    for sd in others:
        if sd.keys() != reference.keys():
            only = sorted(set(sd) ^ set(reference))[:3]
            raise ValueError(f"{what}: the state dicts come from different architectures (keys not shared: {only})")
        for k, v in reference.items():
            if sd[k].shape != v.shape:
                raise ValueError(f"{what}: tensor {k!r} has shape {tuple(v.shape)} in one state dict and "
                                 f"{tuple(sd[k].shape)} in another: different architectures")


# ------------------------------------------------------------------------------------ Model Stock
def model_stock_cosine(updates: list[torch.Tensor]) -> torch.Tensor:
    """The cosine between fine-tuned updates ``w_i - w_0`` of one tensor, flattened: for two runs
    dot / (|v1| |v2| + eps), clamped to [-1, 1]; for more runs the mean of the pairwise cosines
    (the release shows two runs only; mergekit's reading for N > 2)."""
    if len(updates) < 2:
        raise ValueError("Model Stock needs at least two fine-tuned runs")
    cos = []
    for a, b in itertools.combinations([u.flatten().double() for u in updates], 2):
        cos.append((a @ b / ((a @ a * (b @ b)).sqrt() + EPS)).clamp(-1.0, 1.0))
    return torch.stack(cos).mean()


def model_stock_ratio(cos: torch.Tensor | float, n: int) -> torch.Tensor:
    """Model Stock's interpolation ratio t = n cos / (1 + (n - 1) cos) (+ eps in the denominator, as
    in the release): 1 when the runs agree, 0 when their updates are orthogonal. Not clipped: a
    negative cosine gives a negative t, as in the release."""
    cos = torch.as_tensor(cos, dtype=torch.float64)
    return n * cos / ((n - 1) * cos + 1 + EPS)


def model_stock(theta0: dict, finetuned: list[dict], ratio: float | None = None) -> dict:
    """Merge ``finetuned`` runs (state dicts from the same ``theta0``) tensor by tensor:
    ``w = t * mean_i(w_i) + (1 - t) * w_0`` with t from the angle between the runs' updates of that
    tensor (:func:`model_stock_ratio`), or the given ``ratio`` for every tensor (1: the plain
    average of the runs, Model Stock's ablation). Tensors no run changed come back as ``theta0``'s."""
    _check_same(theta0, finetuned, "Model Stock")
    if len(finetuned) < 2:
        raise ValueError("Model Stock merges at least two fine-tuned runs of the same model; got "
                         f"{len(finetuned)}")
    out = {}
    for k, w0 in theta0.items():
        ws = [sd[k].to(w0.device) for sd in finetuned]
        if not w0.is_floating_point():
            out[k] = ws[0].clone()
            continue
        if all(torch.equal(w, w0) for w in ws):
            out[k] = w0.clone()
            continue
        avg = torch.stack([w.double() for w in ws]).mean(0)
        t = torch.as_tensor(ratio, dtype=torch.float64) if ratio is not None else \
            model_stock_ratio(model_stock_cosine([w.double() - w0.double() for w in ws]), len(ws))
        out[k] = (t * avg + (1 - t) * w0.double()).to(w0.dtype)
    return out


# ------------------------------------------------------------------------------------ LiNeS
_BLOCK_LAYOUTS = (   # numbered blocks of the image towers rftlab loads; (pattern, what it is)
    (re.compile(r"(?:^|\.)visual\.transformer\.resblocks\.(\d+)\."), "open_clip ViT residual block"),
    (re.compile(r"(?:^|\.)visual\.trunk\.blocks\.(\d+)\."), "timm ViT block"),
    (re.compile(r"(?:^|\.)visual\.layer(\d+)\.(\d+)\."), "ResNet bottleneck (stage, block)"),
    (re.compile(r"(?:^|\.)visual\.trunk\.stages\.(\d+)\.(\d+)\."), "world CNN stage entry"),
)


def image_blocks(state_dict: dict) -> tuple[dict[str, int], int]:
    """(key -> block index from 0, the number of blocks L) for the image tower's numbered blocks,
    shallowest first. ViT residual blocks are numbered as the model numbers them (the release's
    rule). In a ResNet or the world CNN, whose stages hold several modules, a block starts at each
    convolution or linear weight (a tensor of 2 or more dimensions) and takes the normalisation
    after it. Keys outside the numbered blocks are not in the map."""
    for pattern, _ in _BLOCK_LAYOUTS:
        found = {k: tuple(int(g) for g in m.groups()) for k in state_dict if (m := pattern.search(k))}
        if not found:
            continue
        if len(next(iter(found.values()))) == 1:
            index = {k: v[0] for k, v in found.items()}
            return index, max(index.values()) + 1
        index, block, current = {}, -1, None
        for k in sorted(found, key=lambda k: found[k]):   # stable: a module's keys keep their order
            if state_dict[k].dim() >= 2 and found[k] != current:   # a convolution or linear weight starts a block
                block, current = block + 1, found[k]
            index[k] = max(block, 0)
        return index, max(block, 0) + 1
    raise ValueError("LiNeS scales updates by the depth of numbered blocks, and this image tower has none of "
                     "the layouts rftlab knows (" + "; ".join(what for _, what in _BLOCK_LAYOUTS) + ")")


def lines_scales(index: dict[str, int], num_blocks: int, alpha: float, beta: float) -> dict[str, float]:
    """LiNeS's scale of block l of L: alpha + beta * l / (L - 1) (a single block gets alpha + beta)."""
    return {k: alpha + beta * (l / (num_blocks - 1) if num_blocks > 1 else 1.0) for k, l in index.items()}


def lines(theta0: dict, theta_ft: dict, alpha: float, beta: float | None = None,
          head_keys: tuple[str, ...] = ("head",)) -> dict:
    """LiNeS: ``theta0 + lambda(k) * (theta_ft - theta0)`` with lambda linear in the depth of the
    image-tower block that holds tensor k (:func:`lines_scales`). ``beta`` None: ``1 - alpha``, the
    release's single-task rule (the deepest block keeps its full update). Tensors outside the
    numbered blocks get ``alpha``, as in the release, except ``head_keys`` (the classifier head the
    release keeps frozen): the deepest layer, scaled ``alpha + beta``. ``alpha = 0, beta = 0``
    returns theta0 exactly; ``alpha = 1, beta = 0`` the fine-tuned weights."""
    _check_same(theta0, [theta_ft], "LiNeS")
    beta = 1.0 - alpha if beta is None else beta
    index, n = image_blocks(theta0)
    scale = lines_scales(index, n, alpha, beta)
    out = {}
    for k, w0 in theta0.items():
        w1 = theta_ft[k].to(w0.device)
        lam = alpha + beta if k in head_keys else scale.get(k, alpha)
        if not w0.is_floating_point() or torch.equal(w0, w1):
            out[k] = w1.clone()
        elif lam == 0:
            out[k] = w0.clone()
        elif lam == 1:
            out[k] = w1.clone()
        else:
            out[k] = (w0.double() + lam * (w1.double() - w0.double())).to(w0.dtype)
    return out
