"""A labelled grid of world samples: one row per style, one column per shape."""
from __future__ import annotations

import torch
from PIL import Image, ImageDraw

from .factors import BACKGROUNDS, COLORS, SHAPES, STYLES
from .render import render, to_uint8


def sample_grid(seed: int = 0, size: int = 32, zoom: int = 3) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    n_rows, n_cols = len(STYLES), len(SHAPES)
    shape = torch.arange(n_cols).repeat(n_rows)
    style = torch.arange(n_rows).repeat_interleave(n_cols)
    color = torch.randint(0, len(COLORS), (n_rows * n_cols,), generator=g)
    bg = torch.randint(0, len(BACKGROUNDS), (n_rows * n_cols,), generator=g)
    imgs = to_uint8(render(shape, color, bg, style, size=size, seed=seed))
    cell, label_h, left = size * zoom, 24, 64
    canvas = Image.new("RGB", (left + n_cols * (cell + 4), 18 + n_rows * (cell + label_h)), "white")
    draw = ImageDraw.Draw(canvas)
    colors, bgs = list(COLORS), list(BACKGROUNDS)
    for c, name in enumerate(SHAPES):
        draw.text((left + c * (cell + 4) + 2, 2), name, fill="black")
    for i in range(n_rows * n_cols):
        r, c = divmod(i, n_cols)
        x0, y0 = left + c * (cell + 4), 18 + r * (cell + label_h)
        tile = Image.fromarray(imgs[i].permute(1, 2, 0).numpy()).resize((cell, cell), Image.NEAREST)
        canvas.paste(tile, (x0, y0))
        draw.text((x0, y0 + cell + 1), colors[int(color[i])], fill="black")
        draw.text((x0, y0 + cell + 11), bgs[int(bg[i])], fill="gray")
        if c == 0:
            draw.text((2, y0 + cell // 2), STYLES[r], fill="black")
    return canvas
