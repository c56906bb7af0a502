"""Tasks on the world: Waterbirds-like `spurious`, DomainNet-like `shift`, and custom ones."""
from __future__ import annotations

import zlib
from functools import lru_cache

import torch

from ..data import Split, Task
from .captions import WORLD_CONTEXTS, WORLD_TEMPLATES
from .factors import BACKGROUNDS, SHAPES, SPACE, STYLES
from .render import render, to_uint8
from .sample import PRETRAIN_SCALE, STANDARD_SCALE

_BG_NAMES = tuple(BACKGROUNDS)
PLACES = ("land", "water")
_PLACE_OF_BG = torch.tensor([PLACES.index(BACKGROUNDS[b]) for b in _BG_NAMES])
_BGS_OF_PLACE = [torch.tensor([i for i, b in enumerate(_BG_NAMES) if BACKGROUNDS[b] == p]) for p in PLACES]


def _seed(seed: int, split: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(split.encode())) % (2 ** 31)


def _check_names(kind: str, names, allowed) -> list[int]:
    names = list(names)
    if not names:
        raise ValueError(f"give at least one {kind}")
    bad = [n for n in names if n not in allowed]
    if bad:
        raise ValueError(f"unknown {kind} {bad}; choose from: {', '.join(allowed)}")
    if len(set(names)) != len(names):
        raise ValueError(f"{kind} names must not repeat: {names}")
    return [allowed.index(n) for n in names]


def _render_split(name: str, shape, style, place, g: torch.Generator, size: int, seed: int,
                  classes: list[int], scale, rotation: float) -> Split:
    n = len(shape)
    color = torch.randint(0, len(SPACE.color), (n,), generator=g)
    bg = torch.empty(n, dtype=torch.long)
    for p, options in enumerate(_BGS_OF_PLACE):
        m = place == p
        bg[m] = options[torch.randint(0, len(options), (int(m.sum()),), generator=g)]
    images = to_uint8(render(shape, color, bg, style, size=size, seed=seed, scale=scale, max_rotation=rotation))
    label = torch.tensor([classes.index(int(s)) for s in shape], dtype=torch.long)
    meta = {"shape": shape, "color": color, "background": bg, "style": style, "place": place,
            "domain": style, "group": label * 2 + place}
    return Split(name, images, label, meta)


def make_task(name: str = "custom", classes=("circle", "square"), correlation: float | None = None,
              train_styles=("photo",), ood_styles=(), n_train: int = 1000, n_val: int = 400,
              n_test: int = 800, size: int = 32, seed: int = 0, scale=STANDARD_SCALE,
              rotation: float = 20.0) -> Task:
    """Build a world task.

    ``correlation``: None leaves backgrounds uniform. A number p in [0, 1] makes the place
    (land or water background) spurious: in train, class k sits on its own place (land for
    even k, water for odd k) with probability p; val and test are balanced over every
    (class, place) group. ``train_styles`` are the ID domain(s) (train, val, ID test);
    each of ``ood_styles`` becomes one OOD test set. ``scale`` is the range of object sizes (a
    fraction of the image half-width; pretraining saw 0.18 to 0.62) and ``rotation`` the largest
    rotation in degrees (pretraining saw 20).
    """
    cls = _check_names("shape", classes, SHAPES)
    tr_st = _check_names("style", train_styles, STYLES)
    ood_st = _check_names("style", ood_styles, STYLES) if ood_styles else []
    if not 0.0 <= float(rotation) <= 180.0:
        raise ValueError(f"rotation is the largest rotation in degrees, 0 to 180; got {rotation}")
    if not (0.05 <= scale[0] <= scale[1] <= 1.0):
        raise ValueError(f"scale must be (low, high) with 0.05 <= low <= high <= 1; got {scale}")
    if correlation is not None and not 0.0 <= float(correlation) <= 1.0:
        raise ValueError(f"correlation must lie in [0, 1] (1 = every train image on its class's own place); got {correlation}")
    for label, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if int(n) < 1:
            raise ValueError(f"{label} must be at least 1; got {n}")
    C = len(cls)
    g = torch.Generator().manual_seed(_seed(seed, name))
    cls_t = torch.tensor(cls)

    def draw(split: str, n: int, styles: list[int], balanced: bool) -> Split:
        if balanced and correlation is not None:
            # equal counts in every (class, place) group
            k = torch.arange(n) % (2 * C)
            perm = torch.randperm(n, generator=g)
            k = k[perm]
            y, place = k // 2, k % 2
        else:
            y = torch.randint(0, C, (n,), generator=g)
            if correlation is None:
                place = (torch.rand(n, generator=g) < len(_BGS_OF_PLACE[1]) / len(_BG_NAMES)).long()
            else:
                own = y % 2
                keep = torch.rand(n, generator=g) < float(correlation)
                place = torch.where(keep, own, 1 - own)
        st = torch.tensor(styles)[torch.randint(0, len(styles), (n,), generator=g)]
        return _render_split(split, cls_t[y], st, place, g, size, _seed(seed, name + split), cls, scale, rotation)

    train = draw("train", n_train, tr_st, balanced=False)
    val = draw("val", n_val, tr_st, balanced=True)
    test = draw("test", n_test, tr_st, balanced=True)
    ood = {STYLES[s]: draw(STYLES[s], n_test, [s], balanced=True) for s in ood_st}
    group_names = None
    if correlation is not None:
        group_names = [f"{SHAPES[c]}/{p}" for c in cls for p in PLACES]
    info = {"classes": [SHAPES[c] for c in cls], "correlation": correlation,
            "train_styles": [STYLES[s] for s in tr_st], "ood_styles": [STYLES[s] for s in ood_st],
            "size": size, "seed": seed, "scale": list(scale), "rotation": rotation}
    return Task(name, [SHAPES[c] for c in cls], list(WORLD_TEMPLATES), train, val, test, ood,
                group_names=group_names, id_domain="+".join(STYLES[s] for s in tr_st), info=info,
                contexts=list(WORLD_CONTEXTS))


