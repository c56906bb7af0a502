"""StarFT-style spurious phrases for natural images: rftlab's one set of pools (:mod:`rftlab.phrases`)."""
from __future__ import annotations


def natural_spurious_phrases(kind: str | None = None) -> list[str]:
    """Class-agnostic phrases that name what a natural image shows besides its class, with
    ``'{}'`` where the class goes (``"{} in the snow"``, ``"a blurred {}"``).

    ``kind``: ``"background"``, ``"texture"`` or ``"quality"``; None gives every pool in that
    order. Real-dataset tasks carry them as ``task.info["spurious_phrases"]`` (StarFT reads them).
    """
    from ..phrases import phrase_pool
    return phrase_pool(kind)
