"""Vectorised renderer: factor indices in, RGB images out.

Each image is a shape (signed-distance function, anti-aliased) of a colour over a
textured background, drawn in one of four styles, with position, scale and rotation
jitter. Work is batched over samples; the only Python loops run over factor values
(8 shapes, 6 backgrounds, 4 styles), never over pixels or samples.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from .factors import BACKGROUNDS, COLORS, SHAPES, STYLES

_COLOR_TABLE = torch.tensor(list(COLORS.values()), dtype=torch.float32)
_BG_NAMES = tuple(BACKGROUNDS)


# --------------------------------------------------------------------------- shapes
def _sdf(shape: str, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Approximate signed distance (negative inside) in shape units (object radius ~1)."""
    r = torch.sqrt(x * x + y * y + 1e-12)
    if shape == "circle":
        return r - 0.9
    if shape == "square":
        return torch.maximum(x.abs(), y.abs()) - 0.75
    if shape == "triangle":
        return torch.maximum(-y - 0.5, (math.sqrt(3.0) * x.abs() + y) / 2 - 0.5)
    if shape == "star":
        phi = torch.atan2(y, x)
        t = ((5 * phi / (2 * math.pi) - 0.25) % 1.0 - 0.5).abs() * 2  # 1 at a tip
        return 0.7 * (r - (0.42 + 0.6 * t.pow(1.5)))
    if shape == "cross":
        bar1 = torch.maximum(x.abs() - 0.28, y.abs() - 0.92)
        bar2 = torch.maximum(y.abs() - 0.28, x.abs() - 0.92)
        return torch.minimum(bar1, bar2)
    if shape == "ring":
        return (r - 0.68).abs() - 0.24
    if shape == "crescent":
        r2 = torch.sqrt((x - 0.4) ** 2 + (y - 0.25) ** 2 + 1e-12)
        return torch.maximum(r - 0.9, 0.72 - r2)
    if shape == "heart":
        c1 = torch.sqrt((x + 0.42) ** 2 + (y - 0.3) ** 2) - 0.5
        c2 = torch.sqrt((x - 0.42) ** 2 + (y - 0.3) ** 2) - 0.5
        tri = torch.maximum((-0.95 + 1.307 * x.abs() - y) / 1.643, y - 0.35)
        return torch.minimum(torch.minimum(c1, c2), tri)
    raise ValueError(f"unknown shape {shape!r}; choose one of: {', '.join(SHAPES)}")


def _lowfreq(n: int, res: tuple[int, int], size: int, g: torch.Generator) -> torch.Tensor:
    """Smooth noise in [0, 1], shape (n, 1, size, size)."""
    z = torch.rand(n, 1, *res, generator=g)
    return F.interpolate(z, size=(size, size), mode="bilinear", align_corners=False)


# ----------------------------------------------------------------------- backgrounds
def _background(name: str, u: torch.Tensor, v: torch.Tensor, g: torch.Generator):
    """Return (rgb (n,3,S,S), line pattern (n,1,S,S) in [0,1]) for one background type.

    u, v: pixel coordinates in [-1, 1], shape (n, 1, S, S) (v grows downwards).
    """
    n, _, size, _ = u.shape
    ph = torch.rand(n, 1, 1, 1, generator=g) * 2 * math.pi
    ph2 = torch.rand(n, 1, 1, 1, generator=g) * 2 * math.pi
    noise = _lowfreq(n, (4, 4), size, g)

    def mix(a, b, t):
        a = torch.tensor(a).view(1, 3, 1, 1)
        b = torch.tensor(b).view(1, 3, 1, 1)
        return a + (b - a) * t

    if name == "ocean":
        w = 0.5 + 0.5 * torch.sin(14 * v + 1.5 * torch.sin(4 * u + ph) + ph2)
        rgb = mix((0.05, 0.20, 0.48), (0.25, 0.55, 0.85), w.pow(3) * 0.8 + 0.2 * noise)
        line = (w > 0.85).float()
    elif name == "lake":
        grad = (1 - v) / 2  # lighter near the top: a reflected sky
        ripple = (torch.sin(26 * v + ph) > 0.8).float() * (noise > 0.45).float()
        rgb = mix((0.30, 0.55, 0.62), (0.62, 0.82, 0.88), 0.6 * grad + 0.4 * ripple)
        line = ripple
    elif name == "grass":
        blades = F.interpolate(torch.rand(n, 1, 4, size, generator=g), size=(size, size),
                               mode="bilinear", align_corners=False)
        rgb = mix((0.12, 0.38, 0.08), (0.42, 0.78, 0.22), 0.7 * blades + 0.3 * noise)
        line = (blades > 0.75).float()
    elif name == "forest":
        trunks = (torch.sin(9 * u + ph) > 0.7).float() * (v > -0.4).float()
        canopy = mix((0.03, 0.18, 0.06), (0.12, 0.40, 0.12), noise)
        rgb = canopy * (1 - trunks) + torch.tensor((0.36, 0.22, 0.10)).view(1, 3, 1, 1) * trunks
        line = trunks
    elif name == "desert":
        d = torch.sin(5 * u + 3 * v + ph + 2 * noise)
        rgb = mix((0.74, 0.58, 0.32), (0.96, 0.84, 0.56), 0.5 + 0.5 * d)
        line = (d.abs() < 0.15).float()
    elif name == "snow":
        speck = (torch.rand(n, 1, size, size, generator=g) > 0.93).float()
        rgb = mix((0.80, 0.84, 0.90), (0.99, 0.99, 1.00), 0.6 * noise + 0.4 * (1 + v) / 2)
        rgb = rgb - 0.12 * speck
        line = speck
    else:
        raise ValueError(f"unknown background {name!r}; choose one of: {', '.join(_BG_NAMES)}")
    return rgb.expand(n, 3, size, size), line


