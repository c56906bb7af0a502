"""The procedural world: determinism, rendered factors matching metadata, captions, tokenizer."""
import json
import re

import pytest
import torch

from rftlab.world import (BACKGROUNDS, COLORS, SHAPES, STYLES, WorldTokenizer, captions, factor_phrases,
                          factor_prompts, render, sample_factors, sample_world)
from rftlab.world.captions import spurious_phrases
from rftlab.world.factors import BACKGROUND_PHRASES, SPACE


def _factors(n, seed, **fixed):
    f = sample_factors(n, seed, **fixed)
    return f["shape"], f["color"], f["background"], f["style"]


def test_render_is_deterministic_in_seed():
    f = _factors(64, 0)
    a, b = render(*f, seed=5), render(*f, seed=5)
    assert torch.equal(a, b)
    assert not torch.equal(a, render(*f, seed=6))
    assert a.shape == (64, 3, 32, 32) and a.min() >= 0 and a.max() <= 1


def test_render_does_not_depend_on_batch_grouping():
    f = _factors(40, 1)
    whole = render(*f, seed=2)
    assert torch.equal(whole[:10], render(*(t for t in f), seed=2)[:10])


def test_sketches_are_grayscale_and_other_styles_are_not():
    f = _factors(200, 2)
    img = render(*f, seed=3)
    style = f[3]
    sk = img[style == STYLES.index("sketch")]
    assert torch.equal(sk[:, 0], sk[:, 1]) and torch.equal(sk[:, 1], sk[:, 2])
    photo = img[style == STYLES.index("photo")]
    assert (photo[:, 0] - photo[:, 2]).abs().mean() > 0.05


def test_cartoon_object_colour_matches_metadata():
    n = 120
    shape = torch.full((n,), SHAPES.index("circle"))
    color = torch.arange(n) % len(COLORS)
    bg = torch.arange(n) % len(BACKGROUNDS)
    style = torch.full((n,), STYLES.index("cartoon"))
    img, meta = render(shape, color, bg, style, seed=4, return_meta=True)
    inside = (meta["mask"] > 0.99).float()
    mean = (img * inside).sum((2, 3)) / inside.sum((2, 3))
    table = torch.tensor(list(COLORS.values()))
    assert (mean - table[color]).abs().max() < 0.12
    # and the nearest palette colour is the one in the metadata
    assert torch.equal(torch.cdist(mean, table).argmin(1), color)


def test_rings_have_a_hole_and_circles_do_not():
    n = 32
    for name, expect_filled in (("ring", False), ("circle", True), ("square", True)):
        shape = torch.full((n,), SHAPES.index(name))
        _, meta = render(shape, torch.zeros(n), torch.zeros(n), torch.zeros(n), seed=5, return_meta=True)
        cx, cy = meta["center"].round().long().clamp(0, 31).unbind(1)
        centre = meta["mask"][torch.arange(n), 0, cy, cx]
        assert bool((centre > 0.5).all()) == expect_filled, name


def test_backgrounds_are_recognisable_from_their_pixels():
    """A nearest-centroid classifier on background pixels recovers the background metadata."""
    def bg_colour(seed):
        f = _factors(600, seed, style=STYLES.index("photo"))
        img, meta = render(*f, seed=seed, return_meta=True)
        out = (1 - meta["mask"] > 0.99).float()
        return (img * out).sum((2, 3)) / out.sum((2, 3)).clamp_min(1), f[2]
    ref, ref_bg = bg_colour(10)
    centroids = torch.stack([ref[ref_bg == k].mean(0) for k in range(len(BACKGROUNDS))])
    x, bg = bg_colour(11)
    acc = (torch.cdist(x, centroids).argmin(1) == bg).float().mean()
    assert acc > 0.9


def test_captions_always_name_the_shape_and_never_misname_a_factor():
    f = sample_factors(500, 7)
    caps = captions(f["shape"], f["color"], f["background"], f["style"], seed=8)
    colors, bgs = list(COLORS), list(BACKGROUNDS)
    for i, c in enumerate(caps):
        words = set(re.findall(r"[a-z]+", c))
        assert SHAPES[f["shape"][i]] in words
        named = words & set(colors)
        assert named <= {colors[f["color"][i]]}
        if STYLES[f["style"][i]] == "sketch":
            assert not named
        said = [b for b, phrases in BACKGROUND_PHRASES.items() if any(c.endswith(" " + p) for p in phrases)]
        assert said in ([], [bgs[f["background"][i]]])
    # a random subset is mentioned: some captions name colour, some not
    assert 0.2 < sum(any(k in c for k in colors) for c in caps) / len(caps) < 0.6


def test_tokenizer_follows_clip_conventions():
    tok = WorldTokenizer()
    ids = tok(["a red star in the snow", "a zebra"])
    assert ids.shape == (2, tok.context_length)
    assert tok.eot_token_id == tok.vocab_size - 1 == ids.max()
    assert ids[0].argmax() == 7  # <start> + 6 words, then <end>
    assert ids[1, 2] == tok.unk_token_id and tok.unknown_words("a zebra") == ["zebra"]
    cfg = json.load(open("rftlab/model_configs/rftlab-world.json"))
    assert cfg["text_cfg"]["vocab_size"] == tok.vocab_size
    assert cfg["text_cfg"]["context_length"] == tok.context_length
    # it tells which of its words the world model learned: the captions' and templates', not the extra ones
    assert {"sketch", "water", "an"} <= tok.trained_words < set(tok.words)
    assert "striped" in tok.words and "striped" not in tok.trained_words


def test_random_texts_are_lipsum_shaped():
    tok = WorldTokenizer()
    t = tok.random_texts(5, 8, torch.Generator().manual_seed(0))
    assert (t[:, 0] == tok.sot_token_id).all() and (t[:, 9] == tok.eot_token_id).all()
    body = t[:, 1:9]
    assert ((body >= 2) & (body < tok.sot_token_id)).all()


def test_factor_prompts_cover_every_value():
    for factor in ("shape", "color", "background", "style"):
        p = factor_prompts(factor)
        assert list(p) == list(SPACE.names(factor)) and all(p.values())


def test_factor_phrases_are_class_templates_of_every_value_but_the_shape():
    phrases = factor_phrases()
    assert list(phrases) == ["background", "color", "style"]
    for factor, per_value in phrases.items():
        assert list(per_value) == list(SPACE.names(factor))
        assert all(t.count("{}") == 1 for texts in per_value.values() for t in texts)
    assert phrases["background"]["lake"][2] == "{} on the water" and phrases["style"]["sketch"][0] == "a sketch of a {}"
    # StarFT's world phrases are the same texts: every background phrase, then every colour
    assert spurious_phrases() == ([f"{{}} {p}" for pool in BACKGROUND_PHRASES.values() for p in pool]
                                  + [f"{c} {{}}" for c in COLORS])


def test_bad_factor_names_are_explained():
    with pytest.raises(ValueError, match="choose one of"):
        SPACE.index("shape", "hexagon")
    with pytest.raises(ValueError, match="factors are"):
        sample_factors(4, 0, texture=1)
    with pytest.raises(ValueError, match="same length"):
        render(torch.zeros(3), torch.zeros(2), torch.zeros(3), torch.zeros(3))


def test_sample_world_returns_images_factors_and_captions():
    images, f, caps = sample_world(16, seed=1, style=0)
    assert images.shape == (16, 3, 32, 32) and len(caps) == 16
    assert (f["style"] == 0).all()
