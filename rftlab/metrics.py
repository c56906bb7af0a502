"""Metrics on predictions: plain functions over tensors."""
from __future__ import annotations

import torch
import torch.nn.functional as F

# The metrics every table shows (CLI, rftlab.compare, docs), in this order.
TABLE_COLUMNS = ("id_acc", "mean_ood_acc", "worst_group_acc", "avg_acc", "ece")


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    if len(labels) == 0:
        raise ValueError("accuracy of an empty set is undefined")
    return (logits.argmax(1) == labels.to(logits.device)).float().mean().item()


def nll(logits: torch.Tensor, labels: torch.Tensor) -> float:
    return F.cross_entropy(logits.float(), labels.to(logits.device)).item()


def ece(probs: torch.Tensor, labels: torch.Tensor, n_bins: int = 15) -> float:
    """Expected calibration error, top-label, equal-width confidence bins, pooled over all samples.

    Sum over bins of (bin size / N) * |accuracy in bin - mean confidence in bin|; a
    confidence of exactly 0 falls in the first bin, and bins are right-closed.
    """
    if probs.ndim != 2 or len(probs) != len(labels):
        raise ValueError(f"ece needs probs (N, C) and labels (N,); got {tuple(probs.shape)} and {tuple(labels.shape)}")
    if n_bins < 1:
        raise ValueError("n_bins must be at least 1")
    conf, pred = probs.float().max(1)
    right = (pred == labels.to(pred.device)).float()
    bins = torch.clamp(torch.ceil(conf * n_bins).long() - 1, 0, n_bins - 1)
    acc = torch.zeros(n_bins).index_add_(0, bins.cpu(), right.cpu())
    cf = torch.zeros(n_bins).index_add_(0, bins.cpu(), conf.cpu())
    return ((acc - cf).abs().sum() / len(labels)).item()
