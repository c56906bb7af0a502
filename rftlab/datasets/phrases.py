"""Natural phrases of real datasets: StarFT-style spurious phrases (rftlab's one set of pools,
:mod:`rftlab.phrases`) and the phrases that name the values of each dataset's metadata."""
from __future__ import annotations

# Class templates ('{}' is the class) that name each value of a dataset's metadata, dataset ->
# metadata key -> value name -> phrases; loaders carry them as Task.metadata_phrases. A word
# (articles and prepositions aside) belongs to the phrases of one value only, since a
# description is labelled with the values whose words it uses (Task.named_values).
METADATA_PHRASES: dict[str, dict[str, dict[str, tuple[str, ...]]]] = {
    "waterbirds": {"place": {  # the Places scenes behind the birds: bamboo and broadleaf forest, ocean, lake
        "land": ("{} in a forest", "{} in a bamboo forest", "{} among the trees", "{} in the woods", "{} on land"),
        "water": ("{} on the water", "{} over the ocean", "{} on a lake", "{} on the sea", "{} near the water"),
    }},
    "celeba": {"Male": {  # the spurious attribute of the usual CelebA task; value names as celeba's _names
        "female": ("a woman: {}", "a female: {}"),
        "male": ("a man: {}", "a male: {}"),
    }},
    "domainnet": {"domain": {
        "clipart": ("a clipart of a {}", "a clip art of a {}"),
        "infograph": ("an infographic of a {}", "an infographic about a {}"),
        "painting": ("a painting of a {}", "an oil painting of a {}"),
        "quickdraw": ("a doodle of a {}", "a quick drawing of a {}"),
        "real": ("a photo of a {}", "a real photo of a {}"),
        "sketch": ("a sketch of a {}", "a pencil sketch of a {}"),
    }},
}


def natural_spurious_phrases(kind: str | None = None) -> list[str]:
    """Class-agnostic phrases that name what a natural image shows besides its class, with
    ``'{}'`` where the class goes (``"{} in the snow"``, ``"a blurred {}"``).

    ``kind``: ``"background"``, ``"texture"`` or ``"quality"``; None gives every pool in that
    order. Real-dataset tasks carry them as ``task.info["spurious_phrases"]`` (StarFT reads them).
    """
    from ..phrases import phrase_pool
    return phrase_pool(kind)


def metadata_text(dataset: str, names: dict[str, list[str]], classnames: list[str]) -> dict:
    """The Task arguments that name and describe a dataset's metadata: ``metadata_names``
    (``names``), ``metadata_phrases`` (the values of those keys that :data:`METADATA_PHRASES`
    phrases) and ``metadata_prompts`` (for a key whose every value is phrased: each phrase filled
    with every class name, for zero-shot recognition of the value)."""
    phrases = {}
    for key, values in names.items():
        known = METADATA_PHRASES.get(dataset, {}).get(key, {})
        if any(v in known for v in values):
            phrases[key] = {v: list(known[v]) for v in values if v in known}
    prompts = {key: {v: [p.format(c) for c in classnames for p in per_value[v]] for v in names[key]}
               for key, per_value in phrases.items() if len(per_value) == len(names[key])}
    return {"metadata_names": {k: list(v) for k, v in names.items()}, "metadata_phrases": phrases,
            "metadata_prompts": prompts}
