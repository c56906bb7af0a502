"""Captions for world images, the world's word-level tokenizer and its prompt sets."""
from __future__ import annotations

import re

import torch

from ..data import named_values
from .factors import (BACKGROUND_PHRASES, COLORS, PLAIN_PREFIXES, SHAPES, STYLE_PREFIXES,
                      STYLES)

_BG_NAMES = tuple(BACKGROUND_PHRASES)
_COLOR_NAMES = tuple(COLORS)

# Zero-shot class templates of the world (the world's answer to CLIP's 80 ImageNet templates).
WORLD_TEMPLATES: tuple[str, ...] = (
    "a {}", "the {}", "a photo of a {}", "a picture of a {}", "a sketch of a {}",
    "a drawing of a {}", "a cartoon of a {}", "a clip art of a {}", "a painting of a {}",
    "an oil painting of a {}", "an image of a {}", "there is a {}",
)

def _world_contexts() -> tuple[str, ...]:
    """About 80 diverse contexts for CAR-FT (the world's answer to CLIP's 80 ImageNet templates,
    "a bad photo of a {}", "a sculpture of a {}"...): every style prefix and plain prefix, every
    background phrase, every colour, and style x background, colour x background and
    style x colour combinations, all made of words the world's captions use."""
    styles = [p for pool in STYLE_PREFIXES.values() for p in pool]
    places = [p for pool in BACKGROUND_PHRASES.values() for p in pool]
    colours = list(COLORS)
    out = [f"{p} {{}}" for p in styles] + [f"{p} {{}}" for p in PLAIN_PREFIXES]
    out += [f"a {{}} {b}" for b in places]
    out += [f"a {c} {{}}" for c in colours]
    # one combination per (style, place type) and (colour, place) so every value appears again
    first = [pool[0] for pool in STYLE_PREFIXES.values()]
    out += [f"{s} {{}} {BACKGROUND_PHRASES[b][1]}" for s in first for b in BACKGROUND_PHRASES]
    out += [f"a {c} {{}} {BACKGROUND_PHRASES[b][2]}" for c, b in zip(colours, BACKGROUND_PHRASES)]
    return tuple(re.sub(r"\ba ([aeiou])", r"an \1", t) for t in dict.fromkeys(out))


WORLD_CONTEXTS: tuple[str, ...] = _world_contexts()

# Words that captions never use but that users often type; they get an embedding
# (untrained) instead of <unk>, which keeps probes about them meaningful to compare.
_EXTRA_WORDS = ("object", "shape", "background", "land", "animal", "bird", "blurred",
                "texture", "striped", "with", "and", "at", "sunset", "near", "of")


def caption(shape: int, color: int, background: int, style: int, u: torch.Tensor,
            rates: tuple[float, float, float] = (0.6, 0.5, 0.5), name: str | None = None) -> str:
    """Alt-text-like caption naming the shape and a random subset of the other factors.

    ``u`` holds 6 uniform numbers in [0, 1) that choose what is mentioned and how; ``rates``: how
    often the style, the colour and the background are mentioned; ``name``: the word for the shape
    (default its own name).
    """
    def pick(options, x):
        return options[min(int(x * len(options)), len(options) - 1)]

    style_name = STYLES[style]
    prefix = pick(STYLE_PREFIXES[style_name], u[1]) if u[0] < rates[0] else pick(PLAIN_PREFIXES, u[1])
    words = [prefix]
    if u[2] < rates[1] and style_name != "sketch":  # a sketch shows no colour
        words.append(_COLOR_NAMES[color])
    words.append(name or SHAPES[shape])
    if u[3] < rates[2]:
        words.append(pick(BACKGROUND_PHRASES[_BG_NAMES[background]], u[4]))
    return re.sub(r"\ba ([aeiou])", r"an \1", " ".join(words))


def captions(shape, color, background, style, seed: int = 0, rates=(0.6, 0.5, 0.5), names=None) -> list[str]:
    """One :func:`caption` per image; ``rates``: how often captions mention the style, the colour and
    the background; ``names``: per image, the word for its shape (None: its own name)."""
    g = torch.Generator().manual_seed(int(seed))
    u = torch.rand(len(shape), 6, generator=g)
    names = names or [None] * len(shape)
    return [caption(int(a), int(b), int(c), int(d), u[i], rates, names[i])
            for i, (a, b, c, d) in enumerate(zip(shape, color, background, style))]


def world_vocabulary() -> list[str]:
    """Every word the world's captions and templates can produce, sorted."""
    texts = list(PLAIN_PREFIXES) + list(WORLD_TEMPLATES) + list(SHAPES) + list(COLORS)
    for pool in (*BACKGROUND_PHRASES.values(), *STYLE_PREFIXES.values()):
        texts.extend(pool)
    texts.extend(_EXTRA_WORDS)
    words = set()
    for t in texts:
        words.update(_split(t.replace("{}", " ")))
    words.add("an")
    return sorted(words)


