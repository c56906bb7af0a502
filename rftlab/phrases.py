"""StarFT-style pools of class-agnostic spurious phrases, written for rftlab.

Each phrase is a class template (``{}`` is the class name): a background or setting, a
texture or rendering style, or an image-quality defect -- things a classifier can latch on
to instead of the object. Use them to build spuriosity-injected captions (StarFT) or as
candidate descriptions for :func:`rftlab.analysis.rank_descriptions`. With the world's
tokenizer only phrases made of words it knows are usable: :func:`phrase_pool` with
``tokenizer=`` keeps those.
"""
from __future__ import annotations

PHRASE_POOLS: dict[str, tuple[str, ...]] = {
    "background": (
        "{} in the snow", "{} near the water", "{} at sunset", "{} on the sand", "{} in a field",
        "{} among the trees", "{} on the grass", "{} on the ice", "{} by the lake", "{} on the sea",
        "{} in the desert", "{} in the woods", "{} on a pond", "{} in a meadow",
        "{} on a city street", "{} in a kitchen", "{} on a wooden table", "{} in a living room",
        "{} under a cloudy sky", "{} at night", "{} in the rain", "{} on a mountain trail",
        "{} in a parking lot", "{} next to a fence", "{} on a beach with palm trees",
        "{} in a garden with flowers", "{} inside a shop window", "{} on a white backdrop",
        "{} in front of a brick wall", "{} in a crowded market", "{} on a rocky shore",
        "{} in fog", "{} beside a river", "{} on a farm",
    ),
    "texture": (
        "striped {}", "{} with texture", "a sketch of a {}", "a painting of a {}", "a cartoon of a {}",
        "a pencil sketch of a {}", "an oil painting of a {}", "a line drawing of a {}",
        "spotted {}", "checkered {}", "furry {}", "metallic {}", "wooden {}", "glossy {}",
        "{} made of paper", "{} made of clay", "{} knitted from wool", "a mosaic of a {}",
        "a watercolor of a {}", "an embroidered {}", "a sculpture of a {}", "a toy {}",
        "a tattoo of a {}", "a stained glass {}", "a graffiti of a {}",
    ),
    "quality": (
        "blurred {}", "a noisy painting of a {}", "a close photo of a {}",
        "a low resolution photo of a {}", "a pixelated {}", "a dark photo of a {}",
        "an overexposed photo of a {}", "a cropped photo of a {}", "a zoomed in photo of a {}",
        "a zoomed out photo of a {}", "a jpeg compressed photo of a {}", "a grainy photo of a {}",
        "a tilted photo of a {}", "a photo of a {} in motion blur", "a faded photo of a {}",
    ),
}


def phrase_pool(kind: str | None = None, tokenizer=None) -> list[str]:
    """Phrases of one pool (``background``, ``texture``, ``quality``) or of all pools (None).

    With a tokenizer that reports unknown words (the world's ``WorldTokenizer``), only the
    phrases it fully knows are kept.
    """
    if kind is not None and kind not in PHRASE_POOLS:
        raise ValueError(f"unknown phrase pool {kind!r}; choose one of: {', '.join(PHRASE_POOLS)}")
    kinds = [kind] if kind else list(PHRASE_POOLS)
    out = list(dict.fromkeys(p for k in kinds for p in PHRASE_POOLS[k]))
    unknown = getattr(tokenizer, "unknown_words", None)
    if unknown is not None:
        out = [p for p in out if not unknown(p.replace("{}", " "))]
    return out
