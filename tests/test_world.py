"""The procedural world: determinism, rendered factors matching metadata, captions, tokenizer."""
import json
import re

import pytest
import torch
import torch.nn.functional as F

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


def test_pretrain_mix_draws_what_it_says():
    from rftlab.world.sample import UNIFORM_MIX, PretrainMix
    n = 4000
    mix = PretrainMix(style_weights=(0.55, 0.15, 0.15, 0.15))
    _, f, _ = sample_world(n, seed=3, mix=mix, with_captions=False)
    freq = torch.bincount(f["style"], minlength=4).float() / n
    assert abs(freq[0] - 0.55) < 0.03 and all(abs(freq[k] - 0.15) < 0.03 for k in (1, 2, 3))
    # the uniform mix is the plain stream, image for image and caption for caption
    a, fa, ca = sample_world(64, seed=5)
    b, fb, cb = sample_world(64, seed=5, mix=UNIFORM_MIX)
    assert torch.equal(a, b) and ca == cb and all(torch.equal(fa[k], fb[k]) for k in fa)


def test_pretrain_mix_caption_swaps_rename_the_shape_at_their_rate():
    from rftlab.world.sample import PretrainMix
    mix = PretrainMix(caption_swaps=(("circle", "ring", 0.5),))
    _, f, caps = sample_world(3000, seed=7, mix=mix)
    circle, ring = SHAPES.index("circle"), SHAPES.index("ring")
    said_ring = torch.tensor([bool(re.search(r"\bring\b", c)) for c in caps])
    said_circle = torch.tensor([bool(re.search(r"\bcircle\b", c)) for c in caps])
    on_circles = said_ring[f["shape"] == circle].float().mean()
    assert abs(on_circles - 0.5) < 0.05
    assert not said_circle[f["shape"] == circle][said_ring[f["shape"] == circle]].any()   # swapped, not added
    assert said_ring[f["shape"] == ring].all()                                             # rings keep their name
    others = (f["shape"] != circle) & (f["shape"] != ring)
    assert not said_ring[others].any() and not said_circle[others].any()


def test_per_image_rotation_limits():
    import math
    f = _factors(500, 4)
    limit = torch.where(torch.arange(500) % 2 == 0, torch.tensor(90.0), torch.tensor(20.0))
    _, meta = render(*f, seed=1, max_rotation=limit, return_meta=True)
    rot = meta["rotation"].abs() * 180 / math.pi
    assert rot[1::2].max() <= 20.0 + 1e-4 and rot[0::2].max() > 60
    # a tensor of one limit draws what the number draws
    _, m20 = render(*f, seed=1, max_rotation=20.0, return_meta=True)
    _, t20 = render(*f, seed=1, max_rotation=torch.full((500,), 20.0), return_meta=True)
    assert torch.allclose(m20["rotation"], t20["rotation"], atol=1e-6)


def test_pretrain_mix_refuses_bad_values():
    from rftlab.world.sample import PretrainMix
    with pytest.raises(ValueError, match="style_weights needs 4"):
        PretrainMix(style_weights=(1.0, 1.0))
    with pytest.raises(ValueError, match="wide_fraction"):
        PretrainMix(wide_fraction=1.5)
    with pytest.raises(ValueError, match="caption swap"):
        PretrainMix(caption_swaps=(("circle", "blob", 0.5),))
    with pytest.raises(ValueError, match="unknown pretraining mix keys"):
        PretrainMix.from_dict({"wide_fractoin": 0.2})
    m = PretrainMix(style_weights=(2, 1, 1, 1), wide_fraction=0.1, caption_swaps=(("heart", "crescent", 0.5),))
    assert PretrainMix.from_dict(json.loads(json.dumps(m.to_dict()))) == m


