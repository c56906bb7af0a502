"""Exercise: Lipsum-FT's regulariser, checked against :func:`rftlab.losses.lipsum_regularizer`."""
from __future__ import annotations

import torch

from .. import losses
from .grading import (Case, CheckResult, knob_mistakes, moved_features, run_check, scalar_compare, show_scalar,
                      unit_features)


def _lipsum_variant(scale="inside", norm="2M", reduction="mean", term="square"):
    def fn(features, features0, text_features, logit_scale):
        m = text_features.shape[0]
        e, e0 = features @ text_features.t(), features0 @ text_features.t()
        if scale == "inside":
            e, e0 = logit_scale * e, logit_scale * e0
        t = {"square": (e - e0) ** 2, "abs": (e - e0).abs(), "squares": e ** 2 - e0 ** 2}[term]
        if scale == "outside":
            t = logit_scale * t
        per = t.sum(1) / {"2M": 2 * m, "M": m, "2": 2, "1": 1}[norm]
        return per.mean() if reduction == "mean" else per.sum()
    return fn


_LIPSUM_KNOBS = {
    "scale": [("inside", None, ""),
              ("outside", "scale_outside_square",
               "the scale sits outside the square: you computed s * (<phi, psi> - <phi0, psi>)^2. Lipsum-FT "
               "squares the gap of the *scaled* energies, (s<phi, psi> - s<phi0, psi>)^2 = s^2 * gap^2: "
               "with s = 100 yours is 100 times too small, and lambda would mean something else."),
              ("none", "no_scale",
               "the scale is missing: the energies are s * <phi(x), psi(t)> (logits), not raw cosines; "
               "without s the regulariser is s^2 = 10^4 times too small.")],
    "norm": [("2M", None, ""),
             ("M", "divided_by_M",
              "you divided by M; the regulariser is (1 / 2M) sum_m gap_m^2 (half the mean squared gap over the "
              "M texts). gap.pow(2).mean(1) is off by a factor 2."),
             ("2", "not_averaged_over_texts",
              "you did not average over the M random texts: divide the sum over m by 2M, not by 2."),
             ("1", "no_normalisation",
              "the sum over the M texts is not normalised: divide it by 2M.")],
    "reduction": [("mean", None, ""),
                  ("sum", "summed_over_batch", "you summed over the batch; average over the B images.")],
    "term": [("square", None, ""),
             ("abs", "absolute_gap", "you used the absolute gap |gap|; Lipsum-FT uses the squared gap (an MSE)."),
             ("squares", "difference_of_squares",
              "you took the difference of squared energies, E^2 - E0^2; square the difference instead: "
              "(E - E0)^2, which is zero only when the energies agree.")],
}


def _lipsum_cases() -> list[Case]:
    cases = []
    for seed, (b, d, m, s, noise) in enumerate(((8, 16, 10, 100.0, 0.3), (4, 32, 80, 100.0, 0.5),
                                                (6, 24, 7, torch.tensor(57.3), 0.8), (10, 16, 32, 14.3, 0.2))):
        g = torch.Generator().manual_seed(400 + seed)
        f0 = unit_features(g, b, d)
        cases.append(Case(f"B = {b} images, M = {m} random texts, D = {d}, logit_scale = {float(s):g}",
                           (moved_features(g, f0, noise), f0, unit_features(g, m, d), s)))
    g = torch.Generator().manual_seed(499)
    f0 = unit_features(g, 5, 16)
    cases.append(Case("features == features0 (the regulariser must be 0)", (f0.clone(), f0, unit_features(g, 12, 16), 100.0)))
    return cases


def check_lipsum(fn, quiet: bool = False) -> CheckResult:
    """Check ``fn(features, features0, text_features, logit_scale) -> scalar`` against
    :func:`rftlab.losses.lipsum_regularizer` (Lipsum-FT)."""
    return run_check(
        "Lipsum-FT regulariser", fn, losses.lipsum_regularizer, _lipsum_cases(),
        ["features", "features0", "text_features", "logit_scale"],
        knob_mistakes(_lipsum_variant, _LIPSUM_KNOBS, "regulariser"), scalar_compare(), show_scalar,
        "your regulariser matches rftlab.losses.lipsum_regularizer on 5 cases (M = 7 to 80 texts, scales 14.3 to "
        "100, features equal to theta0's) and keeps the gradient.",
        grad_arg=0, quiet=quiet)
