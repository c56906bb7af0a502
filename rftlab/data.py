"""The dataset interface every task uses, world-generated or read from disk.

A :class:`Task` holds splits (train, val, the ID test set and any OOD test sets), class
names, prompt templates and per-sample metadata, and owns its evaluation: given logits
for its test sets it returns the metrics of rftlab's protocol, per group and worst group
included (as WILDS datasets do).

A split can restrict scoring to part of the task's classes: ``class_subset`` (the classes
of a 200-class ImageNet variant inside a 1000-class task) sets every other logit to -inf
before argmax, softmax, ECE and NLL; ``class_pool`` (ObjectNet inside a 1000-class task)
also merges classes, scoring each merged class by the largest logit among its members.

A task names its metadata values (``metadata_names``, as WILDS's ``_metadata_map``) and carries
the words that describe them (``metadata_phrases``, ``metadata_prompts``), so analyses read the
metadata of any task, world-generated or real, through the task alone.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from typing import Callable, Iterator, Mapping, Sequence

import torch
import torch.utils.data

from .metrics import accuracy, ece, nll


@dataclass
class Split:
    """One split: images (a uint8 tensor (N,3,H,W), or anything ``load_image`` reads), labels,
    and per-sample metadata tensors (``group``, ``domain``, factors...).

    ``class_subset``: indices of the task's classes this split is scored on; every other
    logit is set to -inf before argmax, softmax, ECE and NLL (labels stay task class indices).
    ``class_pool``: (C,) merged-class id of each task class, -1 for classes not scored; the
    split is scored on the merged classes, each with the largest logit of its members, and
    a sample's label is the merged class of its task label. Give at most one of the two."""

    name: str
    images: torch.Tensor | Sequence
    labels: torch.Tensor
    meta: dict[str, torch.Tensor] = field(default_factory=dict)
    load_image: Callable | None = None  # for path-backed splits: path -> image for the transform
    class_subset: torch.Tensor | None = None
    class_pool: torch.Tensor | None = None
    dataset: str = ""  # the dataset the images come from, for error messages (set by the Task)

    def __post_init__(self):
        self.labels = torch.as_tensor(self.labels, dtype=torch.long)
        if len(self.images) != len(self.labels):
            raise ValueError(f"split {self.name!r}: {len(self.images)} images but {len(self.labels)} labels")
        for k, v in self.meta.items():
            if len(v) != len(self.labels):
                raise ValueError(f"split {self.name!r}: metadata {k!r} has {len(v)} rows, expected {len(self.labels)}")
        if self.class_subset is not None and self.class_pool is not None:
            raise ValueError(f"split {self.name!r}: give class_subset or class_pool, not both")
        if self.class_subset is not None:
            sub = torch.as_tensor(self.class_subset, dtype=torch.long).flatten()
            if sub.numel() == 0 or len(sub.unique()) != len(sub) or (sub < 0).any():
                raise ValueError(f"split {self.name!r}: class_subset must hold distinct class indices (>= 0)")
            outside = int((~torch.isin(self.labels, sub)).sum())
            if outside:
                raise ValueError(f"split {self.name!r}: {outside} labels lie outside class_subset; "
                                 f"a sample's class must be one the split is scored on")
            self.class_subset = sub
        if self.class_pool is not None:
            pool = torch.as_tensor(self.class_pool, dtype=torch.long).flatten()
            ids = pool[pool >= 0].unique()
            if ids.numel() == 0 or not torch.equal(ids, torch.arange(len(ids))):
                raise ValueError(f"split {self.name!r}: class_pool must use merged ids 0..P-1 (and -1 for "
                                 f"classes not scored)")
            if len(self.labels) and (self.labels.max() >= len(pool) or (pool[self.labels] < 0).any()):
                raise ValueError(f"split {self.name!r}: some labels are classes that class_pool does not score")
            self.class_pool = pool

    def __len__(self) -> int:
        return len(self.labels)

    def select(self, index, name: str | None = None) -> "Split":
        """The split restricted to ``index`` (same images loader, class subset and pool)."""
        index = torch.as_tensor(index, dtype=torch.long)
        if isinstance(self.images, torch.Tensor):
            images = self.images[index]
        else:
            images = [self.images[i] for i in index.tolist()]
        return Split(name or self.name, images, self.labels[index], {k: v[index] for k, v in self.meta.items()},
                     self.load_image, self.class_subset, self.class_pool, self.dataset)

    def score(self, logits: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The (logits, labels) this split is scored on: the task's logits and labels, masked to
        ``class_subset`` (-inf outside) or merged by ``class_pool``."""
        if self.class_subset is not None:
            if self.class_subset.max() >= logits.shape[1]:
                raise ValueError(f"split {self.name!r}: class_subset names class {int(self.class_subset.max())} "
                                 f"but the logits have {logits.shape[1]} columns")
            keep = torch.zeros(logits.shape[1], dtype=torch.bool, device=logits.device)
            keep[self.class_subset.to(logits.device)] = True
            return logits.masked_fill(~keep, float("-inf")), self.labels
        if self.class_pool is not None:
            pool = self.class_pool.to(logits.device)
            if len(pool) != logits.shape[1]:
                raise ValueError(f"split {self.name!r}: class_pool covers {len(pool)} classes but the logits "
                                 f"have {logits.shape[1]} columns")
            scored = pool >= 0
            n_merged = int(pool.max()) + 1
            out = torch.full((len(logits), n_merged), float("-inf"), dtype=logits.dtype, device=logits.device)
            cols = pool[scored].expand(len(logits), -1)
            out.scatter_reduce_(1, cols, logits[:, scored], reduce="amax")
            return out, self.class_pool[self.labels]
        return logits, self.labels

    def get(self, index: torch.Tensor, transform: Callable) -> torch.Tensor:
        """A batch of transformed images for the given indices."""
        if isinstance(self.images, torch.Tensor):
            return transform(self.images[index])
        return torch.stack([transform(self.open(int(i))) for i in index])

    def open(self, i: int):
        """Sample ``i``'s image as ``load_image`` reads it; a file that cannot be read raises
        :class:`~rftlab.errors.ImageReadError` naming the file, the split and the dataset."""
        path = self.images[i]
        if self.load_image is None:
            return path
        try:
            return self.load_image(path)
        except Exception as err:
            from .errors import ImageReadError
            where = f"split {self.name!r}" + (f" of dataset {self.dataset!r}" if self.dataset else "")
            raise ImageReadError(
                f"cannot read image {path} ({where}): {type(err).__name__}: {err}. Replace or delete the file, "
                f"or leave unreadable images out with skip_bad_images=True "
                f"(--task-arg skip_bad_images=true; see docs/real-path.md)", path) from err

    def index_batches(self, batch_size: int, shuffle: bool = False, seed: int = 0,
                      start: int = 0) -> Iterator[torch.Tensor]:
        """The index tensors of :meth:`batches`, without loading anything. With ``shuffle`` the
        stream is endless, epoch after epoch, each epoch a permutation drawn from (seed, epoch)
        with the last partial batch dropped; ``start`` skips that many batches."""
        n = len(self)
        if n == 0:
            raise ValueError(f"split {self.name!r} is empty: nothing to iterate over")
        if not shuffle:
            for i in range(0, n, batch_size):
                yield torch.arange(i, min(n, i + batch_size))
            return
        per_epoch = max(1, n // batch_size)
        b, perm_epoch, perm = start, None, None
        while True:
            epoch, k = divmod(b, per_epoch)
            if epoch != perm_epoch:
                perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed * 100_003 + epoch))
                perm_epoch = epoch
            yield perm[k * batch_size:(k + 1) * batch_size]
            b += 1

    def batches(self, batch_size: int, transform: Callable, shuffle: bool = False, seed: int = 0,
                start: int = 0, workers: int | None = 0,
                pin_memory: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield (images, labels, indices). With ``shuffle`` the stream is endless, epoch after epoch,
        each epoch a permutation drawn from (seed, epoch); ``start`` skips that many batches,
        which makes a resumed run see exactly the batches an uninterrupted one would.

        ``workers``: processes that read and transform images ahead of the consumer (a torch
        DataLoader over this very index stream, so the batches are the same); None picks
        :func:`default_workers`. ``pin_memory``: page-locked batches, for asynchronous copies
        to a GPU (ignored without one; it also tells :func:`default_workers` a GPU is fed)."""
        return self.load(self.index_batches(batch_size, shuffle, seed, start), transform, workers, pin_memory)

    def load(self, index_stream, transform: Callable, workers: int | None = 0,
             pin_memory: bool = False) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(images, labels, indices) for each index tensor of ``index_stream``, in order;
        ``workers`` and ``pin_memory`` as in :meth:`batches`."""
        workers = default_workers(self, for_gpu=bool(pin_memory)) if workers is None else int(workers)
        if workers < 0:
            raise ValueError(f"workers={workers}: give 0 (load in this process) or more worker processes")
        pin_memory = bool(pin_memory) and torch.cuda.is_available()
        if workers == 0 and not pin_memory:
            return ((self.get(idx, transform), self.labels[idx], idx) for idx in index_stream)
        from torch.utils.data import DataLoader
        return _raise_failures(iter(DataLoader(_SplitBatches(self, transform), batch_sampler=_Stream(index_stream),
                                               collate_fn=_as_batch, num_workers=workers, pin_memory=pin_memory,
                                               prefetch_factor=4 if workers else None)))


WORKERS_ENV = "RFTLAB_WORKERS"


def default_workers(split: Split, for_gpu: bool = False) -> int:
    """Loader processes for ``split``: 0 for images held in memory (the world's; a batch is one
    tensor operation); else ``$RFTLAB_WORKERS`` if set; else, feeding a GPU, one per CPU core
    beyond the first (at most 8); feeding CPU training, one per core torch's threads leave free
    (usually none: on 2 cores a worker slowed FT steps from disk by 7%, docs/benchmarks.md)."""
    if isinstance(split.images, torch.Tensor):
        return 0
    env = os.environ.get(WORKERS_ENV)
    if env:
        try:
            return max(0, int(env))
        except ValueError:
            raise ValueError(f"${WORKERS_ENV}={env!r} is not a number of loader processes; "
                             f"set it to 0 (no worker processes) or more") from None
    cores = os.cpu_count() or 1
    if for_gpu:
        return max(1, min(8, cores - 1))
    return max(0, min(8, cores - torch.get_num_threads()))


class _Stream:
    """An index stream as a DataLoader batch sampler (consumed once, in order)."""

    def __init__(self, stream):
        self.stream = stream

    def __iter__(self):
        return iter(self.stream)


class _SplitBatches(torch.utils.data.Dataset):
    """A split as a DataLoader dataset that loads a whole batch per fetch (``__getitems__``)."""

    def __init__(self, split: Split, transform: Callable):
        self.split, self.transform = split, transform

    def __len__(self):
        return len(self.split)

    def __getitem__(self, i):
        return self.__getitems__([i])

    def __getitems__(self, index):
        from .errors import ImageReadError
        idx = torch.as_tensor(index, dtype=torch.long)
        try:
            return self.split.get(idx, self.transform), self.split.labels[idx], idx
        except ImageReadError as err:  # sent back as a value: a worker's exception would carry its traceback text
            return _Failure(str(err), err.path)


class _Failure:
    """An unreadable image, reported from a worker process."""

    def __init__(self, message: str, path):
        self.message, self.path = message, path


def _raise_failures(batches):
    from .errors import ImageReadError
    for batch in batches:
        if isinstance(batch, _Failure):
            raise ImageReadError(batch.message, batch.path)
        yield batch


def _as_batch(batch):
    return batch


@dataclass
class Task:
    """A classification task with its splits and its own evaluation."""

    name: str
    classnames: list[str]
    templates: list[str]
    train: Split
    val: Split
    test: Split
    ood: dict[str, Split] = field(default_factory=dict)
    group_names: list[str] | None = None
    id_domain: str = "id"
    info: dict = field(default_factory=dict)
    contexts: list[str] | None = None  # CAR-FT's contexts ('{}' is the class); None: the templates
    metadata_names: dict[str, list[str]] = field(default_factory=dict)
    metadata_phrases: dict[str, dict[str, list[str]]] = field(default_factory=dict)
    metadata_prompts: dict[str, dict[str, list[str]]] = field(default_factory=dict)

    def __post_init__(self):
        for s in (self.train, self.val, self.test, *self.ood.values()):
            s.dataset = s.dataset or self.name
            if len(s) == 0:
                raise ValueError(f"task {self.name!r}: split {s.name!r} is empty; give it at least one sample")
            bad = s.labels[(s.labels < 0) | (s.labels >= len(self.classnames))]
            if bad.numel():
                raise ValueError(f"task {self.name!r}: split {s.name!r} has labels outside 0..{len(self.classnames) - 1}")
            if s.class_subset is not None and s.class_subset.max() >= len(self.classnames):
                raise ValueError(f"task {self.name!r}: split {s.name!r} has a class_subset beyond the task's "
                                 f"{len(self.classnames)} classes")
            if s.class_pool is not None and len(s.class_pool) != len(self.classnames):
                raise ValueError(f"task {self.name!r}: split {s.name!r} has a class_pool over {len(s.class_pool)} "
                                 f"classes, expected one entry per task class ({len(self.classnames)})")
        self._check_metadata_text()

    def _check_metadata_text(self):
        """``metadata_names`` name every value the splits carry; phrases and prompts name known values."""
        splits = (self.train, self.val, self.test, *self.ood.values())
        where = f"task {self.name!r}"
        if self.group_names is not None:
            for s in splits:
                g = s.meta.get("group")
                if g is not None and len(g) and int(g.max()) >= len(self.group_names):
                    raise ValueError(f"{where}: split {s.name!r} has group values up to {int(g.max())} but "
                                     f"group_names names {len(self.group_names)} groups; give one name per group")
        self.metadata_names = {k: list(v) for k, v in self.metadata_names.items()}
        for key, names in self.metadata_names.items():
            if key in ("group", "label", "class"):
                raise ValueError(f"{where}: metadata_names[{key!r}]: groups are named by group_names and labels "
                                 f"by classnames; leave {key!r} out of metadata_names")
            if not names or not all(isinstance(n, str) and n for n in names):
                raise ValueError(f"{where}: metadata_names[{key!r}] must be a list of non-empty names, one per "
                                 f"value 0, 1, ...; got {names!r}")
            if len(set(names)) != len(names):
                raise ValueError(f"{where}: metadata_names[{key!r}] repeats a name: {names}")
            carried = [s for s in splits if key in s.meta]
            if not carried:
                raise ValueError(f"{where}: metadata_names names {key!r}, which no split carries (their metadata: "
                                 f"{', '.join(sorted({k for s in splits for k in s.meta})) or 'none'})")
            for s in carried:
                v = torch.as_tensor(s.meta[key])
                if len(v) and (int(v.min()) < 0 or int(v.max()) >= len(names)):
                    raise ValueError(f"{where}: split {s.name!r} has {key!r} values from {int(v.min())} to "
                                     f"{int(v.max())} but metadata_names[{key!r}] names values 0..{len(names) - 1} "
                                     f"({', '.join(names)}); give one name per value")
        for field_name, table, templated in (("metadata_phrases", self.metadata_phrases, True),
                                             ("metadata_prompts", self.metadata_prompts, False)):
            for key, per_value in table.items():
                names = self.metadata_names.get(key)
                if names is None:
                    raise ValueError(f"{where}: {field_name}[{key!r}] describes metadata that metadata_names does "
                                     f"not name; name its values in metadata_names[{key!r}] first")
                if not templated and list(per_value) != names:
                    raise ValueError(f"{where}: {field_name}[{key!r}] must give prompts for every value of "
                                     f"{key!r}, in the order of metadata_names: {names}; got {list(per_value)}")
                for value, texts in per_value.items():
                    if value not in names:
                        raise ValueError(f"{where}: {field_name}[{key!r}] describes {value!r}, which is not a "
                                         f"value of {key!r} ({', '.join(names)})")
                    if isinstance(texts, str) or not texts or not all(isinstance(t, str) and t for t in texts):
                        raise ValueError(f"{where}: {field_name}[{key!r}][{value!r}] must be a list of texts")
                    if templated and not all("{}" in t for t in texts):
                        raise ValueError(f"{where}: {field_name}[{key!r}][{value!r}]: every phrase is a class "
                                         f"template with '{{}}' where the class name goes; got {texts}")

    def value_names(self, key: str) -> list[str] | None:
        """The names of the values of metadata ``key`` (index order): ``group_names`` for
        ``group``, the class names for ``label``/``class``, else ``metadata_names``; None when
        the task does not name them."""
        if key == "group":
            return self.group_names
        if key in ("label", "class"):
            return self.classnames
        return self.metadata_names.get(key)

    def descriptions(self) -> list[str]:
        """Every metadata phrase (class templates), key by key, value by value, without repeats:
        descriptions of what an image shows besides its class."""
        return list(dict.fromkeys(t for per_value in self.metadata_phrases.values()
                                  for texts in per_value.values() for t in texts))

    def spurious_phrases(self) -> list[str]:
        """StarFT's class-agnostic spurious phrases for this task ('{}' is the class): the task's own
        pool in ``info["spurious_phrases"]`` when it has one (real datasets carry the natural pool of
        :func:`rftlab.datasets.natural_spurious_phrases`), else its metadata phrases
        (:meth:`descriptions`: a world task's backgrounds, colours and styles). A ValueError when the
        task has neither."""
        phrases = list(self.info.get("spurious_phrases") or self.descriptions())
        if not phrases:
            raise ValueError(f"task {self.name!r} has no spurious phrases for StarFT: give it metadata_phrases "
                             f"(descriptions of what an image shows besides its class) or "
                             f"info['spurious_phrases'] (e.g. rftlab.datasets.natural_spurious_phrases())")
        bad = [t for t in phrases if "{}" not in t]
        if bad:
            raise ValueError(f"task {self.name!r}: spurious phrases need '{{}}' where the class goes; {bad[:3]} have none")
        return phrases

    def named_values(self, description: str) -> tuple[str, list[str]] | None:
        """The metadata key and values a description names, by :func:`named_values` over the
        task's ``metadata_phrases``."""
        return named_values(description, self.metadata_phrases)

    @property
    def context_templates(self) -> list[str]:
        """The contexts CAR-FT keeps the zero-shot distribution over: ``contexts`` when the task
        has them (the world: about 80), else its templates (ImageNet: OpenAI's 80)."""
        return list(self.contexts or self.templates)

    @property
    def num_classes(self) -> int:
        return len(self.classnames)

    @property
    def has_groups(self) -> bool:
        return self.group_names is not None and "group" in self.test.meta

    def eval_splits(self) -> dict[str, Split]:
        """The test sets: ``id`` (the ID test split) then each OOD set."""
        return {"id": self.test, **self.ood}

    def evaluate(self, logits: Mapping[str, torch.Tensor], n_bins: int = 15) -> dict:
        """Metrics of rftlab's protocol from logits of every test set (keys as ``eval_splits``).

        Keys: id_acc, ood_acc (domain -> acc), mean_ood_acc, avg_acc (pooled over every test
        sample), worst_group_acc (None without groups), group_acc, weighted_acc (train-frequency
        weighted), ece (ID, pooled, ``n_bins`` bins), ood_ece, nll. Each split is scored as
        :meth:`Split.score` says (its ``class_subset`` or ``class_pool``), for every metric.
        """
        splits = self.eval_splits()
        missing = set(splits) - set(logits)
        if missing:
            raise ValueError(f"evaluate() needs logits for {sorted(missing)}")
        for k, s in splits.items():
            if tuple(logits[k].shape) != (len(s), self.num_classes):
                raise ValueError(f"{'ID' if k == 'id' else repr(k)} logits have shape {tuple(logits[k].shape)}, "
                                 f"expected ({len(s)}, {self.num_classes}): model head and task disagree")
        scored = {k: s.score(logits[k].float()) for k, s in splits.items()}
        out: dict = {}
        id_logits, id_labels = scored["id"]
        out["id_acc"] = accuracy(id_logits, id_labels)
        out["ood_acc"] = {k: accuracy(*scored[k]) for k in self.ood}
        out["mean_ood_acc"] = (sum(out["ood_acc"].values()) / len(self.ood)) if self.ood else None
        correct = sum(int((z.argmax(1) == y).sum()) for z, y in scored.values())
        out["avg_acc"] = correct / sum(len(s) for s in splits.values())
        out["ece"] = ece(id_logits.softmax(1), id_labels, n_bins=n_bins)
        out["ood_ece"] = {k: ece(scored[k][0].softmax(1), scored[k][1], n_bins=n_bins) for k in self.ood}
        out["nll"] = nll(id_logits, id_labels)
        out.update(self.group_metrics(logits["id"]))
        return out

    def group_metrics(self, logits: torch.Tensor, split: str = "test") -> dict:
        """Per-group accuracy of ``split``'s logits, the worst group and the train-frequency
        weighted average (all None without groups)."""
        s = getattr(self, split)
        if not self.has_groups:
            return {"worst_group_acc": None, "group_acc": None, "weighted_acc": None}
        g = s.meta["group"]
        z, y = s.score(logits)
        right = (z.argmax(1) == y).float()
        group_acc = {}
        for k, name in enumerate(self.group_names):
            m = g == k
            if m.any():
                group_acc[name] = right[m].mean().item()
        train_counts = torch.bincount(self.train.meta["group"], minlength=len(self.group_names)).float()
        w = {name: train_counts[k].item() for k, name in enumerate(self.group_names) if name in group_acc}
        total = sum(w.values())
        weighted = sum(group_acc[n] * w[n] for n in group_acc) / total if total else math.nan
        return {"worst_group_acc": min(group_acc.values()), "group_acc": group_acc, "weighted_acc": weighted}

    def summary(self) -> str:
        lines = [f"task {self.name}: {self.num_classes} classes ({', '.join(self.classnames[:8])}"
                 f"{'...' if self.num_classes > 8 else ''})"]
        for s in (self.train, self.val, self.test, *self.ood.values()):
            lines.append(f"  {s.name:<12} {len(s):>6} samples")
        if self.info.get("note"):
            lines.append(f"  note: {self.info['note']}")
        return "\n".join(lines)


# Words that name no metadata value: articles, prepositions and other glue of phrases.
_GLUE = {"a", "an", "the", "of", "on", "in", "by", "over", "near", "among", "one", "there", "is", "this", "with",
         "and", "at", "to", "from"}


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text.replace("{}", " ").lower())) - _GLUE


def named_values(description: str, phrases: Mapping[str, Mapping[str, Sequence[str]]]) -> tuple[str, list[str]] | None:
    """The metadata key and the values (sorted) that ``description`` names: a value is named when
    the description holds a word (glue words aside) of one of its phrases, ``phrases`` as
    :attr:`Task.metadata_phrases`. None when it names no value, or values of several keys."""
    hits: set[tuple[str, str]] = set()
    words = _words(description)
    for key, per_value in phrases.items():
        for value, texts in per_value.items():
            if any(words & _words(t) for t in texts):
                hits.add((key, value))
    keys = {k for k, _ in hits}
    if len(keys) != 1:
        return None
    return keys.pop(), sorted(v for _, v in hits)