def trained_vocabulary() -> list[str]:
    """The words the world's captions and templates use: the ones the embedded model learned
    (:func:`world_vocabulary` also holds a few extra words that only get untrained embeddings)."""
    texts = list(PLAIN_PREFIXES) + list(WORLD_TEMPLATES) + list(SHAPES) + list(COLORS)
    for pool in (*BACKGROUND_PHRASES.values(), *STYLE_PREFIXES.values()):
        texts.extend(pool)
    return sorted({w for t in texts for w in _split(t.replace("{}", " "))} | {"an"})


def _split(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


class WorldTokenizer:
    """Word-level tokenizer with CLIP's conventions.

    Ids: 0 = padding, 1 = <unk>, words, then <start> and <end>; the end token has the
    largest id, as in CLIP's BPE, so open_clip's argmax pooling finds it.
    """

    def __init__(self, vocabulary: list[str] | None = None, context_length: int = 16):
        self.words = list(vocabulary) if vocabulary is not None else world_vocabulary()
        # the words the world model learned (its captions' and templates'); the others' embeddings are untrained
        self.trained_words = frozenset(trained_vocabulary())
        self.pad_token_id, self.unk_token_id = 0, 1
        self._index = {w: i + 2 for i, w in enumerate(self.words)}
        self.sot_token_id = len(self.words) + 2
        self.eot_token_id = len(self.words) + 3
        self.vocab_size = len(self.words) + 4
        self.context_length = context_length

    def encode(self, text: str) -> list[int]:
        return [self._index.get(w, self.unk_token_id) for w in _split(text)]

    def unknown_words(self, text: str) -> list[str]:
        return [w for w in _split(text) if w not in self._index]

    def __call__(self, texts, context_length: int | None = None) -> torch.Tensor:
        if isinstance(texts, str):
            texts = [texts]
        L = context_length or self.context_length
        out = torch.zeros(len(texts), L, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = [self.sot_token_id] + self.encode(t)[: L - 2] + [self.eot_token_id]
            out[i, : len(ids)] = torch.tensor(ids)
        return out

    def random_texts(self, m: int, length: int, generator: torch.Generator | None = None,
                     device=None) -> torch.Tensor:
        """Lipsum-FT's random texts: <start>, ``length`` uniform word ids, <end>."""
        L = self.context_length
        if length > L - 2:
            raise ValueError(f"random text length {length} does not fit context length {L}")
        out = torch.zeros(m, L, dtype=torch.long)
        out[:, 0] = self.sot_token_id
        out[:, 1:length + 1] = torch.randint(2, self.sot_token_id, (m, length), generator=generator)
        out[:, length + 1] = self.eot_token_id
        return out.to(device) if device is not None else out


def factor_prompts(factor: str) -> dict[str, list[str]]:
    """Prompts that name each value of a factor, ensembled over the other factors' words."""
    if factor == "shape":
        return {s: [t.format(s) for t in WORLD_TEMPLATES] for s in SHAPES}
    if factor == "color":
        return {c: [f"a {c} {s}" for s in SHAPES] + [f"a photo of a {c} {s}" for s in SHAPES]
                for c in COLORS}
    if factor == "background":
        return {b: [f"a {s} {p}" for s in SHAPES for p in BACKGROUND_PHRASES[b]] for b in _BG_NAMES}
    if factor == "style":
        return {st: [f"{p} {s}" for s in SHAPES for p in STYLE_PREFIXES[st]] for st in STYLES}
    raise ValueError(f"unknown factor {factor!r}; choose shape, color, background or style")


def factor_phrases() -> dict[str, dict[str, list[str]]]:
    """Class templates ('{}' is the class) that name each value of the world's factors besides
    the shape, factor by factor: every background phrase ("{} on the water"), every colour
    ("blue {}") and every style prefix ("a sketch of a {}"). World tasks carry them as
    ``metadata_phrases``."""
    return {"background": {b: [f"{{}} {p}" for p in BACKGROUND_PHRASES[b]] for b in _BG_NAMES},
            "color": {c: [f"{c} {{}}"] for c in _COLOR_NAMES},
            "style": {st: [f"{p} {{}}" for p in STYLE_PREFIXES[st]] for st in STYLES}}


def spurious_phrases() -> list[str]:
    """StarFT-style class-agnostic spurious phrases for the world ('{}' is the class):
    every background phrase and every colour, the world's known spurious factors."""
    phrases = factor_phrases()
    return [t for factor in ("background", "color") for texts in phrases[factor].values() for t in texts]


def world_concept(description: str) -> dict | None:
    """The world factor a description names, from the world's own phrases (:func:`factor_phrases`):
    ``{"factor": "background", "values": ["lake", "ocean"]}`` for ``"{} on the water"``; None when
    it names none (or several factors). On a world task, :func:`rftlab.analysis.discover_shortcuts`
    labels its rows the same way, through the task's ``metadata_phrases``."""
    found = named_values(description, factor_phrases())
    return None if found is None else {"factor": found[0], "values": found[1]}
