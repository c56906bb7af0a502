"""What every CLIP rftlab uses is made of, for the embedded world model and real open_clip models.

A :class:`ClipModel` is the open_clip model plus the tokenizer and image transform that belong
to it, and the architecture name, so no caller ever pairs weights with the wrong tokenizer or
architecture variant. Here are the world model's architecture (:func:`create_world_model`), its
transform and :func:`save_checkpoint`; :func:`rftlab.models.loading.load_model` builds a
ClipModel from a name and weights.
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .world_cnn import register_world_cnn

DEFAULT_MODEL = "rftlab-world"
_PKG = Path(__file__).resolve().parent.parent
CONFIG_DIR = _PKG / "model_configs"
DEFAULT_WEIGHTS = _PKG / "weights" / "rftlab-world.pt"
WORLD_MEAN = (0.5, 0.5, 0.5)
WORLD_STD = (0.25, 0.25, 0.25)
_registered = False


def register_configs() -> None:
    """Register rftlab's architectures with open_clip (and its CNN with timm). Idempotent."""
    global _registered
    if _registered:
        return
    import open_clip
    register_world_cnn()
    open_clip.add_model_config(CONFIG_DIR)
    _registered = True


class WorldTransform:
    """World images (uint8 or float tensors in [0, 1], one or a batch) to normalised float
    tensors. Other images (PIL, from datasets on disk) are resized and centre-cropped to the
    world's ``size`` first, so the world model can be probed on real data too."""

    def __init__(self, mean=WORLD_MEAN, std=WORLD_STD, size: int = 32):
        self.mean = torch.tensor(mean).view(-1, 1, 1)
        self.std = torch.tensor(std).view(-1, 1, 1)
        self.size = size

    def __call__(self, x) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            from torchvision.transforms import functional as TF
            x = TF.center_crop(TF.resize(TF.pil_to_tensor(x.convert("RGB")), self.size, antialias=True), self.size)
        if x.dtype == torch.uint8:
            x = x.float() / 255
        return (x - self.mean.to(x.device)) / self.std.to(x.device)

    def __repr__(self):
        return f"WorldTransform(mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()})"


@dataclass
class ClipModel:
    """A CLIP with everything needed to use it."""

    model: torch.nn.Module
    tokenizer: Callable
    preprocess: Callable
    arch: str
    pretrained: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def is_world(self) -> bool:
        return self.arch == DEFAULT_MODEL

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def to(self, device) -> "ClipModel":
        self.model.to(device)
        return self


class _DropMessage(logging.Filter):
    def __init__(self, prefix: str):
        super().__init__()
        self.prefix = prefix

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefix)


@contextlib.contextmanager
def quiet_random_init():
    """open_clip warns 'No pretrained weights loaded' for every model it builds without weights;
    rftlab loads its own weights right after, so the warning would only mislead."""
    f = _DropMessage("No pretrained weights loaded")
    root = logging.getLogger()
    root.addFilter(f)
    try:
        yield
    finally:
        root.removeFilter(f)


def create_world_model(vocabulary: list[str] | None = None) -> ClipModel:
    """A randomly initialised world CLIP (the architecture of rftlab's default)."""
    import open_clip

    from ..world.captions import WorldTokenizer

    register_configs()
    tok = WorldTokenizer(vocabulary)
    cfg = open_clip.get_model_config(DEFAULT_MODEL)
    if cfg["text_cfg"]["vocab_size"] != tok.vocab_size:
        raise RuntimeError(
            f"rftlab-world.json has vocab_size {cfg['text_cfg']['vocab_size']} but the world "
            f"tokenizer has {tok.vocab_size} ids: update the config after changing the vocabulary")
    with quiet_random_init():
        model = open_clip.create_model(DEFAULT_MODEL)
    return ClipModel(model, tok, WorldTransform(), DEFAULT_MODEL, None)


def save_checkpoint(clip: ClipModel, path: str | os.PathLike, **extra) -> Path:
    """Weights plus what is needed to rebuild the model exactly (architecture, tokenizer),
    written atomically. A ``.safetensors`` path gives a safetensors file (the rest as JSON
    metadata, so ``extra`` must be JSON values); any other a torch file of tensors and plain
    containers. ``load_model(clip.arch, pretrained=path)`` reads either."""
    import json

    import open_clip

    from ..files import save_safetensors, save_torch
    register_configs()
    path = Path(path)
    info = {"arch": clip.arch, "model_config": open_clip.get_model_config(clip.arch),
            "vocabulary": getattr(clip.tokenizer, "words", None), **extra}
    if path.suffix == ".safetensors":
        return save_safetensors(clip.model.state_dict(), path, {"rftlab": json.dumps(info)})
    return save_torch({**info, "state_dict": {k: v.detach().cpu() for k, v in clip.model.state_dict().items()}},
                      path)
