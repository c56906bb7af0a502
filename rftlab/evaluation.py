"""rftlab's evaluation protocol: one function from a classifier and a task to the metrics."""
from __future__ import annotations

from typing import Callable

import torch

from .data import Split, Task


@torch.no_grad()
def encode_split(classifier, split: Split, transform: Callable, batch_size: int = 256,
                 device=None) -> torch.Tensor:
    """Normalised image features of a whole split, (N, D), on the CPU."""
    device = device or next(classifier.parameters()).device
    was = classifier.training
    classifier.eval()
    out = [classifier.features(x.to(device)).float().cpu()
           for x, _, _ in split.batches(batch_size, transform)]
    classifier.train(was)
    return torch.cat(out)


@torch.no_grad()
def predict(classifier, split: Split, transform: Callable, batch_size: int = 256) -> torch.Tensor:
    """Logits (N, C) on the CPU."""
    feats = encode_split(classifier, split, transform, batch_size)
    head = classifier.head.detach().float().cpu()
    return classifier.scale.cpu() * feats @ head


def evaluate(classifier, task: Task, transform: Callable, batch_size: int = 256, n_bins: int = 15) -> dict:
    """Every metric of the protocol on the task's test sets (ID and OOD). Never touches val."""
    if classifier.num_classes != task.num_classes:
        raise ValueError(f"the classifier has {classifier.num_classes} classes but task {task.name!r} "
                         f"has {task.num_classes}: build its head from the task's class names")
    logits = {k: predict(classifier, s, transform, batch_size) for k, s in task.eval_splits().items()}
    return task.evaluate(logits, n_bins=n_bins)


def evaluate_val(classifier, task: Task, transform: Callable, batch_size: int = 256) -> dict:
    """Accuracy (and worst-group accuracy where there are groups) on val: for model selection."""
    logits = predict(classifier, task.val, transform, batch_size)
    out = {"val_acc": (logits.argmax(1) == task.val.labels).float().mean().item()}
    if task.has_groups and "group" in task.val.meta:
        out["val_worst_group_acc"] = task.group_metrics(logits, split="val")["worst_group_acc"]
    return out
