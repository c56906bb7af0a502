"""Tasks on the world: Waterbirds-like `spurious`, DomainNet-like `shift`, and custom ones."""
from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Sequence

import torch

from ..data import Split, Task
from .captions import WORLD_CONTEXTS, WORLD_TEMPLATES, factor_phrases, factor_prompts
from .factors import BACKGROUNDS, FACTORS, SHAPES, SPACE, STYLES
from .render import render, to_uint8
from .sample import PRETRAIN_SCALE, STANDARD_SCALE, second_objects

_BG_NAMES = tuple(BACKGROUNDS)
PLACES = ("land", "water")
_PLACE_OF_BG = torch.tensor([PLACES.index(BACKGROUNDS[b]) for b in _BG_NAMES])
_BGS_OF_PLACE = [torch.tensor([i for i, b in enumerate(_BG_NAMES) if BACKGROUNDS[b] == p]) for p in PLACES]


@dataclass(frozen=True)
class SpuriousAttribute:
    """A binary attribute of a world factor that a task can make spurious.

    ``values`` names its two values (value 0, value 1); ``members[v]`` are the factor values
    that have value v. In a task that plants it, class k sits on value ``k % 2`` with the
    task's correlation; ``key`` is the metadata key that holds each image's value (0 or 1)."""

    factor: str
    key: str
    values: tuple[str, str]
    members: tuple[tuple[str, ...], tuple[str, ...]]

    def member_index(self, v: int) -> torch.Tensor:
        """Indices (in the factor's value order) of the factor values that have value ``v``."""
        return torch.tensor([SPACE.index(self.factor, m) for m in self.members[v]])


# The world's plantable shortcuts, one entry each: background by its place (Waterbirds' land /
# water), colour by its warmth (Colored-MNIST-like), style by its medium (a texture-like cue).
SPURIOUS_ATTRIBUTES: dict[str, SpuriousAttribute] = {
    "background": SpuriousAttribute("background", "place", PLACES,
                                    tuple(tuple(b for b in _BG_NAMES if BACKGROUNDS[b] == p) for p in PLACES)),
    "color": SpuriousAttribute("color", "warmth", ("warm", "cool"),
                               (("red", "orange", "yellow"), ("green", "blue", "purple"))),
    "style": SpuriousAttribute("style", "medium", ("photo", "sketch"), (("photo",), ("sketch",))),
}
assert all(set(a.members[0] + a.members[1]) <= set(SPACE.names(a.factor)) for a in SPURIOUS_ATTRIBUTES.values())


# The names of every metadata value a world split can carry (Task.metadata_names), key by key.
VALUE_NAMES: dict[str, tuple[str, ...]] = {**{f: SPACE.names(f) for f in FACTORS}, "domain": STYLES,
                                           "distractor": ("none", *SHAPES),
                                           **{a.key: a.values for a in SPURIOUS_ATTRIBUTES.values()}}


def _place_prompts() -> dict[str, list[str]]:
    """Prompts per place: the background prompts of every background of that place."""
    bg = factor_prompts("background")
    return {p: [t for b, kind in BACKGROUNDS.items() if kind == p for t in bg[b]] for p in PLACES}


def _metadata_text(keys) -> dict:
    """``metadata_names``, ``metadata_phrases`` and ``metadata_prompts`` of a world task whose
    splits carry the metadata ``keys``: names from :data:`VALUE_NAMES`, phrases of the factors
    (:func:`~rftlab.world.captions.factor_phrases`), zero-shot prompts of the factors
    (:func:`~rftlab.world.captions.factor_prompts`) and of the place."""
    keys = [k for k in keys if k != "group"]
    prompts = {**{f: factor_prompts(f) for f in FACTORS}, "place": _place_prompts()}
    return {"metadata_names": {k: list(VALUE_NAMES[k]) for k in keys},
            "metadata_phrases": {k: v for k, v in factor_phrases().items() if k in keys},
            "metadata_prompts": {k: v for k, v in prompts.items() if k in keys}}


def spurious_factors(spurious) -> list[str]:
    """The factor names of a ``spurious=`` argument (a name or several), checked."""
    names = [spurious] if isinstance(spurious, str) else list(spurious)
    if not names:
        raise ValueError(f"spurious=() names no factor; give one or more of: {', '.join(SPURIOUS_ATTRIBUTES)}")
    for n in names:
        if n == "shape":
            raise ValueError("shape is the class of world tasks, it cannot be their spurious factor; "
                             f"choose from: {', '.join(SPURIOUS_ATTRIBUTES)}")
        if n not in SPURIOUS_ATTRIBUTES:
            raise ValueError(f"unknown spurious factor {n!r}; choose from: {', '.join(SPURIOUS_ATTRIBUTES)} "
                             "(or add an entry to rftlab.world.tasks.SPURIOUS_ATTRIBUTES)")
    if len(set(names)) != len(names):
        raise ValueError(f"spurious factors must not repeat: {names}")
    return names


