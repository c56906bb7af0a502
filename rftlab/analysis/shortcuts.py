"""Shortcut discovery: which descriptions of the images does a classifier rely on?

No knowledge of a planted factor is used. A *judge* (the reference model theta0's towers when
given, else the probed model's own) says how well each candidate description t fits each image
x: a(x, t) = cos(phi0(x), psi0(t)) minus the image's mean alignment over a fixed set of texts
(the default candidates), so images that fit every text do not fit each one. Within each class
c, the images that fit t best form t's *group* G(t, c) (the top ``f`` of the class, for each
group size f in ``fraction``: 1/6, 1/3, 1/2, since a description may name a sixth of the images,
one colour, or a half, one place); the other images of class c are the rest.

Score. B2T (Kim et al., CVPR 2024) scores a keyword by the judge's similarity to a class's
misclassified images minus its similarity to the correctly classified ones. Turned around (the
judge picks the images, the classifier is read), with p(x) the probed classifier's softmax:

    effect_c(t, j) = mean of p_j over G(t, c)  -  mean of p_j over the rest of class c
    v(t, j)        = mean over classes c of effect_c(t, j)

A shortcut "t -> class j" raises p_j for the images of *every* class that fit t, so the effects
add up over classes; an attribute that merely makes images hard lowers each image's own-class
probability, pushes toward a different class in each class and cancels. With a reference
(``relative``, the default then), p is replaced by p - p0, p0 the reference classifier's: the
reliance fine-tuning *added* (what the zero-shot model already did is not a finding about the
fine-tuning). The standard error of v is taken over ``n_boot`` bootstrap resamples of the images
within each class (groups fixed; paired for p - p0). For each description, the class j
(``toward``) and the group size with the largest z = v / stderr are kept: ``score`` = v there,
and rows are ranked by z, the strength of the evidence that the model relies on the description.

Rule: a description is a *finding* when z exceeds the one-sided normal quantile at ``alpha`` /
(descriptions x classes x group sizes), Bonferroni over every test made (with no reliance at all,
the chance that any row passes is at most ``alpha`` under the normal approximation), and its
score is at least ``min_score`` (0.1: the fitting images gain 10 points of probability of the
class on average). The bootstrap sees only the resampling of images, not what varies from one
fine-tuning to the next, and fine-tuning without any planted correlation leaves real but small
reliances (scores up to about 0.07 on the world's controls, z up to 7, from finite-sample
correlations and the fine-tuning's own drift), so z alone over-detects: the score floor is what
separates a shortcut (planted factors score 0.15 to 0.38) from those traces.
Near-synonymous descriptions (groups overlapping by at least ``merge``, Jaccard, pushing toward
the same class) are merged into the best one's row.

Probe the validation split (balanced groups on world tasks; the default): the test split stays
for scoring anything chosen with the discovery. Domino (Eyuboglu et al., ICLR 2022) evaluates
slice discovery on planted ground truth; ``benchmarks/shortcut_discovery.py`` does that here.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Callable, Sequence

import torch

from ..data import Split, Task
from ..encode import check_tokenizer, clip_of
from ._common import check_classes, check_texts, logit_scale
from .inputs import image_features, resolve_split
from .spuriosity import _alignment, candidate_descriptions

ALPHA = 0.05
FRACTIONS = (1 / 6, 1 / 3, 1 / 2)
MIN_SCORE = 0.1


@dataclass
class Shortcuts:
    """The result of :func:`discover_shortcuts`: ``ranking`` rows, strongest first, and how they
    were obtained. ``findings`` are the rows that pass the rule (``threshold`` on z)."""

    ranking: list[dict]
    judge: str
    rule: str
    threshold: float
    task: str
    split: str
    classnames: list[str]
    n_images: int
    n_errors: int
    accuracy: float
    n_candidates: int
    settings: dict = field(default_factory=dict)
    data: Split | None = field(default=None, repr=False)   # the split probed (thumbnails)

    @property
    def findings(self) -> list[dict]:
        return [r for r in self.ranking if r["significant"]]

    @property
    def found(self) -> bool:
        return bool(self.findings)

    def to_dict(self) -> dict:
        """JSON-ready: everything but the images."""
        keys = ("task", "split", "judge", "rule", "threshold", "classnames", "n_images", "n_errors", "accuracy",
                "n_candidates", "settings")
        return {"ranking": self.ranking, "found": self.found, **{k: getattr(self, k) for k in keys}}

    def summary(self, top: int = 5) -> str:
        lines = [f"{self.task} ({self.split}, {self.n_images} images, {self.n_errors} misclassified); judge: "
                 f"{self.judge}; rule: {self.rule}"]
        if not self.found:
            lines.append("nothing found: no description passes the rule")
        for r in self.ranking[:top]:
            mark = "*" if r["significant"] else " "
            lines.append(f"{mark} {r['rank']:>2}. {r['description']:<32} -> {r['toward']:<10} score {r['score']:+.3f} "
                         f"± {r['stderr']:.3f} (z {r['z']:.1f})  {r['class']}: acc {r['group_acc']:.2f} on "
                         f"{r['n']} fitting it vs {r['rest_acc']:.2f}")
        return "\n".join(lines)


# --------------------------------------------------------------------------- candidates
def default_candidates(task: Task | None, tokenizer) -> list[str]:
    """The task's metadata phrases and rftlab's phrase pools (:func:`candidate_descriptions`);
    with a tokenizer that tells which words its model learned (``tokenizer.trained_words``: the
    world's), only phrases made of those (words it knows but never trained on, such as
    "striped", cannot be judged)."""
    out = candidate_descriptions(task, tokenizer, ("factors", "phrases"))
    trained = getattr(tokenizer, "trained_words", None)
    if trained is not None:
        out = [t for t in out if set(re.findall(r"[a-z]+", t.replace("{}", " ").lower())) <= trained]
    return out


# --------------------------------------------------------------------------- discovery
def _classifier(model, task: Task):
    """A ClipClassifier: the model itself, or the zero-shot head from a ClipModel's own towers."""
    from ..classifier import ClipClassifier
    if isinstance(model, ClipClassifier):
        return model
    if hasattr(model, "tokenizer") and hasattr(model, "model"):
        return ClipClassifier.zeroshot(model, task.classnames, task.templates)
    raise TypeError(f"discover_shortcuts probes a classifier: pass a ClipClassifier (e.g. finetune(...).classifier) "
                    f"or a ClipModel (its zero-shot head is used); got {type(model).__name__}")


