"""The CLIP inside an object, and its image and text features: the one place every caller uses.

``clip_of`` finds the open_clip-like model (the module with ``encode_image``) inside a
:class:`~rftlab.classifier.ClipClassifier`, a :class:`~rftlab.models.ClipModel`, an open_clip
model, or the trained classifier of a TrainResult or TrainPanel. Below it:

* :func:`encode_image` and :func:`encode_text`: normalised features of a batch, with gradients
  (what methods train through; ``ClipClassifier.features`` is :func:`encode_image`);
* :func:`text_features`: texts to normalised float32 features, without gradients, in batches
  (zero-shot heads, analyses), built on :func:`encode_text`;
* :func:`encode_split`: the normalised image features of a whole split (evaluation, the
  feature cache, analyses).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .data import Split

EXPECTED = "a ClipClassifier, a ClipModel, an open_clip model, or a TrainResult / TrainPanel"


def clip_of(obj) -> nn.Module:
    """The open_clip-like model (the module with ``encode_image``) inside ``obj``: ``.clip`` of a
    ClipClassifier, ``.model`` of a ClipModel, an open_clip model itself, or the CLIP of the
    classifier a TrainResult or TrainPanel holds (a panel that has not run yet raises)."""
    if not isinstance(obj, nn.Module) and hasattr(obj, "classifier"):   # TrainResult, TrainPanel
        if obj.classifier is None:
            raise ValueError(f"the {type(obj).__name__} has no trained model yet; run it first")
        return clip_of(obj.classifier)
    for attr in ("clip", "model"):
        inner = getattr(obj, attr, None)
        if isinstance(inner, nn.Module) and hasattr(inner, "encode_image"):
            return inner
    if isinstance(obj, nn.Module) and hasattr(obj, "encode_image"):
        return obj
    raise TypeError(f"expected {EXPECTED}; got {type(obj).__name__}")


def image_tower(obj) -> nn.Module:
    """The module whose weights decide image features: ``visual`` of the CLIP inside ``obj``
    (the whole CLIP when it has no ``visual`` module)."""
    clip = clip_of(obj)
    visual = getattr(clip, "visual", None)
    return visual if isinstance(visual, nn.Module) else clip


def embed_dim(obj) -> int:
    """Width of the shared image-text embedding: the rows of a classifier's head, else the
    width of the CLIP's text projection (or its image tower's ``output_dim``)."""
    head = getattr(obj, "head", None)
    if isinstance(head, torch.Tensor) and head.ndim == 2:
        return int(head.shape[0])
    m = clip_of(obj)
    p = getattr(m, "text_projection", None)
    if isinstance(p, torch.Tensor):
        return int(p.shape[-1])
    if p is not None and hasattr(p, "weight"):
        return int(p.weight.shape[0])
    dim = getattr(m.visual, "output_dim", None)
    if dim is None:
        raise ValueError(f"cannot tell the embedding width of {type(m).__name__}")
    return int(dim)


def encode_image(clip: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """L2-normalised image features of a batch (B, D), with gradients; ``clip`` is the CLIP itself
    (:func:`clip_of`)."""
    return F.normalize(clip.encode_image(images), dim=-1)


def encode_text(clip: nn.Module, tokens: torch.Tensor, dtype: torch.dtype | None = None) -> torch.Tensor:
    """L2-normalised text features of token rows (B, D), with gradients; the tokens are moved to
    the CLIP's device. ``dtype``: the raw features are cast to it before normalising (None:
    the tower's own dtype)."""
    device = next(clip.parameters()).device
    out = clip.encode_text(tokens.to(device, non_blocking=True))
    if dtype is not None:
        out = out.to(dtype)
    return F.normalize(out, dim=-1)


def check_tokenizer(obj, tokenizer) -> None:
    """A tokenizer whose ids overflow the model's token embedding belongs to another model."""
    m = clip_of(obj)
    emb = getattr(m, "token_embedding", None)
    size = getattr(tokenizer, "vocab_size", None)
    if emb is not None and size is not None and size > emb.num_embeddings:
        raise ValueError(f"the tokenizer has {size} token ids but the model's text tower knows "
                         f"{emb.num_embeddings}: use the tokenizer that came with the model (clip.tokenizer)")


@torch.no_grad()
def text_features(obj, tokenizer: Callable, texts: Sequence[str], batch_size: int = 256) -> torch.Tensor:
    """Normalised float32 text features (len(texts), D) from the text tower of the CLIP inside
    ``obj``, on its device; tokenised and encoded ``batch_size`` texts at a time, without gradients."""
    clip = clip_of(obj)
    check_tokenizer(clip, tokenizer)
    texts = list(texts)
    return torch.cat([encode_text(clip, tokenizer(texts[i:i + batch_size]), dtype=torch.float32)
                      for i in range(0, len(texts), batch_size)])


@torch.no_grad()
def encode_split(obj, split: Split, transform: Callable, batch_size: int = 256, device=None) -> torch.Tensor:
    """Normalised image features of a whole split, (N, D) float32, on the CPU, from the CLIP inside
    ``obj`` (in eval mode; its mode is restored after). Images read from disk are loaded by
    worker processes (:func:`rftlab.data.default_workers`)."""
    clip = clip_of(obj)
    device = torch.device(device or next(clip.parameters()).device)
    was = clip.training
    clip.eval()
    out = [encode_image(clip, x.to(device, non_blocking=True)).float().cpu()
           for x, _, _ in split.batches(batch_size, transform, workers=None, pin_memory=device.type == "cuda")]
    clip.train(was)
    return torch.cat(out)
