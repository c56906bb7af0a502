"""rftlab.encode and as_classifier: the CLIP inside any object and its features, in one place."""
import types

import pytest
import torch

from rftlab.classifier import ClipClassifier, as_classifier
from rftlab.encode import clip_of, embed_dim, encode_split, encode_text, image_tower, text_features
from rftlab.methods import TrainResult


@pytest.fixture(scope="module")
def zs(clip, small_spurious):
    return ClipClassifier.zeroshot(clip, small_spurious.classnames, small_spurious.templates)


def test_clip_of_finds_the_same_clip_in_every_holder(clip, zs):
    result = TrainResult(zs)
    for holder in (zs, clip, clip.model, result):
        assert clip_of(holder) is clip.model
        assert image_tower(holder) is clip.model.visual
        assert embed_dim(holder) == zs.head.shape[0]
    with pytest.raises(ValueError, match="the TrainResult has no trained model yet; run it first"):
        clip_of(TrainResult(None))
    with pytest.raises(TypeError, match="expected a ClipClassifier, a ClipModel, an open_clip model, .*got str"):
        clip_of("model")


def test_as_classifier_needs_a_head_unless_only_features_are_read(clip, zs):
    panel = types.SimpleNamespace(classifier=None)      # what a TrainPanel is before its first run
    assert as_classifier(TrainResult(zs)) is zs and as_classifier(zs) is zs
    with pytest.raises(ValueError, match="model 'ft': the SimpleNamespace has no trained model yet; run it first"):
        as_classifier(panel, "model 'ft'")
    with pytest.raises(TypeError, match="the model must be a ClipClassifier"):
        as_classifier(clip)
    bare = as_classifier(clip, features_only=True)
    assert bare.clip is clip.model and bare.head.shape == (zs.head.shape[0], 1) and not bare.head.any()
    with pytest.raises(TypeError, match="the model: expected a ClipClassifier"):
        as_classifier("model", features_only=True)


def test_features_are_the_same_from_every_holder(clip, zs, small_spurious):
    split, t = small_spurious.test, clip.preprocess
    feats = encode_split(zs, split, t)
    assert feats.dtype == torch.float32 and torch.allclose(feats.norm(dim=1), torch.ones(len(split)))
    assert torch.equal(encode_split(clip, split, t), feats) and torch.equal(encode_split(clip.model, split, t), feats)
    assert not clip.model.training                      # the mode it had is restored
    texts = ["a red circle", "a blue square", "on the water"]
    one_by_one = torch.cat([text_features(zs, clip.tokenizer, [x]) for x in texts])
    batched = text_features(clip, clip.tokenizer, texts, batch_size=2)
    assert torch.allclose(batched, one_by_one, atol=1e-6)
    assert torch.allclose(encode_text(clip.model, clip.tokenizer(texts)), batched, atol=1e-6)
    with pytest.raises(ValueError, match="use the tokenizer that came with the model"):
        text_features(zs, types.SimpleNamespace(vocab_size=10 ** 6), texts)