def _effects(z: torch.Tensor, masks: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """(B, K, C) mean of z (n, C) over each group minus over its rest; masks (K, n) bool;
    weights (B, n) bootstrap counts (None: one unweighted draw)."""
    w = weights if weights is not None else torch.ones(1, z.shape[0])
    m = masks.float()
    g_w = w[:, None, :] * m[None]                 # B, K, n
    r_w = w[:, None, :] * (1 - m)[None]
    g = (g_w @ z) / g_w.sum(2, keepdim=True).clamp_min(1e-9)
    r = (r_w @ z) / r_w.sum(2, keepdim=True).clamp_min(1e-9)
    return g - r


def _reference_logits(reference, task: Task, tokenizer, features0: torch.Tensor) -> torch.Tensor:
    """The reference classifier's logits: its own head when it is a classifier for this task,
    else the zero-shot head from its towers and the task's templates."""
    from ..classifier import ClipClassifier
    from ..zeroshot import zeroshot_head
    if isinstance(reference, ClipClassifier) and reference.num_classes == task.num_classes:
        ref = reference
    else:
        clip = clip_of(reference)
        check_tokenizer(clip, tokenizer)
        ref = ClipClassifier(clip, zeroshot_head(clip, tokenizer, task.classnames, task.templates).cpu(),
                             logit_scale(clip))
    return ref.logits_from_features(features0.to(ref.head.device)).detach().float().cpu()


def discover_shortcuts(model, task: Task, tokenizer, transform=None, *, reference=None, relative: bool | None = None,
                       candidates: Sequence[str] | Callable | None = None, split: str = "val",
                       fraction: float | Sequence[float] = FRACTIONS, n_boot: int = 200, alpha: float = ALPHA,
                       min_score: float = MIN_SCORE, merge: float = 0.6,
                       min_errors: int = 5, top: int | None = None, n_images: int = 16, seed: int = 0,
                       logits: torch.Tensor | None = None, logits0: torch.Tensor | None = None,
                       features0: torch.Tensor | None = None) -> Shortcuts:
    """Rank candidate descriptions by how much ``model``'s predictions rely on them (see the module
    docstring for the score and the rule), without knowing any planted factor.

    ``model``: the classifier probed (a ClipClassifier; a ClipModel is read with its zero-shot
    head). ``reference``: the model before fine-tuning (theta0: a ClipClassifier, ClipModel or
    open_clip model); its towers judge which images a description fits, and with ``relative``
    (the default when a reference is given) the score is the reliance *added* since the reference:
    the effect on the probed probabilities minus the effect on the reference classifier's (its own
    head, or the zero-shot head of its towers), same groups, paired bootstrap. Without a reference
    the probed model judges itself (a fine-tuned tower may bias the judge) and the score is its
    whole reliance. ``candidates``: a list, a callable called with the task, or None for
    :func:`default_candidates`. ``split``: the images probed (``val`` by default; do not select on
    the test split what you then score on it). ``fraction``: the share(s) of each class's images
    that make a description's group. ``alpha``, ``min_score``: the rule. ``min_errors``: fewer
    misclassified images than this raise (nothing to explain). ``logits`` / ``logits0`` (the
    probed / reference classifier's, on the split) and ``features0`` (the judge's image features)
    skip encoding.

    Rows (strongest evidence first): ``rank, description, score, stderr, z, significant,
    toward`` (the class it pushes toward), ``own_score`` / ``reference_score`` (the probed /
    reference classifier's whole reliance), ``class`` (the class it hurts most), ``group_acc`` /
    ``rest_acc`` (accuracy on that class's images in the group / the rest), ``n`` (their
    number), ``fraction`` (the group size kept), ``images`` (indices into the split of the group's
    best-fitting images of that class), ``synonyms`` (merged descriptions), ``factor`` /
    ``values`` (the metadata key and values the description names, if any, by the words of the
    task's ``metadata_phrases``: :meth:`rftlab.data.Task.named_values`; labels only, never read
    to rank).
    """
    if not isinstance(task, Task):
        raise TypeError("discover_shortcuts needs a Task (class names fill the '{}' of descriptions)")
    fractions = tuple(float(f) for f in ([fraction] if isinstance(fraction, (int, float)) else fraction))
    if not fractions or not all(0 < f < 1 for f in fractions):
        raise ValueError(f"fraction is the share of each class's images that fit a description best, in (0, 1) "
                         f"(one or several); got {fraction}")
    if n_boot < 10:
        raise ValueError(f"n_boot={n_boot}: the standard error needs at least 10 bootstrap resamples (200 is usual)")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha is a false-positive rate in (0, 1); got {alpha}")
    relative = reference is not None if relative is None else bool(relative)
    if relative and reference is None:
        raise ValueError("relative=True scores the reliance added since a reference model: pass reference=theta0")
    s, _ = resolve_split(task, split)
    clf = _classifier(model, task)
    check_classes(clf, task)
    if logits is None:
        f = image_features(clf, s, transform)
        logits = clf.logits_from_features(f.to(clf.head.device)).detach().float().cpu()
    logits = torch.as_tensor(logits).float()
    if tuple(logits.shape) != (len(s), task.num_classes):
        raise ValueError(f"logits have shape {tuple(logits.shape)} but split {split!r} needs ({len(s)}, "
                         f"{task.num_classes})")
    y = s.labels
    wrong = logits.argmax(1) != y
    n_errors = int(wrong.sum())
    if n_errors < min_errors:
        raise ValueError(f"the model misclassifies only {n_errors} of the {len(s)} {split} images of task "
                         f"{task.name!r}: too few errors to tell what it relies on (at least {min_errors} needed). "
                         f"Probe a larger or harder split (split='test' only for a look, never to select), "
                         f"or pass min_errors=0 to rank anyway")
    classes = [c for c in range(task.num_classes) if int((y == c).sum()) >= 2]
    if not classes:
        raise ValueError(f"split {split!r} has fewer than 2 images of every class: too few to compare groups")

    judge_model = reference if reference is not None else clf
    judge = ("the reference model's towers (theta0)" if reference is not None
             else "the probed model's own towers (no reference given: a fine-tuned tower may bias the judge)")
    if candidates is None:
        candidates = default_candidates(task, tokenizer)
    elif callable(candidates):
        candidates = candidate_descriptions(task, tokenizer, candidates)
    candidates = list(dict.fromkeys(check_texts(tokenizer, candidates)))
    f0 = image_features(judge_model, s, transform, features0)
    a = _alignment(judge_model, s, task, candidates, tokenizer, f0)          # N, K
    # each image's offset: its mean alignment over a fixed set of texts (the default candidates,
    # whatever the candidates ranked), so a description's group does not depend on the others ranked
    defaults = default_candidates(task, tokenizer)
    a0 = a if candidates == defaults else _alignment(judge_model, s, task, defaults, tokenizer, f0)
    a = a - a0.mean(1, keepdim=True)
    p_own = logits.softmax(1)
    p_ref = None
    if reference is not None:
        ref_logits = _reference_logits(reference, task, tokenizer, f0) if logits0 is None else \
            torch.as_tensor(logits0).float()
        p_ref = ref_logits.softmax(1)
    p = p_own - p_ref if relative else p_own
    K, C = len(candidates), task.num_classes

    F = len(fractions)
    g = torch.Generator().manual_seed(seed)
    per_class, boot, masks_all = {}, [], torch.zeros(F, K, len(s), dtype=torch.bool)
    for c in classes:
        idx = torch.nonzero(y == c).flatten()
        n = len(idx)
        order = a[idx].argsort(0, descending=True)                             # n, K
        masks = torch.zeros(F, K, n, dtype=torch.bool)                          # each fraction's groups
        for f, frac in enumerate(fractions):
            masks[f].scatter_(1, order[: min(n - 1, max(1, round(frac * n)))].t(), True)
        masks_all[:, :, idx] = masks
        masks = masks.view(F * K, n)
        counts = torch.stack([torch.bincount(torch.randint(0, n, (n,), generator=g), minlength=n)
                              for _ in range(n_boot)]).float()                 # B, n
        eff = {"score": _effects(p[idx], masks)[0], "own": _effects(p_own[idx], masks)[0]}
        if p_ref is not None:
            eff["reference"] = _effects(p_ref[idx], masks)[0]
        per_class[c] = (idx, order, {k: v.view(F, K, C) for k, v in eff.items()})   # effects: F, K, C
        boot.append(_effects(p[idx], masks, counts).view(n_boot, F, K, C))

    def mean_over_classes(key):
        return torch.stack([per_class[c][2][key] for c in classes]).mean(0)   # F, K, C
    v = mean_over_classes("score")                                             # F, K, C
    own = mean_over_classes("own")
    ref = mean_over_classes("reference") if p_ref is not None else None
    vb = torch.stack(boot).mean(0)                                             # B, F, K, C
    se_all = vb.std(0).clamp_min(1e-12)
    tests = K * C * F
    threshold = NormalDist().inv_cdf(1 - alpha / tests)
    z_all = v / se_all
    flat = z_all.permute(1, 0, 2).reshape(K, F * C).argmax(1)                  # K: best (fraction, class) by z
    pick, toward = flat // C, flat % C
    kk = torch.arange(K)
    score, stderr = v[pick, kk, toward], se_all[pick, kk, toward]
    zval = score / stderr
    rule = (f"z = score / stderr > {threshold:.2f} (the one-sided normal quantile at alpha={alpha:g} / {tests} "
            f"tests: {K} descriptions x {C} classes x {F} group sizes, Bonferroni) and score >= {min_score:g}")

    rows: list[dict] = []
    kept_masks: list[tuple[torch.Tensor, int, dict]] = []
    for k in zval.argsort(descending=True).tolist():
        j, f = int(toward[k]), int(pick[k])
        mk = masks_all[f, k]
        dup = next((r for m, jj, r in kept_masks if jj == j and _jaccard(m, mk) >= merge), None)
        if dup is not None:
            dup["synonyms"].append(candidates[k])
            continue
        hurt = [c for c in classes if c != j] or classes
        c_star = max(hurt, key=lambda c: per_class[c][2]["score"][f, k, j].item())
        idx, order, _ = per_class[c_star]
        in_group = mk[idx]
        right = (logits[idx].argmax(1) == c_star)
        best = [int(idx[i]) for i in order[:, k].tolist() if in_group[i]][:n_images]
        named = task.named_values(candidates[k])
        row = {"description": candidates[k], "score": score[k].item(), "stderr": stderr[k].item(),
               "z": zval[k].item(), "significant": bool(zval[k] > threshold and score[k] >= min_score),
               "toward": task.classnames[j],
               "own_score": own[f, k, j].item(), "reference_score": ref[f, k, j].item() if ref is not None else None,
               "class": task.classnames[c_star], "group_acc": right[in_group].float().mean().item(),
               "rest_acc": right[~in_group].float().mean().item(), "n": int(in_group.sum()), "fraction": fractions[f],
               "images": best,
               "synonyms": [], "factor": named[0] if named else None, "values": named[1] if named else []}
        rows.append(row)
        kept_masks.append((mk, j, row))
    rows = [{"rank": i + 1, **r} for i, r in enumerate(rows)]
    if top:
        rows = rows[:top]
    what = ("the reliance added since the reference: " if relative else "") + \
        "mean over classes of the within-class difference in the probability of a class (group - rest)"
    settings = {"score": what, "relative": relative, "fractions": list(fractions), "n_boot": n_boot, "alpha": alpha,
                "min_score": min_score, "merge": merge, "seed": seed}
    return Shortcuts(rows, judge, rule, threshold, task.name, split, list(task.classnames), len(s), n_errors,
                     1 - n_errors / len(s), K, settings, s)


def _jaccard(a: torch.Tensor, b: torch.Tensor) -> float:
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else 1.0


def names_factor(row: dict, factor: str, values: Sequence[str] | None = None) -> bool:
    """Whether a ranking row names ``factor`` (and one of ``values``, when given): its
    ``factor`` / ``values`` labels (:meth:`rftlab.data.Task.named_values` of its description)."""
    return row.get("factor") == factor and (values is None or bool(set(row.get("values", [])) & set(values)))


__all__ = ["discover_shortcuts", "Shortcuts", "default_candidates", "names_factor", "ALPHA"]