def _pick(value: torch.Tensor, options: Sequence[torch.Tensor], g: torch.Generator) -> torch.Tensor:
    """For each sample, a uniform draw among ``options[value]`` (factor value indices)."""
    out = torch.empty(len(value), dtype=torch.long)
    for v, opts in enumerate(options):
        m = value == v
        out[m] = opts[torch.randint(0, len(opts), (int(m.sum()),), generator=g)]
    return out


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
                  classes: list[int], scale, rotation: float, planted: dict | None = None,
                  distractors: float = 0.0) -> Split:
    """Render a split; ``planted`` maps each planted factor to its attribute values (0/1) per sample:
    the colour is drawn among its attribute's members when colour is planted, else uniformly.
    ``distractors``: the probability that an image also shows a smaller object of another shape
    (metadata ``distractor``: its shape index + 1, 0 for none); the label stays the larger one's."""
    planted = planted or {}
    n = len(shape)
    if "color" in planted:
        a = SPURIOUS_ATTRIBUTES["color"]
        color = _pick(planted["color"], [a.member_index(0), a.member_index(1)], g)
    else:
        color = torch.randint(0, len(SPACE.color), (n,), generator=g)
    bg = _pick(place, _BGS_OF_PLACE, g)
    second = None
    if distractors > 0:
        second = second_objects(shape, distractors, seed + 7)   # its own stream: the split's other draws stay
    images = to_uint8(render(shape, color, bg, style, size=size, seed=seed, scale=scale, max_rotation=rotation,
                             second=second))
    label = torch.tensor([classes.index(int(s)) for s in shape], dtype=torch.long)
    meta = {"shape": shape, "color": color, "background": bg, "style": style, "place": place,
            "domain": style}
    if second is not None:
        meta["distractor"] = second["shape"] + 1
    bits = place
    if planted:
        bits = torch.zeros(n, dtype=torch.long)
        for factor, v in planted.items():
            meta[SPURIOUS_ATTRIBUTES[factor].key] = v
            bits = bits * 2 + v
    meta["group"] = label * (2 ** max(1, len(planted))) + bits
    return Split(name, images, label, meta)


