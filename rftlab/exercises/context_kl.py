"""Exercise: CAR-FT's context KL, checked against :func:`rftlab.losses.context_kl`."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .. import losses
from .grading import (Case, CheckResult, knob_mistakes, moved_features, run_check, scalar_compare, show_scalar,
                      unit_features)


def _context_variant(direction="p0_p", scale="given", dim="contexts", reduction="mean", kind="kl"):
    def fn(features, features0, context_weights, logit_scale):
        s = {"given": logit_scale, "none": 1.0, "fixed100": 100.0}[scale]
        d = -1 if dim == "contexts" else 0
        logp = F.log_softmax(s * features @ context_weights, dim=d)
        logp0 = F.log_softmax(s * features0 @ context_weights, dim=d)
        target, other = (logp0, logp) if direction == "p0_p" else (logp, logp0)
        terms = target.exp() * (target - other) if kind == "kl" else -target.exp() * other
        if reduction == "mean":
            return terms.sum(-1).mean()
        if reduction == "sum":
            return terms.sum()
        return terms.mean()
    return fn


_CONTEXT_KNOBS = {
    "direction": [("p0_p", None, ""),
                  ("p_p0", "reversed_kl",
                   "the KL is the wrong way round: you computed KL(p || p0). CAR-FT keeps the zero-shot model's "
                   "context distribution p0 as the target: KL(p0 || p) = sum_k p0_k (log p0_k - log p_k). "
                   "(F.kl_div(input, target) computes KL(target || input): its first argument is the log-probs "
                   "of the model being trained.)")],
    "scale": [("given", None, ""),
              ("none", "no_scale",
               "the scale is missing: the context distribution is softmax(s * f @ W_ctx). Without s, cosines in "
               "[-1, 1] give an almost uniform distribution and the KL is nearly zero."),
              ("fixed100", "hard_coded_scale",
               "you used s = 100 instead of the logit_scale argument; some cases pass another scale.")],
    "dim": [("contexts", None, ""),
            ("batch", "softmax_over_batch",
             "the softmax runs over the batch (dim=0); each image needs a distribution over the K contexts: "
             "softmax over the last axis (dim=-1) of the (B, K) logits.")],
    "reduction": [("mean", None, ""),
                  ("sum", "summed_over_batch", "you summed over the batch; average the per-image KL over the B images."),
                  ("all", "mean_over_entries",
                   "you averaged over all B x K entries; sum over the contexts k, then average over the images "
                   "(F.kl_div: reduction='batchmean').")],
    "kind": [("kl", None, ""),
             ("ce", "cross_entropy",
              "you computed the cross-entropy H(p0, p) = -sum p0 log p, which is the KL plus the entropy of p0: "
              "the same gradient, but not the KL the method reports (it should be 0 when p = p0). Add the "
              "sum p0 log p0 term.")],
}


def _context_cases() -> list[Case]:
    cases = []
    for seed, (b, d, k, s, noise) in enumerate(((8, 16, 6, 100.0, 0.5), (5, 32, 12, 40.0, 0.8),
                                                (16, 24, 4, torch.tensor(70.0), 0.3), (3, 16, 9, 100.0, 1.0))):
        g = torch.Generator().manual_seed(300 + seed)
        f0 = unit_features(g, b, d)
        w = unit_features(g, k, d).t().contiguous()
        cases.append(Case(f"B = {b} images, D = {d}, K = {k} contexts, logit_scale = {float(s):g}",
                           (moved_features(g, f0, noise), f0, w, s)))
    g = torch.Generator().manual_seed(399)
    f0 = unit_features(g, 6, 16)
    cases.append(Case("features == features0 (the KL must be 0)", (f0.clone(), f0, unit_features(g, 5, 16).t(), 100.0)))
    return cases


def check_context_kl(fn, quiet: bool = False) -> CheckResult:
    """Check ``fn(features, features0, context_weights, logit_scale) -> scalar`` against
    :func:`rftlab.losses.context_kl` (CAR-FT)."""
    return run_check(
        "CAR-FT context KL", fn, losses.context_kl, _context_cases(),
        ["features", "features0", "context_weights", "logit_scale"],
        knob_mistakes(_context_variant, _CONTEXT_KNOBS, "context KL"), scalar_compare(), show_scalar,
        "your context KL matches rftlab.losses.context_kl on 5 cases (scales 40 to 100, 4 to 12 contexts, "
        "features equal to theta0's) and keeps the gradient.",
        grad_arg=0, non_finite_hint="Use F.log_softmax rather than softmax(...).log(): with s = 100 small "
                                    "probabilities underflow to 0 and their log to -inf.",
        quiet=quiet)
