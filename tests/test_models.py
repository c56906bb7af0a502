"""Loading models: the shipped default, checkpoints, open_clip names, files, local-dir, errors."""
import json
import time

import pytest
import torch

import rftlab
from rftlab.errors import WeightsNotFoundError
from rftlab.pretrain import world_zeroshot_report

TINY = {"embed_dim": 32,
        "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
        "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}


@pytest.fixture(scope="module")
def tiny_arch(tmp_path_factory):
    """Two tiny open_clip architectures (GELU and QuickGELU) registered from JSON files on disk."""
    import open_clip
    d = tmp_path_factory.mktemp("configs")
    (d / "rftlab-test-tiny.json").write_text(json.dumps(TINY))
    (d / "rftlab-test-tiny-quickgelu.json").write_text(json.dumps({**TINY, "quick_gelu": True}))
    open_clip.add_model_config(d)
    return "rftlab-test-tiny"


def _outputs(clip, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(4, 3, 32, 32, generator=g)
    tokens = clip.tokenizer(["a photo of a star", "a red ring", "a sketch", "snow"])
    with torch.no_grad():
        return clip.model.encode_image(x), clip.model.encode_text(tokens)


def test_default_model_loads_offline_with_its_record(clip):
    assert clip.arch == "rftlab-world" and clip.is_world
    assert not clip.model.training
    rec = clip.info["record"]
    assert rec["command"].startswith("rftlab pretrain") and rec["final"]
    n = sum(p.numel() for p in clip.model.parameters())
    assert n * 4 < 20e6  # ships under 20 MB


def test_shipped_model_meets_zero_shot_targets(clip):
    r = world_zeroshot_report(clip, n_per_style=200, seed=123)
    assert r["shape_acc_photo"] >= 0.90, r
    for style in ("sketch", "cartoon", "painting"):
        assert r[f"shape_acc_{style}"] >= 0.75, r
    assert r["background_acc"] >= 0.90 and r["style_acc"] >= 0.90, r


def test_world_checkpoint_round_trip(clip, tmp_path):
    path = rftlab.save_checkpoint(clip, tmp_path / "w.pt")
    again = rftlab.load_model("rftlab-world", pretrained=str(path))
    for a, b in zip(_outputs(clip), _outputs(again)):
        assert torch.equal(a, b)


def test_world_local_dir_round_trip(clip, tmp_path):
    rftlab.save_local_dir(clip, tmp_path / "dir")
    again = rftlab.load_model(f"local-dir:{tmp_path / 'dir'}")
    assert again.arch == "rftlab-world"
    for a, b in zip(_outputs(clip), _outputs(again)):
        assert torch.equal(a, b)


def test_open_clip_architecture_from_weights_file_and_local_dir(tiny_arch, tmp_path):
    torch.manual_seed(0)
    ref = rftlab.load_model(tiny_arch)  # random init of a registered open_clip config
    assert ref.pretrained is None
    # a plain open_clip state dict on disk
    torch.save(ref.model.state_dict(), tmp_path / "tiny.pt")
    from_file = rftlab.load_model(tiny_arch, pretrained=str(tmp_path / "tiny.pt"))
    # an rftlab checkpoint (with the architecture name)
    rftlab.save_checkpoint(ref, tmp_path / "tiny-rftlab.pt")
    from_ck = rftlab.load_model(tiny_arch, pretrained=str(tmp_path / "tiny-rftlab.pt"))
    # open_clip's local-dir layout
    rftlab.save_local_dir(ref, tmp_path / "tinydir")
    from_dir = rftlab.load_model(f"local-dir:{tmp_path / 'tinydir'}")
    for other in (from_file, from_ck, from_dir):
        for a, b in zip(_outputs(ref), _outputs(other)):
            assert torch.equal(a, b)


def test_checkpoint_of_another_architecture_is_refused(tiny_arch, tmp_path):
    torch.manual_seed(0)
    quick = rftlab.load_model(tiny_arch + "-quickgelu")
    rftlab.save_checkpoint(quick, tmp_path / "q.pt")
    with pytest.raises(ValueError, match="architecture 'rftlab-test-tiny-quickgelu'"):
        rftlab.load_model(tiny_arch, pretrained=str(tmp_path / "q.pt"))
    with pytest.raises(ValueError, match="not 'rftlab-world'"):
        rftlab.load_model("rftlab-world", pretrained=str(tmp_path / "q.pt"))


def test_unknown_names_tags_and_missing_files_are_explained(tmp_path):
    with pytest.raises(ValueError, match="Did you mean: ViT-B-32"):
        rftlab.load_model("ViT-B-23")
    with pytest.raises(ValueError, match="its tags are: .*openai"):
        rftlab.load_model("ViT-B-32", pretrained="imagenet-42")
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        rftlab.load_model("ViT-B-32", pretrained=str(tmp_path / "nope.pt"))
    with pytest.raises(WeightsNotFoundError, match="open_clip_config.json"):
        rftlab.load_model(f"local-dir:{tmp_path}")


def test_pretrained_tag_without_network_fails_fast(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache
    monkeypatch.setattr("rftlab.models.loading._online", lambda: False)
    monkeypatch.setattr("rftlab.models.loading._cached_tag_file", lambda n, t: (None, "hf repo X, file Y"))
    t0 = time.time()
    with pytest.raises(WeightsNotFoundError, match="(?s)Looked for: hf repo X.*pretrained='/path/to/file'") as err:
        rftlab.load_model("ViT-B-32", pretrained="openai")
    assert time.time() - t0 < 10
    assert "local-dir:" in str(err.value)


def test_cache_lookup_names_the_repository_and_file():
    from rftlab.models.loading import _cached_tag_file
    path, where = _cached_tag_file("ViT-B-32", "openai")
    assert path is None or path.endswith((".bin", ".safetensors", ".pt"))
    assert "Hugging Face repo" in where or "cache" in where


def test_real_network_probe_answers_quickly():
    from rftlab.models.loading import _online
    t0 = time.time()
    _online()
    assert time.time() - t0 < 5


def test_imagenet_templates_build_a_head_for_a_real_architecture(tiny_arch):
    from rftlab.zeroshot import get_templates, zeroshot_head
    torch.manual_seed(0)
    tiny = rftlab.load_model(tiny_arch)
    t = get_templates("imagenet")
    assert len(t) == 80
    head = zeroshot_head(tiny.model, tiny.tokenizer, ["goldfish", "tabby cat"], t)
    assert head.shape == (32, 2)
    assert torch.allclose(head.norm(dim=0), torch.ones(2), atol=1e-5)
    with pytest.raises(ValueError, match="'{}'"):
        zeroshot_head(tiny.model, tiny.tokenizer, ["cat"], ["a photo of a cat"])
    with pytest.raises(ValueError, match="template set"):
        get_templates("cifar")


def test_world_transform_takes_images_from_disk(clip):
    """PIL images (real datasets) are resized and centre-cropped to the world's 32 pixels."""
    import numpy as np
    from PIL import Image
    im = Image.fromarray((np.random.default_rng(0).random((50, 70, 3)) * 255).astype("uint8"))
    x = clip.preprocess(im)
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    gray = clip.preprocess(Image.new("L", (40, 40), 128))  # converted to RGB
    assert gray.shape == (3, 32, 32) and torch.allclose(gray, gray[0].expand_as(gray))
