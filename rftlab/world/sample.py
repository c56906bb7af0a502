"""Draw factor combinations and render them: the world's image-caption stream."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import torch

from .captions import captions
from .factors import BACKGROUNDS, COLORS, SHAPES, STYLES
from .render import render


def sample_factors(n: int, seed: int = 0, style_weights=None, **fixed) -> dict[str, torch.Tensor]:
    """Independent factors, uniform unless ``style_weights`` (one relative frequency per style)
    says how often each style is drawn; ``fixed`` pins a factor to an index or an index tensor."""
    g = torch.Generator().manual_seed(int(seed))
    sizes = {"shape": len(SHAPES), "color": len(COLORS), "background": len(BACKGROUNDS),
             "style": len(STYLES)}
    unknown = set(fixed) - set(sizes)
    if unknown:
        raise ValueError(f"unknown factor(s) {sorted(unknown)}; the world's factors are {list(sizes)}")
    out = {}
    for name, k in sizes.items():
        if name == "style" and style_weights is not None:
            v = torch.multinomial(torch.as_tensor(style_weights, dtype=torch.float), n, True, generator=g)
        else:
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


@dataclass(frozen=True)
class PretrainMix:
    """What the pretraining stream draws, beyond independent factors: how often each style appears
    (``style_weights``, relative, in the order of ``STYLES``), the fraction of images turned by up
    to ``wide_rotation`` degrees instead of the upright jitter of 20 (``wide_fraction``: one number,
    or one per style), and
    caption swaps: ``(shape, named_as, p)``, a caption of an image of ``shape`` names ``named_as``
    instead with probability ``p`` (alt-text that uses the wrong or a looser word)."""

    style_weights: tuple = (1.0, 1.0, 1.0, 1.0)
    wide_fraction: float = 0.0
    wide_rotation: float = 90.0
    caption_swaps: tuple = ()
    second_object: float = 0.0
    second_scale: tuple = (0.45, 0.75)
    second_named: float = 0.5
    mention: tuple = (0.6, 0.5, 0.5)
    pose_names: tuple = ()

    def __post_init__(self):
        if len(self.style_weights) != len(STYLES) or min(self.style_weights) < 0 or sum(self.style_weights) <= 0:
            raise ValueError(f"style_weights needs {len(STYLES)} non-negative numbers ({', '.join(STYLES)}), "
                             f"not all 0; got {self.style_weights}")
        wf = self.wide_fraction if isinstance(self.wide_fraction, tuple) else (self.wide_fraction,)
        if len(wf) not in (1, len(STYLES)) or not all(0.0 <= float(w) <= 1.0 for w in wf):
            raise ValueError(f"wide_fraction is a fraction of images, 0 to 1, or one per style ({', '.join(STYLES)}); "
                             f"got {self.wide_fraction}")
        for name in ("second_object", "second_named"):
            if not 0.0 <= float(getattr(self, name)) <= 1.0:
                raise ValueError(f"{name} is a probability, 0 to 1; got {getattr(self, name)}")
        if len(self.mention) != 3 or not all(0.0 <= float(r) <= 1.0 for r in self.mention):
            raise ValueError(f"mention is (style, colour, background), how often captions name each, 0 to 1; "
                             f"got {self.mention}")
        if len(self.second_scale) != 2 or not 0.05 <= self.second_scale[0] <= self.second_scale[1] <= 1.0:
            raise ValueError(f"second_scale is (low, high), fractions of the first object's size with "
                             f"0.05 <= low <= high <= 1; got {self.second_scale}")
        for pn in self.pose_names:
            if len(pn) != 5 or pn[0] not in SHAPES or not isinstance(pn[1], str) or float(pn[4]) <= 0:
                raise ValueError(f"a pose name is (shape, word, centre, half_width, period) in degrees; got {pn}")
        for sw in self.caption_swaps:
            if len(sw) != 3 or sw[0] not in SHAPES or sw[1] not in SHAPES or not 0 <= float(sw[2]) <= 1:
                raise ValueError(f"a caption swap is (shape, named_as, probability) with world shapes; got {sw}")

    def to_dict(self) -> dict:
        return {k: [list(x) if isinstance(x, tuple) else x for x in v] if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict) -> "PretrainMix":
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown pretraining mix keys {sorted(unknown)}; valid: "
                             f"{', '.join(f.name for f in dataclasses.fields(cls))}")
        return cls(**{k: tuple(tuple(x) if isinstance(x, list) else x for x in v) if isinstance(v, list) else v
                      for k, v in d.items()})


UNIFORM_MIX = PretrainMix()
# The stream the shipped world CLIP was pretrained on (docs/world-design.md, variant 8, says why):
# photos are over half of it, and a quarter of the photos (15% of the drawings) are turned by up to
# 90 degrees, the rest stay within 20.
PRETRAIN_MIX = PretrainMix(style_weights=(0.55, 0.15, 0.15, 0.15), wide_fraction=(0.25, 0.15, 0.15, 0.15))


def sample_world(n: int, seed: int = 0, size: int = 32, with_captions: bool = True,
                 scale=STANDARD_SCALE, mix: PretrainMix | None = None, **fixed):
    """(images float (n,3,size,size) in [0,1], factors dict, captions or None). ``mix``: the
    pretraining stream's frequencies (:class:`PretrainMix`); None draws every factor uniformly,
    upright (rotations up to 20 degrees), with faithful captions."""
    mix = mix or UNIFORM_MIX
    weights = None if mix.style_weights == UNIFORM_MIX.style_weights else mix.style_weights
    f = sample_factors(n, seed, style_weights=weights, **fixed)
    rotation = 20.0
    frac = mix.wide_fraction
    if (max(frac) if isinstance(frac, tuple) else frac) > 0:
        g = torch.Generator().manual_seed(int(seed) + 3)
        per_image = torch.tensor(frac)[f["style"]] if isinstance(frac, tuple) else frac
        wide = torch.rand(n, generator=g) < per_image
        rotation = torch.where(wide, torch.tensor(float(mix.wide_rotation)), torch.tensor(20.0))
    second = None
    if mix.second_object > 0:
        second = second_objects(f["shape"], mix.second_object, seed + 5)
        f["second_shape"], f["second_color"] = second["shape"], second["color"]
        second["scale"] = mix.second_scale
    images, meta = render(f["shape"], f["color"], f["background"], f["style"], size=size, seed=seed + 1,
                          scale=scale, max_rotation=rotation, second=second, return_meta=True)
    caps = None
    if with_captions:
        named, named_color = f["shape"], f["color"]
        if second is not None:
            g = torch.Generator().manual_seed(int(seed) + 6)
            pick = (second["shape"] >= 0) & (torch.rand(n, generator=g) < mix.second_named)
            named = torch.where(pick, second["shape"], named)
            named_color = torch.where(pick, second["color"], named_color)
        if mix.caption_swaps:
            g = torch.Generator().manual_seed(int(seed) + 4)
            u = torch.rand(n, generator=g)
            base, named = named, named.clone()
            for shape, as_, p in mix.caption_swaps:
                hit = (base == SHAPES.index(shape)) & (u < float(p))
                named[hit] = SHAPES.index(as_)
        words = None
        if mix.pose_names:
            deg = meta["rotation"] * (180 / math.pi)
            words = [None] * n
            for shape, word, centre, half, period in mix.pose_names:
                off = torch.remainder(deg - float(centre) + float(period) / 2, float(period)) - float(period) / 2
                hit = (named == f["shape"]) & (f["shape"] == SHAPES.index(shape)) & (off.abs() <= float(half))
                for i in hit.nonzero(as_tuple=True)[0].tolist():
                    words[i] = word
        caps = captions(named, named_color, f["background"], f["style"], seed=seed + 2, rates=mix.mention,
                        names=words)
    return images, f, caps


def second_objects(shape: torch.Tensor, p: float, seed: int) -> dict:
    """Clutter for :func:`render`'s ``second``: with probability ``p`` an image gets a second object,
    of a shape other than its first (uniform among the rest) and of any colour; -1 where none."""
    g = torch.Generator().manual_seed(int(seed))
    n = len(shape)
    has = torch.rand(n, generator=g) < float(p)
    other = (shape + 1 + torch.randint(0, len(SHAPES) - 1, (n,), generator=g)) % len(SHAPES)
    color = torch.randint(0, len(COLORS), (n,), generator=g)
    return {"shape": torch.where(has, other, torch.full_like(shape, -1)), "color": color}
