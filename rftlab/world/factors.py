"""The factors of rftlab's procedural world and the words that name them.

Everything the renderer and the caption writer need to agree on lives here, so a
new shape, colour, background or style is one entry in one table.
"""
from __future__ import annotations

from dataclasses import dataclass

SHAPES: tuple[str, ...] = (
    "circle", "square", "triangle", "star", "cross", "ring", "crescent", "heart",
)

# name -> RGB in [0, 1]
COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.12, 0.10),
    "green": (0.15, 0.72, 0.20),
    "blue": (0.16, 0.32, 0.92),
    "yellow": (0.96, 0.86, 0.12),
    "purple": (0.58, 0.20, 0.76),
    "orange": (1.00, 0.55, 0.05),
}

# Backgrounds carry a coarse type, the spurious attribute of the `spurious` task
# (Waterbirds' water / land).
BACKGROUNDS: dict[str, str] = {
    "ocean": "water",
    "lake": "water",
    "grass": "land",
    "forest": "land",
    "desert": "land",
    "snow": "land",
}

STYLES: tuple[str, ...] = ("photo", "sketch", "cartoon", "painting")

# Phrases a caption may use for a factor value. The first one is the canonical name.
SHAPE_WORDS: dict[str, tuple[str, ...]] = {s: (s,) for s in SHAPES}
BACKGROUND_PHRASES: dict[str, tuple[str, ...]] = {
    "ocean": ("in the ocean", "on the sea", "over the water", "on the waves"),
    "lake": ("on a lake", "by the lake", "on the water", "on a pond"),
    "grass": ("on the grass", "in a meadow", "on a lawn", "in a field"),
    "forest": ("in the forest", "among the trees", "in the woods", "near the trees"),
    "desert": ("in the desert", "on the sand", "on a dune", "in dry sand"),
    "snow": ("in the snow", "on snowy ground", "on the ice", "in winter snow"),
}
STYLE_PREFIXES: dict[str, tuple[str, ...]] = {
    "photo": ("a photo of a", "a picture of a", "an image of a", "a close photo of a"),
    "sketch": ("a sketch of a", "a drawing of a", "a pencil sketch of a", "a line drawing of a"),
    "cartoon": ("a cartoon of a", "a clip art of a", "a cartoon drawing of a", "a flat cartoon of a"),
    "painting": ("a painting of a", "an oil painting of a", "a painted picture of a", "a noisy painting of a"),
}
# Prefixes that name no style.
PLAIN_PREFIXES: tuple[str, ...] = ("a", "the", "one", "there is a", "this is a")

FACTORS = ("shape", "color", "background", "style")


@dataclass(frozen=True)
class FactorSpace:
    """Names of every value of every factor, in index order."""

    shape: tuple[str, ...] = SHAPES
    color: tuple[str, ...] = tuple(COLORS)
    background: tuple[str, ...] = tuple(BACKGROUNDS)
    style: tuple[str, ...] = STYLES

    def names(self, factor: str) -> tuple[str, ...]:
        if factor not in FACTORS:
            raise ValueError(f"unknown factor {factor!r}; the world's factors are {', '.join(FACTORS)}")
        return getattr(self, factor)

    def index(self, factor: str, value: str) -> int:
        names = self.names(factor)
        if value not in names:
            raise ValueError(
                f"unknown {factor} {value!r}; choose one of: {', '.join(names)}"
            )
        return names.index(value)


SPACE = FactorSpace()