# ----------------------------------------------------------------------------- main
def render(shape: torch.Tensor, color: torch.Tensor, background: torch.Tensor,
           style: torch.Tensor, *, size: int = 32, seed: int = 0,
           scale: tuple[float, float] = (0.3, 0.62), max_rotation: float = 20.0,
           max_offset: float = 0.28, return_meta: bool = False, second: dict | None = None):
    """Render one image per row of factor indices.

    Returns a float tensor (N, 3, size, size) in [0, 1]. Deterministic in ``seed``.
    ``scale`` is the object's half-size as a fraction of the image half-width; ``max_rotation``
    the largest rotation in degrees (a number, or one per image). With
    ``return_meta`` also returns a dict: ``mask`` (N, 1, size, size) the anti-aliased object
    mask, ``center`` (N, 2) the object centre in pixels (x, y), ``scale``, ``rotation`` (rad).

    ``second`` adds a smaller second object to some images, drawn in the same style over the
    first: ``{"shape": (N,) shape index or -1 for none, "color": (N,), "scale": (low, high)}``,
    its size a fraction (low to high) of the first object's, placed beside it (they may overlap).
    Its jitter comes from its own random stream, so the first object and the background are
    the same with and without it.
    """
    shape, color, background, style = (torch.as_tensor(t, dtype=torch.long).reshape(-1)
                                        for t in (shape, color, background, style))
    n = shape.numel()
    if not (color.numel() == background.numel() == style.numel() == n):
        raise ValueError("shape, color, background and style must have the same length")
    if not 16 <= size <= 128:
        raise ValueError(f"image size {size} is outside 16..128 pixels")
    g = torch.Generator().manual_seed(int(seed))
    out = torch.empty(n, 3, size, size)
    if n == 0:
        return (out, {}) if return_meta else out

    # jitter, drawn for every sample in one go so results do not depend on grouping
    cx = (torch.rand(n, generator=g) * 2 - 1) * max_offset
    cy = (torch.rand(n, generator=g) * 2 - 1) * max_offset
    s = scale[0] + torch.rand(n, generator=g) * (scale[1] - scale[0])
    limit = (math.radians(max_rotation) if not isinstance(max_rotation, torch.Tensor)
             else max_rotation.to(torch.float64).mul(math.pi / 180).float().reshape(-1))
    rot = (torch.rand(n, generator=g) * 2 - 1) * limit
    cjit = (torch.rand(n, 3, generator=g) * 2 - 1) * 0.07
    obj_rgb = (_COLOR_TABLE[color] + cjit).clamp(0, 1)

    lin = (torch.arange(size, dtype=torch.float32) + 0.5) / size * 2 - 1
    v0, u0 = torch.meshgrid(lin, lin, indexing="ij")
    u = u0.expand(n, 1, size, size)
    v = v0.expand(n, 1, size, size)

    # shape coordinates: translate, rotate, scale; y points up
    du = u - cx.view(n, 1, 1, 1)
    dv = v - cy.view(n, 1, 1, 1)
    c, sn = torch.cos(rot).view(n, 1, 1, 1), torch.sin(rot).view(n, 1, 1, 1)
    sc = s.view(n, 1, 1, 1)
    x = (c * du + sn * dv) / sc
    y = -(-sn * du + c * dv) / sc
    pix = (2.0 / size) / sc  # one pixel in shape units

    d = torch.empty(n, 1, size, size)
    for k, name in enumerate(SHAPES):
        idx = (shape == k).nonzero(as_tuple=True)[0]
        if idx.numel():
            d[idx] = _sdf(name, x[idx], y[idx])

    bg = torch.empty(n, 3, size, size)
    line = torch.empty(n, 1, size, size)
    for k, name in enumerate(_BG_NAMES):
        idx = (background == k).nonzero(as_tuple=True)[0]
        if idx.numel():
            bg[idx], line[idx] = _background(name, u[idx], v[idx], g)

    noise = torch.randn(n, 3, size, size, generator=g)
    blotch = _lowfreq(n, (6, 6), size, g)
    two = _second_geometry(second, n, size, seed, cx, cy, s, max_rotation, u, v) if second is not None else None
    for k, name in enumerate(STYLES):
        idx = (style == k).nonzero(as_tuple=True)[0]
        if not idx.numel():
            continue
        di, pi_, col = d[idx], pix[idx], obj_rgb[idx].view(-1, 3, 1, 1)
        if name == "photo":
            m = torch.sigmoid(-di / (0.5 * pi_))
            light = (0.5 + 0.35 * (y[idx] - x[idx]) / 1.4).clamp(0, 1)
            shaded = col * (0.55 + 0.6 * light)
            shadow = torch.roll(m, shifts=(2, 2), dims=(2, 3))
            img = bg[idx] * (1 - 0.45 * shadow) * (1 - m) + shaded * m
            img = img + 0.02 * noise[idx]
        elif name == "cartoon":
            m = torch.sigmoid(-di / (0.4 * pi_))
            outline = torch.exp(-(di / (1.3 * pi_)) ** 2)
            flat_bg = bg[idx].mean(dim=(2, 3), keepdim=True) * (1 - 0.18 * line[idx])
            img = (flat_bg * (1 - m) + col * m) * (1 - 0.9 * outline)
        elif name == "sketch":
            outline = torch.exp(-(di / (1.0 * pi_)) ** 2)
            m = torch.sigmoid(-di / (0.5 * pi_))
            hatch = (torch.sin((x[idx] + y[idx]) / pi_ * 1.2) > 0.5).float() * m
            ink = (0.75 * outline + 0.25 * hatch + 0.3 * line[idx] * (1 - m)).clamp(0, 1)
            paper = 0.95 + 0.03 * blotch[idx]
            img = (paper - 0.85 * ink).expand(-1, 3, -1, -1)
        elif name == "painting":
            m = torch.sigmoid(-(di + 0.15 * (blotch[idx] - 0.5)) / (1.2 * pi_))
            strokes = 0.75 + 0.5 * blotch[idx]
            img = (bg[idx] * (1 - m) + col * m) * strokes + 0.06 * noise[idx]
        else:  # pragma: no cover - STYLES and this list are kept in step
            raise AssertionError(name)
        if two is not None:
            img = _second_layer(name, img, two, idx, blotch, noise)
        out[idx] = img
    out.clamp_(0, 1)
    if not return_meta:
        return out
    meta = {"mask": torch.sigmoid(-d / (0.5 * pix)),
            "center": torch.stack([(cx + 1) / 2 * size, (cy + 1) / 2 * size], dim=1),
            "scale": s, "rotation": rot}
    if two is not None:
        meta["second_shape"] = two["shape"]
        mask2 = torch.zeros(n, 1, size, size)
        has = two["slot"] >= 0
        mask2[has] = torch.sigmoid(-two["d"] / (0.5 * two["pix"]))
        meta["second_mask"] = mask2
    return out, meta


