"""Draw factor combinations and render them: the world's uniform image-caption stream."""
from __future__ import annotations

import torch

from .captions import captions
from .factors import BACKGROUNDS, COLORS, SHAPES, STYLES
from .render import render


def sample_factors(n: int, seed: int = 0, **fixed) -> dict[str, torch.Tensor]:
    """Independent, uniform factors; ``fixed`` pins a factor to an index or an index tensor."""
    g = torch.Generator().manual_seed(int(seed))
    sizes = {"shape": len(SHAPES), "color": len(COLORS), "background": len(BACKGROUNDS),
             "style": len(STYLES)}
    unknown = set(fixed) - set(sizes)
    if unknown:
        raise ValueError(f"unknown factor(s) {sorted(unknown)}; the world's factors are {list(sizes)}")
    out = {}
    for name, k in sizes.items():
        v = torch.randint(0, k, (n,), generator=g)
        if name in fixed:
            v = torch.as_tensor(fixed[name], dtype=torch.long).expand(n).clone()
        out[name] = v
    return out


# Object half-size as a fraction of the image half-width. Pretraining sees far-away (small,
# often ambiguous) objects as well as near ones; the standard view used to report zero-shot
# accuracy, and the default of tasks, is the near range.
PRETRAIN_SCALE = (0.18, 0.62)
STANDARD_SCALE = (0.3, 0.62)


def sample_world(n: int, seed: int = 0, size: int = 32, with_captions: bool = True,
                 scale=STANDARD_SCALE, **fixed):
    """(images float (n,3,size,size) in [0,1], factors dict, captions or None)."""
    f = sample_factors(n, seed, **fixed)
    images = render(f["shape"], f["color"], f["background"], f["style"], size=size, seed=seed + 1,
                    scale=scale)
    caps = captions(f["shape"], f["color"], f["background"], f["style"], seed=seed + 2) if with_captions else None
    return images, f, caps