def make_task(name: str = "custom", classes=("circle", "square"), correlation: float | None = None,
              train_styles=("photo",), ood_styles=(), n_train: int = 1000, n_val: int = 400,
              n_test: int = 800, size: int = 32, seed: int = 0, scale=STANDARD_SCALE,
              rotation: float = 20.0, spurious: str | Sequence[str] | None = None,
              distractors: float = 0.0) -> Task:
    """Build a world task.

    ``spurious`` names the factor(s) made spurious, each through its binary attribute in
    :data:`SPURIOUS_ATTRIBUTES`: ``"background"`` (the place: land or water), ``"color"`` (warm:
    red, orange, yellow, or cool: green, blue, purple), ``"style"`` (photo or sketch), or several
    at once (``("background", "color")``). ``correlation`` p in [0, 1]: in train, class k sits on
    its own value of each attribute (value ``k % 2``: land, warm, photo for even k) with
    probability p, independently per attribute; val and test are balanced over every (class,
    attribute values) group, named like ``"square/warm"``; metadata ``place``, ``warmth``,
    ``medium`` hold each image's value (0 or 1). p = 0.5 plants nothing: the control, evaluated
    on the same balanced groups. Defaults: with a correlation and no ``spurious``, the place;
    with ``spurious`` and no correlation, 0.5; with neither, no spurious attribute and no groups
    (backgrounds uniform). When style is planted, styles come from its two values
    (``train_styles`` is not used). ``distractors``: the probability that an image also shows a
    smaller object of another shape, in every split (clutter; the label is the larger object's,
    metadata ``distractor`` names the other). ``train_styles`` are the ID domain(s) (train, val, ID test);
    each of ``ood_styles`` becomes one OOD test set. ``scale`` is the range of object sizes (a
    fraction of the image half-width; pretraining saw 0.18 to 0.62) and ``rotation`` the largest
    rotation in degrees (pretraining saw 20). The task names every metadata value
    (``metadata_names``) and carries the world's phrases and prompts for them.
    """
    cls = _check_names("shape", classes, SHAPES)
    tr_st = _check_names("style", train_styles, STYLES)
    ood_st = _check_names("style", ood_styles, STYLES) if ood_styles else []
    if not 0.0 <= float(rotation) <= 180.0:
        raise ValueError(f"rotation is the largest rotation in degrees, 0 to 180; got {rotation}")
    if not (0.05 <= scale[0] <= scale[1] <= 1.0):
        raise ValueError(f"scale must be (low, high) with 0.05 <= low <= high <= 1; got {scale}")
    if not 0.0 <= float(distractors) <= 1.0:
        raise ValueError(f"distractors is the probability that an image shows a second, smaller object: 0 to 1; "
                         f"got {distractors}")
    if correlation is not None and not 0.0 <= float(correlation) <= 1.0:
        raise ValueError(f"correlation must lie in [0, 1] (1 = every train image on its class's own value of the "
                         f"spurious attribute); got {correlation}")
    for label, n in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
        if int(n) < 1:
            raise ValueError(f"{label} must be at least 1; got {n}")
    if spurious is not None:
        factors = spurious_factors(spurious)
        if correlation is None:
            correlation = 0.5
    else:
        factors = ["background"] if correlation is not None else []
    attrs = [SPURIOUS_ATTRIBUTES[f] for f in factors]
    if "style" in factors:
        clash = [STYLES[s] for s in ood_st if STYLES[s] in SPURIOUS_ATTRIBUTES["style"].members[0]
                 + SPURIOUS_ATTRIBUTES["style"].members[1]]
        if clash:
            raise ValueError(f"style is the spurious factor, so {clash} are in-distribution styles: "
                             f"choose ood_styles among the others")
    C, m = len(cls), len(attrs)
    g = torch.Generator().manual_seed(_seed(seed, name))
    cls_t = torch.tensor(cls)

    def draw(split: str, n: int, styles: list[int], balanced: bool) -> Split:
        if balanced and attrs:
            # equal counts in every (class, attribute values) group
            k = torch.arange(n) % (C * 2 ** m)
            perm = torch.randperm(n, generator=g)
            k = k[perm]
            y, bits = k // 2 ** m, k % 2 ** m
            values = {f: (bits >> (m - 1 - i)) & 1 for i, f in enumerate(factors)}
        else:
            y = torch.randint(0, C, (n,), generator=g)
            values = {}
            for f in factors:
                own = y % 2
                keep = torch.rand(n, generator=g) < float(correlation)
                values[f] = torch.where(keep, own, 1 - own)
        if "background" in values:
            place = values["background"]
        else:  # backgrounds uniform: water is 2 of the 6
            place = (torch.rand(n, generator=g) < len(_BGS_OF_PLACE[1]) / len(_BG_NAMES)).long()
        if "style" in values:
            a = SPURIOUS_ATTRIBUTES["style"]
            st = _pick(values["style"], [a.member_index(0), a.member_index(1)], g)
        else:
            st = torch.tensor(styles)[torch.randint(0, len(styles), (n,), generator=g)]
        return _render_split(split, cls_t[y], st, place, g, size, _seed(seed, name + split), cls, scale, rotation,
                             values, distractors)

    train = draw("train", n_train, tr_st, balanced=False)
    val = draw("val", n_val, tr_st, balanced=True)
    test = draw("test", n_test, tr_st, balanced=True)
    ood = {STYLES[s]: draw(STYLES[s], n_test, [s], balanced=True) for s in ood_st}
    group_names = None
    if attrs:
        combos = [[]]
        for a in attrs:
            combos = [c + [v] for c in combos for v in a.values]
        group_names = ["/".join([SHAPES[c], *combo]) for c in cls for combo in combos]
    id_styles = ([s for a in attrs if a.factor == "style" for v in a.members for s in v] if "style" in factors
                 else [STYLES[s] for s in tr_st])
    info = {"classes": [SHAPES[c] for c in cls], "correlation": correlation,
            "train_styles": id_styles, "ood_styles": [STYLES[s] for s in ood_st],
            "size": size, "seed": seed, "scale": list(scale), "rotation": rotation}
    if distractors:
        info["distractors"] = distractors
    info["spurious"] = factors
    return Task(name, [SHAPES[c] for c in cls], list(WORLD_TEMPLATES), train, val, test, ood,
                group_names=group_names, id_domain="+".join(id_styles), info=info,
                contexts=list(WORLD_CONTEXTS), **_metadata_text(train.meta))


FAR_SCALE = (0.18, 0.3)


