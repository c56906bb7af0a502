"""Zero-shot: the head from class names and templates, no training."""
from .base import Method


class ZeroShot(Method):
    name = "zeroshot"
    summary = "no training: the template-ensembled zero-shot head"
    trainable = False
    tunes_lr = False
