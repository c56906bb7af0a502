"""rftlab's evaluation protocol: one function from a classifier and a task to the metrics."""
from __future__ import annotations

from typing import Callable

import torch

from .cache import as_cache, cached_encode_split
from .classifier import ClipClassifier, check_head
from .data import Split, Task
from .encode import clip_of
from .metrics import ece
from .zeroshot import zeroshot_head

STARFT_TEMPLATE = "This is a picture of a {}."  # the single template of StarFT's zero-shot evaluation


@torch.no_grad()
def predict(classifier, split: Split, transform: Callable, batch_size: int = 256, cache=None) -> torch.Tensor:
    """Logits (N, C) on the CPU. ``cache`` (a :class:`~rftlab.cache.FeatureCache`, a folder or
    True for the default folder) reads the image features from disk when this image tower has
    encoded this split before."""
    feats = cached_encode_split(classifier, split, transform, batch_size, cache=cache)
    head = classifier.head.detach().float().cpu()
    return classifier.scale.cpu() * feats @ head


def evaluate(classifier, task: Task, transform: Callable, batch_size: int = 256, n_bins: int = 15,
             cache=None) -> dict:
    """Every metric of the protocol on the task's test sets (ID and OOD). Never touches val.
    ``cache``: as in :func:`predict`."""
    check_head(classifier, task)
    cache = as_cache(cache)
    logits = {k: predict(classifier, s, transform, batch_size, cache) for k, s in task.eval_splits().items()}
    return task.evaluate(logits, n_bins=n_bins)


def evaluate_val(classifier, task: Task, transform: Callable, batch_size: int = 256, cache=None) -> dict:
    """Accuracy, ECE (and worst-group accuracy where there are groups) on val: for model selection
    and the live curves.
    ``cache``: as in :func:`predict`."""
    logits = predict(classifier, task.val, transform, batch_size, cache)
    scored, labels = task.val.score(logits)  # masked to a class subset or pooled, as the test sets are
    out = {"val_acc": (scored.argmax(1) == labels).float().mean().item(),
           "val_ece": ece(scored.float().softmax(1), labels)}
    if task.has_groups and "group" in task.val.meta:
        out["val_worst_group_acc"] = task.group_metrics(logits, split="val")["worst_group_acc"]
    return out


def evaluate_transfer(classifier, task: Task, tokenizer: Callable, transform: Callable,
                      templates=(STARFT_TEMPLATE,), batch_size: int = 256, cache=None) -> dict:
    """Zero-shot evaluation of a (fine-tuned) model on a task it was not trained on: a fresh
    head for ``task``'s classes from the classifier's own towers (its image tower and its text
    tower, fine-tuned or not) and its own scale, then :func:`evaluate`. StarFT's protocol for
    zero-shot group robustness after fine-tuning (fine-tune on a broad task, score the
    Waterbirds-like task with "This is a picture of a {}.")."""
    clip_model = clip_of(classifier)
    head = zeroshot_head(clip_model, tokenizer, task.classnames, list(templates))
    fresh = ClipClassifier(clip_model, head)
    return evaluate(fresh, task, transform, batch_size=batch_size, cache=cache)


def check_compatible(clip, task, classifier=None) -> None:
    """Raise ValueError naming the problem when ``clip`` cannot read ``task``'s images or a
    classifier's head does not match the task's classes."""
    if classifier is not None:
        check_head(classifier, task)
    model = clip.model if classifier is None else classifier.clip
    try:
        device = next(model.parameters()).device
        x = task.test.get(torch.arange(1), clip.preprocess).to(device)
        with torch.no_grad():
            model.encode_image(x)
    except Exception as err:  # any failure here means these images do not fit this model
        raise ValueError(f"model {getattr(clip, 'arch', type(model).__name__)!r} cannot read the images of task "
                         f"{task.name!r} ({type(err).__name__}: {err}); pick a task made for this model "
                         f"or a model made for these images") from err
