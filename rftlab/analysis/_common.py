"""Helpers every analysis shares: resolving models, data, features and texts, with clear errors."""
from __future__ import annotations

import warnings
from typing import Mapping, Sequence

import torch

from ..data import Split, Task


def as_classifier(model):
    """A :class:`~rftlab.classifier.ClipClassifier` view of ``model``.

    Accepts a ClipClassifier (returned as is), a :class:`~rftlab.models.ClipModel` or a bare
    open_clip model; the last two get a dummy one-column head (only their features are used).
    """
    from ..classifier import ClipClassifier

    if isinstance(model, ClipClassifier):
        return model
    inner = getattr(model, "model", model)  # ClipModel -> open_clip model
    if not hasattr(inner, "encode_image"):
        raise TypeError(f"expected a ClipClassifier, a ClipModel or an open_clip model; got {type(model).__name__}")
    dim = embed_dim(inner)
    return ClipClassifier(inner, torch.zeros(dim, 1, device=next(inner.parameters()).device))


def clip_of(model) -> torch.nn.Module:
    """The open_clip model inside a ClipClassifier / ClipModel / open_clip model."""
    for attr in ("clip", "model"):
        inner = getattr(model, attr, None)
        if isinstance(inner, torch.nn.Module) and hasattr(inner, "encode_image"):
            return inner
    if hasattr(model, "encode_image"):
        return model
    raise TypeError(f"expected a ClipClassifier, a ClipModel or an open_clip model; got {type(model).__name__}")


def embed_dim(model) -> int:
    """Width of the shared image-text embedding."""
    head = getattr(model, "head", None)
    if isinstance(head, torch.Tensor) and head.ndim == 2:
        return int(head.shape[0])
    m = clip_of(model)
    p = getattr(m, "text_projection", None)
    if isinstance(p, torch.Tensor):
        return int(p.shape[-1])
    if p is not None and hasattr(p, "weight"):
        return int(p.weight.shape[0])
    dim = getattr(m.visual, "output_dim", None)
    if dim is None:
        raise ValueError(f"cannot tell the embedding width of {type(m).__name__}")
    return int(dim)


def logit_scale(model) -> float:
    """exp(logit_scale) of the CLIP inside ``model`` (the multiplier, e.g. 100)."""
    return float(clip_of(model).logit_scale.exp().item())


def check_pair(model0, model1) -> None:
    """theta0 and theta must share an embedding width (and class count when both have heads)."""
    d0, d1 = embed_dim(model0), embed_dim(model1)
    if d0 != d1:
        raise ValueError(f"the two models embed into different widths ({d0} vs {d1}): compare a "
                         "fine-tuned model with the model it started from")
    h0, h1 = getattr(model0, "head", None), getattr(model1, "head", None)
    if isinstance(h0, torch.Tensor) and isinstance(h1, torch.Tensor) and h0.shape != h1.shape:
        raise ValueError(f"the two classifiers have heads of shape {tuple(h0.shape)} and {tuple(h1.shape)}: "
                         "they were built for different tasks")


def check_classes(model, task: Task | None) -> None:
    """A classifier's head must have one column per class of the task."""
    from ..classifier import ClipClassifier
    if task is None or not isinstance(model, ClipClassifier):
        return
    if model.num_classes != task.num_classes:
        raise ValueError(f"the classifier has {model.num_classes} classes but task {task.name!r} has "
                         f"{task.num_classes}: build its head from the task's class names "
                         "(ClipClassifier.zeroshot(clip, task.classnames, task.templates))")


def resolve_split(data: Task | Split, split: str = "test") -> tuple[Split, Task | None]:
    """(the Split to analyse, its Task or None). ``split`` names a Task split: train, val,
    test (or id), an OOD set's name, or ``all`` (every test set pooled: ID then each OOD)."""
    if isinstance(data, Split):
        return data, None
    if not isinstance(data, Task):
        raise TypeError(f"expected a Task or a Split; got {type(data).__name__}")
    if split in ("test", "id"):
        return data.test, data
    if split in ("train", "val"):
        return getattr(data, split), data
    if split == "all":
        return concat_splits(list(data.eval_splits().values()), name="all"), data
    if split in data.ood:
        return data.ood[split], data
    raise ValueError(f"task {data.name!r} has no split {split!r}; choose train, val, test, all"
                     + (f" or an OOD set: {', '.join(data.ood)}" if data.ood else ""))