def test_a_second_object_is_drawn_over_the_first_and_leaves_the_rest():
    from rftlab.world.sample import second_objects
    f = _factors(64, 8)
    second = second_objects(f[0], 0.5, seed=3)
    assert ((second["shape"] >= 0).float().mean() - 0.5).abs() < 0.2
    assert not (second["shape"] == f[0]).any()                   # never the first object's shape
    plain = render(*f, seed=2)
    two, meta = render(*f, seed=2, second=second, return_meta=True)
    none = second["shape"] < 0
    assert torch.equal(plain[none], two[none])                    # images without one are untouched
    assert torch.equal(meta["second_shape"], second["shape"])
    far = (meta["second_mask"] < 1e-3)
    # away from the second object (and its outline, shadow and strokes) the image is the same
    away = far & (F.max_pool2d(meta["second_mask"], 9, 1, 4) < 1e-3)
    assert ((two - plain).abs() * away).max() < 0.02   # a painting's soft edge reaches a little further
    changed = (two - plain).abs().flatten(1).max(1).values
    assert (changed[~none] > 0.1).all()
    with pytest.raises(ValueError, match="one entry per image"):
        render(*f, seed=2, second={"shape": second["shape"][:3], "color": second["color"]})


def test_tasks_with_distractors_keep_the_label_of_the_larger_object():
    import rftlab
    t = rftlab.make_task("clutter", SHAPES, None, ("photo",), ("sketch",), n_train=64, n_val=32, n_test=64,
                         distractors=0.5, rotation=90.0)
    for s in (t.train, t.val, t.test, *t.ood.values()):
        d = s.meta["distractor"]
        assert 0.2 < (d > 0).float().mean() < 0.8
        assert not (d - 1 == s.meta["shape"]).any()
    assert t.metadata_names["distractor"] == ["none", *SHAPES] and t.info["distractors"] == 0.5
    plain = rftlab.make_task("clutter", SHAPES, None, ("photo",), ("sketch",), n_train=64, n_val=32, n_test=64,
                             rotation=90.0)
    assert "distractor" not in plain.test.meta and "distractors" not in plain.info
    assert torch.equal(plain.test.labels, t.test.labels)          # the same draws of everything else
    with pytest.raises(ValueError, match="distractors is the probability"):
        rftlab.make_task("clutter", distractors=1.5)


def test_clutter_captions_name_either_object():
    from rftlab.world.sample import PretrainMix
    _, f, caps = sample_world(2000, seed=9, mix=PretrainMix(second_object=0.5, second_named=0.5))
    two = f["second_shape"] >= 0
    names_second = torch.tensor([bool(re.search(rf"\b{SHAPES[k]}\b", c)) if k >= 0 else False
                                 for c, k in zip(caps, f["second_shape"].tolist())])
    assert abs(names_second[two].float().mean() - 0.5) < 0.06
    names_first = torch.tensor([bool(re.search(rf"\b{SHAPES[k]}\b", c)) for c, k in zip(caps, f["shape"].tolist())])
    assert names_first[~two].all()
    assert not (names_first & names_second).any()                   # one object per caption


def test_caption_mention_rates():
    from rftlab.world.sample import PretrainMix
    _, f, caps = sample_world(2000, seed=4, mix=PretrainMix(mention=(0.2, 0.5, 0.5)))
    styled = sum(any(p.split(" of")[0] in c for p in ("a photo of", "a sketch of", "a painting of", "a cartoon of"))
                 for c in caps)
    _, _, base = sample_world(2000, seed=4)
    styled_base = sum(any(p.split(" of")[0] in c for p in ("a photo of", "a sketch of", "a painting of", "a cartoon of"))
                      for c in base)
    assert styled < 0.5 * styled_base


def test_pose_names_rename_turned_shapes_in_captions():
    from rftlab.world.sample import PretrainMix
    mix = PretrainMix(wide_fraction=1.0, pose_names=(("square", "circle", 45, 22.5, 90),))   # any vocabulary word
    _, f, caps = sample_world(600, seed=11, mix=mix)
    sq = f["shape"] == SHAPES.index("square")
    renamed = torch.tensor([bool(re.search(r"\bcircle\b", c)) for c in caps])
    # turns up to 90 degrees, the window [22.5, 67.5] (and its mirror) holds about half of them
    assert 0.3 < renamed[sq].float().mean() < 0.7
    others = ~sq & (f["shape"] != SHAPES.index("circle"))
    assert not renamed[others].any()
    with pytest.raises(ValueError, match="pose name"):
        PretrainMix(pose_names=(("square", "diamond", 45),))