FAR_SCALE = (0.18, 0.3)


def spurious_task(classes=("square", "cross"), correlation: float = 0.95, n_train: int = 600,
                  n_val: int = 400, n_test: int = 800, seed: int = 0, scale=FAR_SCALE, **kw) -> Task:
    """Waterbirds-like: 2 classes, each on its own place (land / water) in train 95% of the time;
    val and test balanced over the 4 class x place groups.

    As birds in Waterbirds, the objects are far away (small; ``scale``), so the shape is often
    hard to read while the background is not: fine-tuning then leans on the background. Larger
    objects (``scale=(0.3, 0.62)``), more training images or dissimilar shapes weaken the effect."""
    if len(classes) != 2:
        raise ValueError("the spurious task has exactly 2 classes; use make_task() for more")
    return make_task("spurious", classes, correlation, ("photo",), (), n_train, n_val, n_test, seed=seed,
                     scale=scale, **kw)


def shift_task(train_style: str = "photo", n_train: int = 2000, n_val: int = 400, n_test: int = 800,
               seed: int = 0, rotation: float = 90.0, **kw) -> Task:
    """DomainNet-like: every shape class; train and ID test in one style, one OOD set per other style.

    Objects are rotated by up to ``rotation`` degrees (pretraining saw 20): information the
    zero-shot model under-uses but labels can teach, as real downstream sets are for CLIP."""
    _check_names("style", [train_style], STYLES)
    ood = [s for s in STYLES if s != train_style]
    return make_task("shift", SHAPES, None, (train_style,), ood, n_train, n_val, n_test, seed=seed,
                     rotation=rotation, **kw)


def broad_task(correlation: float = 0.9, n_train: int = 2000, n_val: int = 400, n_test: int = 800, seed: int = 0,
               rotation: float = 90.0, **kw) -> Task:
    """ImageNet-like, for StarFT's protocol (fine-tune broadly, then score zero-shot group
    robustness on the Waterbirds-like task): every shape class, each sitting on its own place
    (land or water) with probability ``correlation``, as ImageNet classes sit in their scenes;
    objects near and far (0.18 to 0.62 of the half-width) and rotated by up to ``rotation``
    degrees, information the zero-shot model under-uses (as in ``shift``)."""
    return make_task("broad", SHAPES, correlation, ("photo",), (), n_train, n_val, n_test, seed=seed,
                     scale=PRETRAIN_SCALE, rotation=rotation, **kw)


WORLD_TASKS = {"spurious": spurious_task, "shift": shift_task, "broad": broad_task}


@lru_cache(maxsize=8)
def _cached(name: str, items: tuple) -> Task:
    return WORLD_TASKS[name](**dict(items))


def load_task(name: str, root=None, **kwargs) -> Task:
    """A task by name: a world task (generated; cached: the same arguments give the same
    object) or a dataset on disk read from ``root`` (``rftlab.datasets.DATASETS``)."""
    if name in WORLD_TASKS:
        if root is not None:
            raise ValueError(f"world task {name!r} is generated, not read from disk: give no root")
        items = tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in kwargs.items()))
        return _cached(name, items)
    from ..datasets import DATASETS, load_dataset
    if name in DATASETS:
        return load_dataset(name, root, **kwargs)
    raise ValueError(f"unknown task {name!r}; world tasks are: {', '.join(WORLD_TASKS)} "
                     f"(or build one with rftlab.make_task); datasets on disk (give root=...) are: "
                     f"{', '.join(DATASETS)}")
