"""Exercise: CaRot's orthogonality penalty, checked against :func:`rftlab.losses.orthogonality`."""
from __future__ import annotations

import torch

from .. import losses
from .grading import Case, CheckResult, knob_mistakes, run_check, scalar_compare, show_scalar


def _ortho_variant(gram="PtP", identity="minus", norm="fro"):
    def fn(proj):
        g = proj.t() @ proj if gram == "PtP" else proj @ proj.t()
        if identity == "minus":
            g = g - torch.eye(g.shape[0], dtype=g.dtype)
        if norm == "fro":
            return torch.linalg.matrix_norm(g)
        if norm == "fro_squared":
            return g.pow(2).sum()
        return torch.linalg.matrix_norm(g, ord=2)
    return fn


_ORTHO_KNOBS = {
    "gram": [("PtP", None, ""),
             ("PPt", "wrong_gram",
              "you used P P^T (width x width); CaRot constrains the columns of the visual projection P "
              "(width, embed_dim) to be orthonormal: P^T P (embed_dim x embed_dim) minus the identity.")],
    "identity": [("minus", None, ""),
                 ("none", "no_identity", "the identity is missing: the penalty is ||P^T P - I||_F, zero for an "
                                         "orthonormal P, not ||P^T P||_F.")],
    "norm": [("fro", None, ""),
             ("fro_squared", "squared_norm",
              "you squared the Frobenius norm; CaRot uses ||P^T P - I||_F itself, not squared "
              "(torch.linalg.matrix_norm(..., 'fro')), which changes the weight lambda_OC means."),
             ("spectral", "spectral_norm", "you used the spectral norm (largest singular value); CaRot uses the "
                                           "Frobenius norm: the square root of the sum of squared entries.")],
}


def _ortho_cases() -> list[Case]:
    cases = []
    for seed, (w, e, scale) in enumerate(((32, 16, 0.2), (16, 16, 0.25), (64, 8, 0.15))):
        g = torch.Generator().manual_seed(600 + seed)
        cases.append(Case(f"P of shape ({w}, {e})", (torch.randn(w, e, generator=g) * scale,)))
    g = torch.Generator().manual_seed(699)
    q, _ = torch.linalg.qr(torch.randn(24, 6, generator=g))
    cases.append(Case("P with orthonormal columns plus a little noise, (24, 6)",
                       (q + 0.05 * torch.randn(24, 6, generator=g),)))
    return cases


def check_orthogonality(fn, quiet: bool = False) -> CheckResult:
    """Check ``fn(proj) -> scalar`` against :func:`rftlab.losses.orthogonality` (CaRot)."""
    return run_check(
        "CaRot orthogonality", fn, losses.orthogonality, _ortho_cases(), ["proj"],
        knob_mistakes(_ortho_variant, _ORTHO_KNOBS, "penalty"), scalar_compare(1e-4, 1e-5), show_scalar,
        "your penalty matches rftlab.losses.orthogonality on 4 cases (tall and square projections, a nearly "
        "orthonormal one) and keeps the gradient.", grad_arg=0, quiet=quiet)
