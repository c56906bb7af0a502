"""Exercise: WiSE-FT interpolation of two state dicts, checked against :func:`rftlab.wise_ft`."""
from __future__ import annotations

from collections.abc import Mapping

import torch

from ..methods.wiseft import wise_ft as _wise_ft
from .grading import BadOutput, Case, CheckResult, Mistake, describe, run_check


def _wise_cases() -> list[Case]:
    cases = []
    for seed, alpha in ((0, 0.5), (1, 0.3), (2, 0.0), (3, 1.0), (4, 0.75)):
        g = torch.Generator().manual_seed(100 + seed)
        sds = []
        for end in range(2):
            sds.append({
                "visual.proj": torch.randn(8, 4, generator=g),
                "visual.bn.running_mean": torch.randn(8, generator=g),
                "visual.bn.num_batches_tracked": torch.tensor(10 + 990 * end + seed, dtype=torch.long),
                "text.position_ids": torch.arange(6).view(1, 6),
                "text.proj": torch.randn(6, 4, generator=g).half(),
                "head": torch.randn(4, 3, generator=g),
                "scale": torch.tensor(100.0),
            })
        cases.append(Case(f"alpha = {alpha}, a float16 tensor and integer buffers", (sds[0], sds[1], alpha)))
    return cases


def _wise_compare(out, ref, case) -> bool:
    if not isinstance(out, Mapping):
        raise BadOutput(f"should return a state dict (a dict name -> tensor); it returned {type(out).__name__}")
    if out.keys() != ref.keys():
        return False
    sd0, sd1, _ = case.args
    for k, r in ref.items():
        o = out[k]
        if not isinstance(o, torch.Tensor) or o.dtype != r.dtype or o.shape != r.shape:
            return False
        if r.is_floating_point():
            tol = 2e-3 if r.dtype in (torch.float16, torch.bfloat16) else 1e-5
            if not torch.allclose(o.float(), r.float(), rtol=tol, atol=tol):
                return False
        elif not (torch.equal(o, sd0[k]) or torch.equal(o, sd1[k])):  # either endpoint's copy is fine
            return False
    return True


def _wise_reversed(sd0, sd1, alpha):
    return _wise_ft(sd0, sd1, 1 - alpha)


def _mixed_ints(out, case) -> bool:
    sd0, sd1, _ = case.args
    if not isinstance(out, Mapping):
        return False
    for k, a in sd0.items():
        o = out.get(k)
        if not a.is_floating_point() and isinstance(o, torch.Tensor):
            if o.dtype != a.dtype or not (torch.equal(o, a) or torch.equal(o, sd1[k])):
                return True
    return False


def _int_keys_message(outs, cases) -> str:
    bad = []
    for out, case in zip(outs, cases):
        sd0, sd1, alpha = case.args
        for k, a in sd0.items():
            o = out.get(k) if isinstance(out, Mapping) else None
            if not a.is_floating_point() and isinstance(o, torch.Tensor) and \
                    (o.dtype != a.dtype or not (torch.equal(o, a) or torch.equal(o, sd1[k]))):
                bad.append(f"{k!r} at alpha = {alpha}: theta0 has {describe(a)}, theta1 {describe(sd1[k])}, "
                           f"yours {describe(o)}")
    return ("you mixed integer tensors as if they were weights. " + bad[0] + ".\n"
            "Integer buffers count steps (BatchNorm's num_batches_tracked) or index positions (position_ids): "
            "their weighted average means nothing and turns them into floats, which load_state_dict then rejects "
            "or silently truncates. Interpolate only tensors with t.is_floating_point(); copy the others "
            "unchanged (from theta0, or from the endpoint alpha is nearer to).")


def _missing_keys(out, case) -> bool:
    return isinstance(out, Mapping) and out.keys() != case.args[0].keys()


def _missing_keys_message(outs, cases) -> str:
    out, sd0 = outs[0], cases[0].args[0]
    missing, extra = sorted(set(sd0) - set(out)), sorted(set(out) - set(sd0))
    return (f"your state dict does not hold the same tensors as the inputs (missing: {missing}, extra: {extra}). "
            "WiSE-FT interpolates every floating-point tensor, the head and the scale included, and copies every "
            "other tensor: the result must load into the same model with load_state_dict.")


def _dtype_changed(out, case) -> bool:
    sd0 = case.args[0]
    return isinstance(out, Mapping) and any(
        a.is_floating_point() and isinstance(out.get(k), torch.Tensor) and out[k].dtype != a.dtype
        for k, a in sd0.items())


def check_wise_ft(fn, quiet: bool = False) -> CheckResult:
    """Check ``fn(state_dict0, state_dict1, alpha) -> state_dict`` against :func:`rftlab.wise_ft`."""
    mistakes = [
        Mistake("missing_keys", _missing_keys_message, detect=_missing_keys),
        Mistake("mixed_integers", _int_keys_message, detect=_mixed_ints),
        Mistake("dtype_changed", "a floating-point tensor came back with another dtype (the float16 tensor "
                                 "became float32?). Keep each tensor's dtype: the result must load into the "
                                 "same model; e.g. (1 - alpha) * a + alpha * b keeps float16.",
                detect=_dtype_changed),
        Mistake("reversed_alpha", "alpha is the wrong way round: you computed alpha * theta0 + (1 - alpha) * theta1. "
                                  "alpha = 0 must give the zero-shot model theta0 and alpha = 1 the fine-tuned "
                                  "theta1: (1 - alpha) * theta0 + alpha * theta1.", fn=_wise_reversed),
    ]

    def show(x):
        if not isinstance(x, Mapping):
            return describe(x)
        return "{" + ", ".join(f"{k!r}: " + (f"{describe(v)} first values {v.flatten()[:3].tolist()}"
                                              if isinstance(v, torch.Tensor) and v.ndim else describe(v))
                               for k, v in list(x.items())[:3]) + ", ...}"

    return run_check("WiSE-FT interpolation", fn, _wise_ft, _wise_cases(),
                     ["state_dict0", "state_dict1", "alpha"], mistakes, _wise_compare, show,
                     "your interpolation matches rftlab.wise_ft on 5 cases (alpha 0, 0.3, 0.5, 0.75, 1; integer "
                     "buffers copied, a float16 tensor kept float16).",
                     error_hints=[("Long", "an integer tensor (dtype long) reached an operation meant for floats: "
                                           "interpolate only tensors with t.is_floating_point() and copy the rest."),
                                  ("Int", "an integer tensor reached an operation meant for floats: interpolate "
                                          "only tensors with t.is_floating_point() and copy the rest.")],
                     quiet=quiet)
