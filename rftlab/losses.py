"""Pure loss functions: tensors in, a scalar tensor out.

Conventions (a contract outside scripts rely on): features are already L2-normalised;
``logit_scale`` is the multiplier (e.g. 100.0), not its logarithm.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale) -> torch.Tensor:
    """Symmetric contrastive loss (CLIP, FLYP): mean of image->text and text->image CE,
    matching pairs on the diagonal."""
    if image_features.shape != text_features.shape:
        raise ValueError(f"image and text features must pair up one to one; got shapes "
                         f"{tuple(image_features.shape)} and {tuple(text_features.shape)}")
    logits = logit_scale * image_features @ text_features.t()
    target = torch.arange(logits.shape[0], device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))
