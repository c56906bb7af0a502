"""A CLIP with a linear head: what fine-tuning trains and what evaluation scores."""
from __future__ import annotations

import copy

import torch
from torch import nn

from .encode import EXPECTED, clip_of, embed_dim, encode_image
from .zeroshot import zeroshot_head


class ClipClassifier(nn.Module):
    """logits = scale * normalize(f(x)) @ head, where head (D, C) starts as the zero-shot head W0.

    It wraps the whole CLIP (``self.clip``) so methods that train the text tower (FLYP,
    CaRot, StarFT) and methods that read it (Lipsum-FT, CAR-FT) work on the same module.
    """

    def __init__(self, clip_model: nn.Module, head: torch.Tensor, scale: float | None = None):
        super().__init__()
        self.clip = clip_model
        self.head = nn.Parameter(head.detach().clone().float())
        if scale is None:
            scale = float(clip_model.logit_scale.exp().item())
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.train(clip_model.training)  # a wrapper must not flip the CLIP it wraps into train mode later

    @classmethod
    def zeroshot(cls, clip, classnames, templates, scale: float | None = None) -> "ClipClassifier":
        """The zero-shot classifier of a :class:`~rftlab.models.ClipModel` for these classes."""
        head = zeroshot_head(clip.model, clip.tokenizer, classnames, templates)
        return cls(clip.model, head, scale)

    @property
    def num_classes(self) -> int:
        return self.head.shape[1]

    def features(self, images: torch.Tensor) -> torch.Tensor:
        return encode_image(self.clip, images)

    def logits_from_features(self, features: torch.Tensor) -> torch.Tensor:
        return self.scale * features @ self.head

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.logits_from_features(self.features(images))

    def frozen_copy(self) -> "ClipClassifier":
        """A deep copy in eval mode with gradients off: a frozen reference (theta0, a teacher)."""
        ref = copy.deepcopy(self)
        ref.eval()
        for p in ref.parameters():
            p.requires_grad_(False)
        return ref


def as_classifier(obj, what: str = "the model", features_only: bool = False) -> ClipClassifier:
    """The :class:`ClipClassifier` ``obj`` is or holds: a ClipClassifier as is, the classifier of a
    TrainResult or a TrainPanel (its last run; a panel that has not run raises "run it first").

    ``features_only=True`` is for callers that read only image features: a ClipModel or a bare
    open_clip model is then accepted too, wrapped with a dummy one-column head. Without it they
    raise, since their head would mean nothing. ``what`` names ``obj`` in the errors."""
    if not isinstance(obj, nn.Module) and hasattr(obj, "classifier"):   # TrainResult, TrainPanel
        if obj.classifier is None:
            raise ValueError(f"{what}: the {type(obj).__name__} has no trained model yet; run it first")
        obj = obj.classifier
    if isinstance(obj, ClipClassifier):
        return obj
    if not features_only:
        raise TypeError(f"{what} must be a ClipClassifier (or a TrainResult / TrainPanel); got {type(obj).__name__}")
    try:
        clip = clip_of(obj)
    except TypeError:
        raise TypeError(f"{what}: expected {EXPECTED}; got {type(obj).__name__}") from None
    return ClipClassifier(clip, torch.zeros(embed_dim(clip), 1, device=next(clip.parameters()).device))


def check_head(classifier: "ClipClassifier", task) -> None:
    """The one check that a classifier's head has a column per class of ``task`` (training,
    evaluation, analyses and panels all call it), with the fix in the message."""
    if classifier.num_classes != task.num_classes:
        raise ValueError(f"the classifier has {classifier.num_classes} classes but task {task.name!r} has "
                         f"{task.num_classes}: build its head from the task's class names "
                         "(ClipClassifier.zeroshot(clip, task.classnames, task.templates))")