def concat_splits(splits: Sequence[Split], name: str = "pooled") -> Split:
    """One Split from several: images, labels and the metadata keys they all share."""
    if not splits:
        raise ValueError("nothing to pool: give at least one split")
    if len(splits) == 1:
        return splits[0]
    keys = set.intersection(*(set(s.meta) for s in splits))
    if all(isinstance(s.images, torch.Tensor) for s in splits):
        images = torch.cat([s.images for s in splits])
    else:
        images = [x for s in splits for x in s.images]
    meta = {k: torch.cat([torch.as_tensor(s.meta[k]) for s in splits]) for k in sorted(keys)}
    loaders = {s.load_image for s in splits}
    return Split(name, images, torch.cat([s.labels for s in splits]), meta,
                 next(iter(loaders)) if len(loaders) == 1 else None)


def subsample(data: Task | Split, n: int, seed: int = 0, by: str | None = "group") -> Task | Split:
    """A smaller copy: at most ``n`` samples per split, drawn without replacement.

    With ``by`` (a metadata key, default ``group`` where present) each value keeps a share
    as equal as possible, so small minority groups are not lost. On a Task every split
    (train, val, test, each OOD set) is cut to ``n``.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1; got {n}")
    if isinstance(data, Task):
        import dataclasses
        cut = {k: subsample(getattr(data, k), n, seed, by) for k in ("train", "val", "test")}
        ood = {k: subsample(s, n, seed, by) for k, s in data.ood.items()}
        return dataclasses.replace(data, ood=ood, **cut)
    if not isinstance(data, Split):
        raise TypeError(f"expected a Task or a Split; got {type(data).__name__}")
    if len(data) <= n:
        return data
    g = torch.Generator().manual_seed(seed)
    if by and by in data.meta:
        key = torch.as_tensor(data.meta[by])
        pools = [torch.nonzero(key == v).flatten() for v in torch.unique(key)]
        pools = [p[torch.randperm(len(p), generator=g)] for p in pools]
        take, i = [], 0
        while len(take) < n:  # round robin over the values
            for p in pools:
                if i < len(p) and len(take) < n:
                    take.append(int(p[i]))
            i += 1
        idx = torch.tensor(sorted(take))
    else:
        idx = torch.randperm(len(data), generator=g)[:n].sort().values
    return data.select(idx)  # keeps the image loader, class subset and pool


def image_features(model, split: Split, transform=None, features: torch.Tensor | None = None,
                   batch_size: int = 256, cache=None) -> torch.Tensor:
    """Normalised image features (N, D) of ``split`` on the CPU: ``features`` when given (checked
    against the split's length and the model's embedding width), else encoded with
    :func:`rftlab.evaluation.encode_split`, through ``cache`` when given (a
    :class:`~rftlab.cache.FeatureCache`, a folder, or True for the default folder)."""
    dim = embed_dim(model)
    if features is not None:
        features = torch.as_tensor(features).float().cpu()
        if features.ndim != 2 or len(features) != len(split):
            raise ValueError(f"precomputed features have shape {tuple(features.shape)} but split {split.name!r} "
                             f"has {len(split)} samples: pass the features of this split, (N, D)")
        if features.shape[1] != dim:
            raise ValueError(f"precomputed features are {features.shape[1]}-dimensional but the model embeds "
                             f"into {dim}: they come from another model")
        return features
    if transform is None:
        raise ValueError("encoding images needs their transform: pass transform=clip.preprocess "
                         "(or precomputed features=...)")
    from ..cache import cached_encode_split  # without a cache: plain encoding
    return cached_encode_split(as_classifier(model), split, transform, batch_size, cache=cache)


def check_texts(tokenizer, texts: Sequence[str], what: str = "description") -> list[str]:
    """Texts as a list; raises when one is empty or made only of words the tokenizer does not know."""
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    if not texts:
        raise ValueError(f"give at least one {what}")
    unknown_words = getattr(tokenizer, "unknown_words", None)
    for t in texts:
        if not isinstance(t, str) or not t.strip():
            raise ValueError(f"{what} {t!r} is empty: give some words, e.g. 'on the water'")
        if unknown_words is None:
            continue
        text = t.replace("{}", " ")
        unknown = unknown_words(text)
        encode, unk = getattr(tokenizer, "encode", None), getattr(tokenizer, "unk_token_id", None)
        if encode is not None and unk is not None:
            nothing = all(i == unk for i in encode(text))
        else:
            nothing = bool(unknown) and len(unknown) >= len(text.split())
        if nothing:
            raise ValueError(f"{what} {t!r} tokenises to nothing: the tokenizer knows none of its words "
                             f"{unknown}. Use words it knows, e.g. {', '.join(_suggest(tokenizer, unknown))}")
        if unknown:
            warn(f"{what} {t!r}: the tokenizer does not know {unknown}; they become <unk> tokens")
    return texts


def _suggest(tokenizer, unknown: Sequence[str], n: int = 12) -> list[str]:
    """Known words close to the unknown ones, then a spread over the vocabulary."""
    import difflib
    known = [w for w in getattr(tokenizer, "words", []) if len(w) > 2]
    close = [m for w in unknown for m in difflib.get_close_matches(w, known, n=2, cutoff=0.6)]
    spread = known[:: max(1, len(known) // n)]
    return list(dict.fromkeys(close + spread))[:n]


def known_texts(tokenizer, texts: Sequence[str]) -> list[str]:
    """The texts whose every word the tokenizer knows (all texts for tokenizers without a vocabulary check)."""
    unknown_words = getattr(tokenizer, "unknown_words", None)
    if unknown_words is None:
        return list(texts)
    return [t for t in texts if not unknown_words(t.replace("{}", " "))]


def check_tokenizer(model, tokenizer) -> None:
    """A tokenizer whose ids overflow the model's token embedding belongs to another model."""
    m = clip_of(model)
    emb = getattr(m, "token_embedding", None)
    size = getattr(tokenizer, "vocab_size", None)
    if emb is not None and size is not None and size > emb.num_embeddings:
        raise ValueError(f"the tokenizer has {size} token ids but the model's text tower knows "
                         f"{emb.num_embeddings}: use the tokenizer that came with the model (clip.tokenizer)")