def _second_geometry(second: dict, n: int, size: int, seed: int, cx, cy, s, max_rotation, u, v) -> dict | None:
    """Signed distances and colours of the second objects (its own random stream)."""
    shape2 = torch.as_tensor(second["shape"], dtype=torch.long).reshape(-1)
    color2 = torch.as_tensor(second["color"], dtype=torch.long).reshape(-1)
    if shape2.numel() != n or color2.numel() != n:
        raise ValueError("second['shape'] and second['color'] need one entry per image (-1: no second object)")
    lo, hi = second.get("scale", (0.45, 0.75))
    has = (shape2 >= 0).nonzero(as_tuple=True)[0]
    if not has.numel():
        return None
    g = torch.Generator().manual_seed(int(seed) * 7 + 104_729)
    m = len(has)
    s2 = s[has] * (lo + torch.rand(m, generator=g) * (hi - lo))
    phi = torch.rand(m, generator=g) * 2 * math.pi
    dist = (s[has] + s2) * (0.75 + 0.35 * torch.rand(m, generator=g))
    lim = (0.92 - s2).clamp(min=0.0)
    cx2 = torch.maximum(torch.minimum(cx[has] + dist * torch.cos(phi), lim), -lim)
    cy2 = torch.maximum(torch.minimum(cy[has] + dist * torch.sin(phi), lim), -lim)
    limit = (math.radians(max_rotation) if not isinstance(max_rotation, torch.Tensor)
             else max_rotation.to(torch.float64).mul(math.pi / 180).float().reshape(-1)[has])
    rot2 = (torch.rand(m, generator=g) * 2 - 1) * limit
    cjit = (torch.rand(m, 3, generator=g) * 2 - 1) * 0.07
    rgb = (_COLOR_TABLE[color2[has]] + cjit).clamp(0, 1)
    du = u[has] - cx2.view(m, 1, 1, 1)
    dv = v[has] - cy2.view(m, 1, 1, 1)
    c, sn = torch.cos(rot2).view(m, 1, 1, 1), torch.sin(rot2).view(m, 1, 1, 1)
    sc = s2.view(m, 1, 1, 1)
    x = (c * du + sn * dv) / sc
    y = -(-sn * du + c * dv) / sc
    d = torch.empty(m, 1, size, size)
    for k, name in enumerate(SHAPES):
        j = (shape2[has] == k).nonzero(as_tuple=True)[0]
        if j.numel():
            d[j] = _sdf(name, x[j], y[j])
    slot = torch.full((n,), -1, dtype=torch.long)
    slot[has] = torch.arange(m)
    return {"shape": shape2, "slot": slot, "d": d, "x": x, "y": y, "pix": (2.0 / size) / sc, "rgb": rgb}


