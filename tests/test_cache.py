"""The feature cache: keys, hits, corrupt files, and its users (evaluate, LP)."""
import copy

import pytest
import torch

from rftlab.cache import (FeatureCache, cached_encode_split, default_cache_dir, split_fingerprint,
                          transform_fingerprint)
from rftlab.classifier import ClipClassifier
from rftlab.data import Split
from rftlab.encode import encode_split
from rftlab.evaluation import evaluate
from rftlab.models.factory import WorldTransform


@pytest.fixture(scope="module")
def zs(clip, small_spurious):
    return ClipClassifier.zeroshot(clip, small_spurious.classnames, small_spurious.templates)


def test_key_depends_on_image_weights_only(clip, zs, small_spurious, tmp_path):
    cache, split, t = FeatureCache(tmp_path), small_spurious.test, clip.preprocess
    key = cache.key(zs, split, t)
    assert key == cache.key(copy.deepcopy(zs), split, t)      # same weights, another object
    assert key == cache.key(clip, split, t)                    # the ClipModel it was built from
    other = copy.deepcopy(zs)
    with torch.no_grad():
        other.head.mul_(2)                                     # head and text tower do not change features
        next(other.clip.transformer.parameters()).add_(1)
    assert cache.key(other, split, t) == key
    with torch.no_grad():                                      # one image-tower weight, by one ulp
        w = next(other.clip.visual.parameters())
        w.view(-1)[0] = torch.nextafter(w.view(-1)[0], torch.tensor(float("inf")))
    assert cache.key(other, split, t) != key


def test_key_depends_on_preprocessing_and_split(clip, zs, small_spurious, tmp_path):
    cache, t = FeatureCache(tmp_path), clip.preprocess
    key = cache.key(zs, small_spurious.test, t)
    assert cache.key(zs, small_spurious.test, WorldTransform(std=(0.3, 0.3, 0.3))) != key
    assert cache.key(zs, small_spurious.val, t) != key
    s = small_spurious.test
    flipped = Split(s.name, s.images, 1 - s.labels, s.meta)
    assert cache.key(zs, flipped, t) != key
    images = s.images.clone()
    images[0, 0, 0, 0] ^= 1
    assert cache.key(zs, Split(s.name, images, s.labels), t) != key


def test_fingerprints_of_paths_and_transforms_are_stable():
    def make():
        def convert(x):
            return x
        return convert

    class Compose:
        def __init__(self, f):
            self.f = f

        def __repr__(self):
            return f"Compose({self.f!r})"

    assert transform_fingerprint(Compose(make())) == transform_fingerprint(Compose(make()))
    a = Split("test", ["a/1.jpg", "a/2.jpg"], [0, 1])
    assert split_fingerprint(a) == split_fingerprint(Split("test", ["a/1.jpg", "a/2.jpg"], [0, 1]))
    assert split_fingerprint(a) != split_fingerprint(Split("test", ["a/1.jpg", "b/2.jpg"], [0, 1]))


def test_hit_returns_identical_features(clip, zs, small_spurious, tmp_path):
    cache, split = FeatureCache(tmp_path), small_spurious.test
    first = cache.features(zs, split, clip.preprocess)
    assert (cache.hits, cache.misses) == (0, 1)
    assert torch.equal(first, encode_split(zs, split, clip.preprocess))
    again = cache.features(clip, split, clip.preprocess)      # a ClipModel reads the same entry
    assert (cache.hits, cache.misses) == (1, 1) and torch.equal(first, again)
    assert [p.suffix for p in tmp_path.iterdir()] == [".pt"]  # no temporary file left behind
    assert torch.equal(cached_encode_split(zs, split, clip.preprocess, cache=None), first)


def test_corrupt_file_is_recomputed_with_a_warning(clip, zs, small_spurious, tmp_path):
    cache, split = FeatureCache(tmp_path), small_spurious.val
    good = cache.features(zs, split, clip.preprocess)
    path = cache.path(cache.key(zs, split, clip.preprocess))
    path.write_bytes(b"not a torch file")
    with pytest.warns(UserWarning, match="unreadable"):
        again = cache.features(zs, split, clip.preprocess)
    assert torch.equal(again, good) and cache.misses == 2
    torch.save({"features": good[:3]}, path)                   # readable but the wrong length
    with pytest.warns(UserWarning, match="unreadable"):
        assert torch.equal(cache.features(zs, split, clip.preprocess), good)
    assert torch.equal(torch.load(path, weights_only=True)["features"], good)   # rewritten


def test_failed_write_leaves_nothing(clip, zs, small_spurious, tmp_path, monkeypatch):
    cache = FeatureCache(tmp_path)

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError, match="disk full"):
        cache.features(zs, small_spurious.val, clip.preprocess)
    assert list(tmp_path.iterdir()) == []


def test_evaluate_through_the_cache_gives_identical_metrics(clip, zs, small_spurious, tmp_path):
    plain = evaluate(zs, small_spurious, clip.preprocess)
    cache = FeatureCache(tmp_path)
    assert evaluate(zs, small_spurious, clip.preprocess, cache=cache) == plain
    assert evaluate(zs, small_spurious, clip.preprocess, cache=str(tmp_path)) == plain
    assert cache.misses == 1 and len(list(tmp_path.glob("*.pt"))) == 1   # the ID test set


def test_default_folder_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RFTLAB_CACHE_DIR", str(tmp_path / "x"))
    assert default_cache_dir() == tmp_path / "x" and FeatureCache().root == tmp_path / "x"
    assert FeatureCache(tmp_path / "y").root == tmp_path / "y"
    with pytest.raises(TypeError, match="cache must be"):
        cached_encode_split(None, None, None, cache=3)


def test_lp_reads_train_features_from_the_cache(clip, small_spurious, tmp_path):
    from rftlab.recipes import TrainConfig
    from rftlab.train import Trainer
    cache = FeatureCache(tmp_path)
    clip = copy.copy(clip)                       # the Trainer changes requires_grad flags: work on a copy
    clip.model = copy.deepcopy(clip.model)
    heads = []
    for _ in range(2):
        tr = Trainer("lp", clip, small_spurious, TrainConfig(progress=False, feature_cache=cache), iters=5)
        heads.append(tr.fit().classifier.head.detach().clone())
    assert (cache.misses, cache.hits) == (2, 2)   # train and val (the probe's L2 is chosen on val), then read back
    assert torch.equal(heads[0], heads[1])
    assert cache.task_features(clip, small_spurious, clip.preprocess)["train"].shape[0] == len(small_spurious.train)
