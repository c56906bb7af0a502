"""Exercise: the ECE of a whole evaluation set given in batches, checked against :func:`pooled_ece`
(:func:`rftlab.metrics.ece` on the pooled batches)."""
from __future__ import annotations

import torch

from ..metrics import ece as _ece
from .grading import Case, CheckResult, knob_mistakes, run_check, scalar_compare, show_scalar


def pooled_ece(batches, n_bins: int = 15) -> float:
    """rftlab's answer to the ECE exercise: pool every batch's (probs, labels), then :func:`rftlab.metrics.ece`."""
    batches = list(batches)
    if not batches:
        raise ValueError("pooled_ece needs at least one (probs, labels) batch")
    probs = torch.cat([p for p, _ in batches])
    labels = torch.cat([y for _, y in batches])
    return _ece(probs, labels, n_bins)


def _ece_single(probs, labels, n_bins, bins="right", weights="size", gap="abs", softmax_again=False):
    probs = probs.float()
    if softmax_again:
        probs = probs.softmax(1)
    conf, pred = probs.max(1)
    right = (pred == labels).float()
    if bins == "right":
        idx = torch.clamp(torch.ceil(conf * n_bins).long() - 1, 0, n_bins - 1)
    else:
        idx = torch.clamp(torch.floor(conf * n_bins).long(), 0, n_bins - 1)
    total = torch.zeros(n_bins).index_add_(0, idx, torch.ones_like(conf))
    acc = torch.zeros(n_bins).index_add_(0, idx, right)
    cf = torch.zeros(n_bins).index_add_(0, idx, conf)
    nonempty = total > 0
    diff = (acc - cf)[nonempty] / total[nonempty]
    diff = diff.abs() if gap == "abs" else diff
    if weights == "size":
        return float((diff * total[nonempty]).sum() / len(labels))
    return float(diff.mean())


def _ece_variant(pooling="pooled", bins="right", weights="size", gap="abs", n_bins_arg="given", probs="given"):
    def fn(batches, n_bins=15):
        nb = n_bins if n_bins_arg == "given" else 15
        kw = dict(bins=bins, weights=weights, gap=gap, softmax_again=probs == "softmax_again")
        if pooling == "pooled":
            return _ece_single(torch.cat([p for p, _ in batches]), torch.cat([y for _, y in batches]), nb, **kw)
        vals = [_ece_single(p, y, nb, **kw) for p, y in batches]
        if pooling == "batch_mean":
            return sum(vals) / len(vals)
        sizes = [len(y) for _, y in batches]
        return sum(v * n for v, n in zip(vals, sizes)) / sum(sizes)
    return fn


_ECE_KNOBS = {
    "pooling": [("pooled", None, ""),
                ("batch_mean", "per_batch_average",
                 "you averaged per-batch ECEs. ECE is a property of the whole set: pool the (probs, labels) of "
                 "every batch first (torch.cat), then bin once. Per-batch bins hold a handful of samples each, "
                 "so their |accuracy - confidence| gaps are noisy and the average is biased upwards."),
                ("batch_weighted", "per_batch_weighted_average",
                 "you averaged per-batch ECEs weighted by batch size: still per batch. Pool every batch first "
                 "(torch.cat), then bin once: the bins must hold the whole set.")],
    "bins": [("right", None, ""),
             ("left", "left_closed_bins",
              "your bins are left-closed [k/n, (k+1)/n); rftlab's are right-closed (k/n, (k+1)/n] (a confidence of "
              "exactly 0.5 with 4 bins belongs to the bin (0.25, 0.5]): bin = ceil(conf * n_bins) - 1, clamped to "
              "[0, n_bins - 1].")],
    "weights": [("size", None, ""),
                ("uniform", "unweighted_bins",
                 "you averaged the gaps of the non-empty bins equally; weight each bin by its share of samples: "
                 "sum_b (|B_b| / N) |acc_b - conf_b|.")],
    "gap": [("abs", None, ""),
            ("signed", "signed_gaps",
             "you summed signed gaps acc_b - conf_b, so over- and under-confident bins cancel; take the absolute "
             "value per bin.")],
    "n_bins_arg": [("given", None, ""),
                   ("fixed15", "ignores_n_bins", "you ignored the n_bins argument (always 15 bins); some cases ask for 4 or 10.")],
    "probs": [("given", None, ""),
              ("softmax_again", "softmax_of_probs",
               "you applied a softmax to inputs that already are probabilities; read the confidence directly: "
               "probs.max(1).")],
}


def _ece_cases() -> list[Case]:
    cases = []

    def make(g, n, c, temp, acc_bias):
        logits = torch.randn(n, c, generator=g) * temp
        probs = logits.softmax(1)
        pred = probs.argmax(1)
        keep = torch.rand(n, generator=g) < acc_bias
        labels = torch.where(keep, pred, torch.randint(0, c, (n,), generator=g))
        return probs, labels

    g = torch.Generator().manual_seed(500)
    p, y = make(g, 600, 5, 2.5, 0.6)
    cases.append(Case("600 samples in batches of 256, 256 and 88 (an evaluation loop), 15 bins",
                       (list(zip(p.split(256), y.split(256))),), {"n_bins": 15}))
    g = torch.Generator().manual_seed(501)
    parts = [make(g, 100, 4, 4.0, 0.95), make(g, 50, 4, 1.0, 0.3), make(g, 25, 4, 3.0, 0.5)]
    cases.append(Case("3 batches (100, 50, 25) calibrated very differently, 10 bins",
                       ([(a, b) for a, b in parts],), {"n_bins": 10}))
    # confidences exactly on bin edges (0.5 and 0.75 with 4 bins)
    rows = torch.tensor([[0.5, 0.25, 0.25], [0.75, 0.125, 0.125], [0.5, 0.3, 0.2], [0.4, 0.35, 0.25],
                         [0.9, 0.05, 0.05], [0.75, 0.25, 0.0], [0.3, 0.6, 0.1], [0.6, 0.2, 0.2]])
    labels = torch.tensor([0, 1, 0, 2, 0, 0, 1, 1])
    cases.append(Case("8 samples with confidences exactly on bin edges (0.5, 0.75), 4 bins",
                       ([(rows[:5], labels[:5]), (rows[5:], labels[5:])],), {"n_bins": 4}))
    g = torch.Generator().manual_seed(503)
    p, y = make(g, 200, 2, 3.0, 0.8)
    cases.append(Case("one batch of 200 samples, 2 classes, 15 bins", ([(p, y)],), {"n_bins": 15}))
    return cases


def check_ece(fn, quiet: bool = False) -> CheckResult:
    """Check ``fn(batches, n_bins=15) -> float``, the pooled ECE of a list of (probs, labels) batches,
    against :func:`rftlab.metrics.ece` on the concatenated batches."""
    return run_check(
        "pooled ECE", fn, pooled_ece, _ece_cases(), ["batches"],
        knob_mistakes(_ece_variant, _ECE_KNOBS, "ECE"), scalar_compare(1e-4, 1e-5), show_scalar,
        "your ECE matches rftlab.metrics.ece on 4 cases (uneven batches, batches calibrated differently, "
        "confidences on bin edges, 4 / 10 / 15 bins).", quiet=quiet)