def _second_layer(style: str, img: torch.Tensor, two: dict, idx: torch.Tensor, blotch, noise) -> torch.Tensor:
    """Draw the second objects of the images ``idx`` (those that have one) over ``img`` in ``style``."""
    slot = two["slot"][idx]
    rows = (slot >= 0).nonzero(as_tuple=True)[0]
    if not rows.numel():
        return img
    img = img.clone()
    j = slot[rows]
    d, pix, col = two["d"][j], two["pix"][j], two["rgb"][j].view(-1, 3, 1, 1)
    x, y, base = two["x"][j], two["y"][j], img[rows]
    if style == "photo":
        m = torch.sigmoid(-d / (0.5 * pix))
        light = (0.5 + 0.35 * (y - x) / 1.4).clamp(0, 1)
        shadow = torch.roll(m, shifts=(2, 2), dims=(2, 3))
        new = base * (1 - 0.45 * shadow) * (1 - m) + col * (0.55 + 0.6 * light) * m
    elif style == "cartoon":
        m = torch.sigmoid(-d / (0.4 * pix))
        outline = torch.exp(-(d / (1.3 * pix)) ** 2)
        new = (base * (1 - m) + col * m) * (1 - 0.9 * outline)
    elif style == "sketch":
        outline = torch.exp(-(d / (1.0 * pix)) ** 2)
        m = torch.sigmoid(-d / (0.5 * pix))
        hatch = (torch.sin((x + y) / pix * 1.2) > 0.5).float() * m
        paper = 0.95 + 0.03 * blotch[idx][rows]
        drawn = (paper - 0.85 * (0.75 * outline + 0.25 * hatch).clamp(0, 1)).expand(-1, 3, -1, -1)
        new = torch.minimum(base * (1 - m) + drawn * m, (paper - 0.85 * 0.75 * outline).expand(-1, 3, -1, -1))
    elif style == "painting":
        b = blotch[idx][rows]
        m = torch.sigmoid(-(d + 0.15 * (b - 0.5)) / (1.2 * pix))
        new = base * (1 - m) + (col * (0.75 + 0.5 * b) + 0.06 * noise[idx][rows]) * m
    else:  # pragma: no cover
        raise AssertionError(style)
    img[rows] = new
    return img


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    return (images * 255).round_().to(torch.uint8)
