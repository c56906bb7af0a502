"""StarFT-style spurious phrase pools for natural images (backgrounds, textures, image quality)."""
from __future__ import annotations

from ._common import read_json

KINDS = ("background", "texture", "quality")


def natural_spurious_phrases(kind: str | None = None) -> list[str]:
    """Class-agnostic phrases that name what a natural image shows besides its class, with
    ``'{}'`` where the class goes (``"{} on a sandy beach"``, ``"blurry {}"``).

    ``kind``: ``"background"``, ``"texture"`` or ``"quality"``; None gives every pool in that
    order. Real-dataset tasks carry them as ``task.info["spurious_phrases"]`` (StarFT reads them).
    """
    pools = read_json("spurious_phrases.json")
    if kind is None:
        return [p for k in KINDS for p in pools[k]]
    if kind not in KINDS:
        raise ValueError(f"unknown phrase pool {kind!r}; choose from: {', '.join(KINDS)} (or None for all)")
    return list(pools[kind])