def spurious_task(classes=("square", "cross"), correlation: float = 0.95, n_train: int = 600,
                  n_val: int = 400, n_test: int = 800, seed: int = 0, scale=FAR_SCALE,
                  spurious: str | Sequence[str] = "background", **kw) -> Task:
    """Waterbirds-like: 2 classes, each on its own place (land / water) in train 95% of the time;
    val and test balanced over the 4 class x place groups. ``spurious`` plants another factor
    instead (``"color"``: warm / cool, ``"style"``: photo / sketch) or several (see :func:`make_task`).

    As birds in Waterbirds, the objects are far away (small; ``scale``), so the shape is often
    hard to read while the background is not: fine-tuning then leans on the background. Larger
    objects (``scale=(0.3, 0.62)``), more training images or dissimilar shapes weaken the effect."""
    if len(classes) != 2:
        raise ValueError("the spurious task has exactly 2 classes; use make_task() for more")
    return make_task("spurious", classes, correlation, ("photo",), (), n_train, n_val, n_test, seed=seed,
                     scale=scale, spurious=spurious, **kw)


MYSTERY_FACTORS = ("background", "color", "style")


def mystery_factor(seed: int) -> str:
    """The factor :func:`mystery_task` plants for ``seed`` (the answer: look only after probing)."""
    return MYSTERY_FACTORS[zlib.crc32(f"mystery-{int(seed)}".encode()) % len(MYSTERY_FACTORS)]


def mystery_task(seed: int = 0, correlation: float = 0.95, n_train: int = 600, n_val: int = 400,
                 n_test: int = 800, **kw) -> Task:
    """A :func:`spurious_task` whose planted factor (background, colour or style, chosen by
    ``seed``) is not named: groups are ``"square/A"``, ``"square/B"``..., the planted attribute's
    metadata key and ``info["spurious"]`` are removed. Find the shortcut with
    :func:`rftlab.analysis.discover_shortcuts`; :func:`mystery_factor` gives the answer."""
    import dataclasses
    task = spurious_task(correlation=correlation, n_train=n_train, n_val=n_val, n_test=n_test, seed=seed,
                         spurious=mystery_factor(seed), **kw)
    key = SPURIOUS_ATTRIBUTES[mystery_factor(seed)].key

    def hide(split: Split) -> Split:
        return dataclasses.replace(split, meta={k: v for k, v in split.meta.items() if k != key})
    info = {k: v for k, v in task.info.items() if k not in ("spurious", "train_styles")}
    train = hide(task.train)
    return dataclasses.replace(task, name="mystery", train=train, val=hide(task.val), test=hide(task.test),
                               group_names=[f"{c}/{v}" for c in task.classnames for v in "AB"],
                               id_domain="world", info=info, **_metadata_text(train.meta))


SHIFT_SCALE = (0.45, 0.62)


def shift_task(train_style: str = "photo", n_train: int = 2000, n_val: int = 400, n_test: int = 800,
               seed: int = 0, rotation: float = 90.0, scale=SHIFT_SCALE, **kw) -> Task:
    """DomainNet-like: every shape class; train and ID test in one style, one OOD set per other style.

    Objects are turned by up to ``rotation`` degrees, a pose pretraining shows for a quarter of its
    photos and fewer of its drawings: the zero-shot model is unsure of turned objects, and labels
    teach them. Objects are near (``scale``, within pretraining's sizes), so the shape is legible
    and what limits the zero-shot model is the pose, not the pixels (docs/world-design.md)."""
    _check_names("style", [train_style], STYLES)
    ood = [s for s in STYLES if s != train_style]
    return make_task("shift", SHAPES, None, (train_style,), ood, n_train, n_val, n_test, seed=seed,
                     rotation=rotation, scale=scale, **kw)


def broad_task(correlation: float = 0.9, n_train: int = 2000, n_val: int = 400, n_test: int = 800, seed: int = 0,
               rotation: float = 90.0, scale=PRETRAIN_SCALE, **kw) -> Task:
    """ImageNet-like, for StarFT's protocol (fine-tune broadly, then score zero-shot group
    robustness on the Waterbirds-like task): every shape class, each sitting on its own place
    (land or water) with probability ``correlation``, as ImageNet classes sit in their scenes;
    objects near and far (0.18 to 0.62 of the half-width) and rotated by up to ``rotation``
    degrees, information the zero-shot model under-uses (as in ``shift``)."""
    return make_task("broad", SHAPES, correlation, ("photo",), (), n_train, n_val, n_test, seed=seed,
                     scale=scale, rotation=rotation, **kw)


WORLD_TASKS = {"spurious": spurious_task, "shift": shift_task, "broad": broad_task,
               "mystery": mystery_task}