def text_features(model, tokenizer, texts: Sequence[str]) -> torch.Tensor:
    """Normalised text features (len(texts), D) from ``model``'s own text tower."""
    from ..zeroshot import text_embeddings
    check_tokenizer(model, tokenizer)
    return text_embeddings(clip_of(model), tokenizer, list(texts)).float().cpu()


def value_names(key: str, task: Task | None, values: torch.Tensor) -> dict[int, str]:
    """Readable names for the values of a metadata key (:meth:`rftlab.data.Task.value_names`:
    groups, classes, the task's ``metadata_names``); a value the task does not name is its number."""
    vals = [int(v) for v in torch.unique(torch.as_tensor(values))]
    table = task.value_names(key) if task is not None else None
    return {v: (table[v] if table is not None and 0 <= v < len(table) else str(v)) for v in vals}


def group_key(split: Split, by: str) -> torch.Tensor:
    """The per-sample values of ``by``: a metadata key, or ``label``/``class`` for the labels."""
    if by in ("label", "class"):
        return split.labels
    if by not in split.meta:
        raise ValueError(f"split {split.name!r} has no metadata {by!r}; it has: "
                         f"{', '.join(['label', *split.meta]) }. Group metadata comes with world tasks made "
                         "with a correlation (rftlab.spurious_task / make_task(correlation=...))")
    return torch.as_tensor(split.meta[by]).long()


def warn(message: str) -> None:
    warnings.warn(message, UserWarning, stacklevel=3)


def first_value(v):
    """A metric value from an evaluate() dict or a compare() row ({"mean": ...})."""
    if isinstance(v, Mapping):
        return v.get("mean")
    return v
