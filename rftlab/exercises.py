"""Self-checking exercises for the tutorials (``tutorials/``).

Each ``check_*`` runs a student's function on generated cases (several seeds and edge cases),
compares it with rftlab's own implementation (:mod:`rftlab.losses`, :func:`rftlab.metrics.ece`,
:func:`rftlab.wise_ft`) and prints one of four answers:

* passed;
* not answered yet (the function raises ``NotImplementedError`` or returns ``None`` / ``...``);
* a diagnosis of a classic mistake, found by also computing the known-wrong variants
  (the KL the wrong way round, per-batch ECE, integer buffers mixed, ...);
* otherwise the first failing case: its inputs, the expected and the returned value.

A checker never raises on a wrong or missing answer, so a notebook runs top to bottom; it
returns a :class:`CheckResult` (``.passed``, ``.status``, ``.diagnosis``, ``.message``).
``result.implementation()`` hands back the student's function when it passed and rftlab's
reference otherwise, and :func:`swap_in` runs a function inside rftlab's own method.
"""
from __future__ import annotations

import contextlib
import importlib
import itertools
import math
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F

from . import losses
from .metrics import ece as _ece
from .methods.wiseft import wise_ft as _wise_ft

__all__ = ["CheckResult", "check_wise_ft", "check_starft_kl", "check_context_kl", "check_lipsum",
           "check_ece", "check_orthogonality", "swap_in", "SWAP_POINTS", "pooled_ece"]

PASSED, NOT_ANSWERED, MISTAKE, MISMATCH, ERROR = "passed", "not_answered", "mistake", "mismatch", "error"


@dataclass
class CheckResult:
    """What a checker found. ``status`` is one of passed, not_answered, mistake (a known
    classic mistake, named by ``diagnosis``), mismatch (wrong, no known cause) or error."""

    exercise: str
    status: str
    message: str
    diagnosis: str | None = None
    cases: int = 0
    student: Callable | None = field(default=None, repr=False)
    reference: Callable | None = field(default=None, repr=False)

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def implementation(self, verbose: bool = True) -> Callable:
        """The student's function if it passed, else rftlab's reference (and says which)."""
        if self.passed:
            if verbose:
                print(f"using your implementation of {self.exercise}")
            return self.student
        if verbose:
            why = ("the exercise is not answered yet" if self.status == NOT_ANSWERED
                   else "your answer does not pass the check yet")
            print(f"using rftlab's reference implementation because {why}")
        return self.reference

    def __repr__(self) -> str:
        return (f"CheckResult({self.exercise!r}, passed={self.passed}, status={self.status!r}, "
                f"diagnosis={self.diagnosis!r})")


@dataclass
class _Case:
    description: str
    args: tuple
    kwargs: dict = field(default_factory=dict)


@dataclass
class _Mistake:
    key: str
    message: str | Callable
    fn: Callable | None = None         # a known-wrong implementation: matches on every case
    detect: Callable | None = None     # or a predicate (student_output, case) -> bool, any case


class _BadOutput(Exception):
    """The student's output has the wrong type or shape (message says which)."""


class _NotAnswered(Exception):
    pass


# --------------------------------------------------------------------------- helpers
def _clone(x):
    if isinstance(x, torch.Tensor):
        return x.detach().clone()
    if isinstance(x, Mapping):
        return {k: _clone(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_clone(v) for v in x)
    return x


def _same_input(a, b) -> bool:
    if isinstance(a, torch.Tensor):
        return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a.detach(), b.detach())
    if isinstance(a, Mapping):
        return a.keys() == b.keys() and all(_same_input(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_input(x, y) for x, y in zip(a, b))
    return a == b


def _describe(x) -> str:
    if isinstance(x, torch.Tensor):
        if x.ndim == 0:
            return f"tensor({x.item():.6g}, {str(x.dtype).replace('torch.', '')})"
        return f"tensor {tuple(x.shape)} {str(x.dtype).replace('torch.', '')}"
    if isinstance(x, Mapping):
        return "{" + ", ".join(f"{k!r}: {_describe(v)}" for k, v in list(x.items())[:8]) + \
            (", ..." if len(x) > 8 else "") + "}"
    if isinstance(x, tuple):
        return "(" + ", ".join(_describe(v) for v in x) + ")"
    if isinstance(x, list):
        inner = ", ".join(_describe(v) for v in x[:3])
        return f"[{inner}{', ...' if len(x) > 3 else ''}] ({len(x)} items)"
    return repr(x)


def _describe_inputs(case: _Case, names: list[str]) -> str:
    parts = [f"{n} = {_describe(a)}" for n, a in zip(names, case.args)]
    parts += [f"{k} = {_describe(v)}" for k, v in case.kwargs.items()]
    return "; ".join(parts)


def _scalar(out) -> float:
    """A student's scalar output as a float (a 0-dim or 1-element tensor, or a number)."""
    if isinstance(out, torch.Tensor):
        if out.numel() != 1:
            raise _BadOutput(f"should return a single number (a 0-dim tensor), but returned a tensor of "
                             f"shape {tuple(out.shape)}: reduce it (sum over the right axis, mean over the batch)")
        return float(out.detach().float().item())
    try:
        return float(out)
    except (TypeError, ValueError):
        raise _BadOutput(f"should return a single number (a 0-dim tensor); it returned {type(out).__name__}") from None


def _close(a: float, b: float, rel: float = 1e-4, abs_: float = 1e-6) -> bool:
    if math.isnan(a) or math.isnan(b):
        return False
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def _where_in_code(err: BaseException) -> str:
    """The line of the student's own code where ``err`` came from (not torch's, not this module's)."""
    frames = traceback.extract_tb(err.__traceback__)
    mine = [f for f in frames if f.filename != __file__ and "site-packages" not in f.filename
            and "/torch/" not in f.filename.replace("\\", "/")]
    if mine and mine[-1].line:
        return f" (at `{mine[-1].line.strip()}`)"
    return ""


def _raised_by_student(err: NotImplementedError) -> bool:
    """True for the exercise's own ``raise NotImplementedError`` (not torch's 'not implemented for Long')."""
    frames = traceback.extract_tb(err.__traceback__)
    return not err.args or bool(frames and (frames[-1].line or "").lstrip().startswith("raise"))


def _knob_mistakes(variant: Callable, knobs: dict[str, list[tuple]], what: str) -> list[_Mistake]:
    """Every combination of knob settings other than the reference's, as known-wrong variants.

    ``knobs``: name -> [(value, key, message), ...]; the first entry is the reference's setting.
    Combinations with fewer wrong settings come first."""
    names = list(knobs)
    combos = []
    for choice in itertools.product(*(range(len(knobs[n])) for n in names)):
        wrong = [(n, knobs[n][i]) for n, i in zip(names, choice) if i]
        if wrong:
            combos.append((len(wrong), choice, wrong))
    combos.sort(key=lambda c: c[0])
    out = []
    for _, choice, wrong in combos:
        settings = {n: knobs[n][i][0] for n, i in zip(names, choice)}
        key = "+".join(w[1][1] for w in wrong)
        if len(wrong) == 1:
            msg = wrong[0][1][2]
        else:
            msg = f"Your {what} differs from the reference in {len(wrong)} ways:\n" + \
                "\n".join(f"  {i + 1}. {w[1][2]}" for i, w in enumerate(wrong))
        out.append(_Mistake(key, msg, fn=variant(**settings)))
    return out


def _run_check(exercise: str, fn, reference: Callable, cases: list[_Case], arg_names: list[str],
               mistakes: list[_Mistake], compare: Callable, show: Callable, success: str,
               grad_arg: int | None = None, non_finite_hint: str = "", error_hints=(),
               quiet: bool = False) -> CheckResult:
    def done(status, message, diagnosis=None):
        icon = {PASSED: "✅ PASSED", NOT_ANSWERED: "⏳ NOT ANSWERED YET"}.get(status, "❌ NOT YET RIGHT")
        res = CheckResult(exercise, status, f"{icon} ({exercise}): {message}", diagnosis, len(cases),
                          fn if callable(fn) else None, reference)
        if not quiet:
            print(res.message)
        return res

    if not callable(fn):
        return done(ERROR, f"pass your function itself to the checker, e.g. check(my_function) without "
                           f"parentheses after the name; got {type(fn).__name__}")
    outs, refs = [], []
    for i, case in enumerate(cases):
        args, kwargs = _clone(case.args), _clone(case.kwargs)
        if grad_arg is not None and i == 0:
            args = list(args)
            args[grad_arg] = args[grad_arg].clone().requires_grad_(True)
            args = tuple(args)
        kept = (_clone(args), _clone(kwargs))
        try:
            out = fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - any error in the student's code is reported, not raised
            # torch raises NotImplementedError too ('... not implemented for Long'): only the exercise's own
            # `raise NotImplementedError` means "not answered"
            if isinstance(err, NotImplementedError) and _raised_by_student(err):
                return done(NOT_ANSWERED, "your function still raises NotImplementedError. Replace "
                                          "`raise NotImplementedError` with your code, run the cell, and check again.")
            hint = next((h for pattern, h in error_hints if pattern in str(err)), "")
            return done(ERROR, f"your function raised {type(err).__name__}: {err}{_where_in_code(err)}\n"
                               f"  on case {i + 1} ({case.description}): {_describe_inputs(case, arg_names)}"
                               + (f"\n  Hint: {hint}" if hint else ""), "raised")
        if out is None or out is Ellipsis:
            return done(NOT_ANSWERED, "your function returns None (or `...`). Write its body, end it with "
                                      "`return <the answer>`, run the cell, and check again.")
        if not (_same_input(args, kept[0]) and _same_input(kwargs, kept[1])):
            return done(MISTAKE, f"your function changed its inputs in place (case {i + 1}: "
                                 f"{case.description}). Build new tensors instead (x = a + b, not a.add_(b) or "
                                 "a *= ...): the caller still needs the originals, e.g. theta0 for the next alpha.",
                        "modified_inputs")
        outs.append(out)
        refs.append(reference(*_clone(case.args), **_clone(case.kwargs)))

    failing = None
    for i, (out, ref) in enumerate(zip(outs, refs)):
        try:
            ok = compare(out, ref, cases[i])
        except _BadOutput as err:
            return done(ERROR, f"your function {err} (case {i + 1}: {cases[i].description}).", "bad_output")
        except Exception as err:  # noqa: BLE001 - an output the comparison cannot handle is reported, not raised
            return done(ERROR, f"your function returned {_describe(out)} on case {i + 1} ({cases[i].description}), "
                               f"which cannot be compared with the expected {_describe(ref)}: {err}", "bad_output")
        if not ok and failing is None:
            failing = i
    if failing is None:
        if grad_arg is not None:
            out0 = outs[0]
            if not (isinstance(out0, torch.Tensor) and out0.requires_grad):
                return done(MISTAKE, "the value is right, but it is cut off from the autograd graph (it does not "
                                     "require grad), so training could not use it as a loss. Keep it a torch tensor "
                                     "all the way: no .item(), float(), numpy or torch.no_grad() inside.", "detached")
        return done(PASSED, success)

    for m in mistakes:
        if m.fn is not None:
            hit = True
            for out, case in zip(outs, cases):
                try:
                    if not compare(out, m.fn(*_clone(case.args), **_clone(case.kwargs)), case):
                        hit = False
                        break
                except Exception:  # noqa: BLE001 - an output unlike this variant's simply does not match it
                    hit = False
                    break
        else:
            try:
                hit = any(m.detect(out, case) for out, case in zip(outs, cases))
            except Exception:  # noqa: BLE001 - a predicate that cannot read the output does not match
                hit = False
        if hit:
            msg = m.message(outs, cases) if callable(m.message) else m.message
            return done(MISTAKE, msg, m.key)

    case, out, ref = cases[failing], outs[failing], refs[failing]
    got, expected = show(out), show(ref)
    if non_finite_hint and any(s in got for s in ("nan", "inf")) and not any(s in expected for s in ("nan", "inf")):
        return done(MISTAKE, f"on case {failing + 1} ({case.description}) your function returns {got} where the "
                             f"reference gives {expected}. {non_finite_hint}", "non_finite")
    return done(MISMATCH, f"your function disagrees with rftlab's reference on case {failing + 1} of {len(cases)} "
                          f"({case.description}).\n  inputs: {_describe_inputs(case, arg_names)}\n"
                          f"  expected: {expected}\n  got:      {got}\n"
                          "Work through this case by hand or print intermediate shapes; re-read the formula above.")


def _scalar_compare(rel=1e-4, abs_=1e-6):
    def compare(out, ref, case):
        return _close(_scalar(out), _scalar(ref), rel, abs_)
    return compare


def _show_scalar(x) -> str:
    try:
        return f"{_scalar(x):.6g}"
    except _BadOutput:
        return _describe(x)


def _features(g: torch.Generator, n: int, d: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, d, generator=g), dim=-1)


def _near(g: torch.Generator, x: torch.Tensor, noise: float) -> torch.Tensor:
    """Features of a model that has moved away from theta0 by about ``noise``."""
    return F.normalize(x + noise * torch.randn(x.shape, generator=g), dim=-1)


# --------------------------------------------------------------------------- WiSE-FT
def _wise_cases() -> list[_Case]:
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
        cases.append(_Case(f"alpha = {alpha}, a float16 tensor and integer buffers", (sds[0], sds[1], alpha)))
    return cases


def _wise_compare(out, ref, case) -> bool:
    if not isinstance(out, Mapping):
        raise _BadOutput(f"should return a state dict (a dict name -> tensor); it returned {type(out).__name__}")
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
                bad.append(f"{k!r} at alpha = {alpha}: theta0 has {_describe(a)}, theta1 {_describe(sd1[k])}, "
                           f"yours {_describe(o)}")
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
        _Mistake("missing_keys", _missing_keys_message, detect=_missing_keys),
        _Mistake("mixed_integers", _int_keys_message, detect=_mixed_ints),
        _Mistake("dtype_changed", "a floating-point tensor came back with another dtype (the float16 tensor "
                                  "became float32?). Keep each tensor's dtype: the result must load into the "
                                  "same model; e.g. (1 - alpha) * a + alpha * b keeps float16.",
                 detect=_dtype_changed),
        _Mistake("reversed_alpha", "alpha is the wrong way round: you computed alpha * theta0 + (1 - alpha) * theta1. "
                                   "alpha = 0 must give the zero-shot model theta0 and alpha = 1 the fine-tuned "
                                   "theta1: (1 - alpha) * theta0 + alpha * theta1.", fn=_wise_reversed),
    ]

    def show(x):
        if not isinstance(x, Mapping):
            return _describe(x)
        return "{" + ", ".join(f"{k!r}: " + (f"{_describe(v)} first values {v.flatten()[:3].tolist()}"
                                              if isinstance(v, torch.Tensor) and v.ndim else _describe(v))
                               for k, v in list(x.items())[:3]) + ", ...}"

    return _run_check("WiSE-FT interpolation", fn, _wise_ft, _wise_cases(),
                      ["state_dict0", "state_dict1", "alpha"], mistakes, _wise_compare, show,
                      "your interpolation matches rftlab.wise_ft on 5 cases (alpha 0, 0.3, 0.5, 0.75, 1; integer "
                      "buffers copied, a float16 tensor kept float16).",
                      error_hints=[("Long", "an integer tensor (dtype long) reached an operation meant for floats: "
                                            "interpolate only tensors with t.is_floating_point() and copy the rest."),
                                   ("Int", "an integer tensor reached an operation meant for floats: interpolate "
                                           "only tensors with t.is_floating_point() and copy the rest.")],
                      quiet=quiet)


# --------------------------------------------------------------------------- StarFT
def _starft_variant(mask: str = "same", direction: str = "teacher_student", reduction: str = "mean"):
    def fn(logits, teacher_logits, labels):
        b = len(labels)
        if mask in ("same", "same_zero"):
            m = labels.view(-1, 1) == labels.view(1, -1)
        elif mask == "diag":
            m = torch.eye(b, dtype=torch.bool)
        else:
            m = torch.zeros(b, b, dtype=torch.bool)
        fill = 0.0 if mask == "same_zero" else -1e8
        logq = F.log_softmax(logits.masked_fill(m, fill), -1)
        logp = F.log_softmax(teacher_logits.masked_fill(m, fill), -1)
        if direction == "teacher_student":
            kl = logp.exp() * (logp - logq)
        else:
            kl = logq.exp() * (logq - logp)
        if mask != "same_zero":
            kl = kl.masked_fill(m, 0.0)
        if reduction == "mean":
            return kl.sum(-1).mean()
        if reduction == "sum":
            return kl.sum()
        return kl.sum() / kl.numel()
    return fn


_STARFT_KNOBS = {
    "mask": [("same", None, ""),
             ("diag", "diagonal_only",
              "you masked only the diagonal. StarFT masks every caption whose label equals the image's "
              "(y_i = y_j), the diagonal included: build the mask as labels[:, None] == labels[None, :]. "
              "Same-class captions are what the contrastive loss pulls the image towards; the KL should only "
              "keep the zero-shot model's view of the *other* classes' spurious captions."),
             ("none", "unmasked",
              "nothing is masked. StarFT sets every entry with y_i = y_j (the diagonal included) to -1e8 in both "
              "the student's and the teacher's logits before the softmax, so the KL only compares the other "
              "classes' spuriosity-injected captions."),
             ("same_zero", "masked_to_zero",
              "you set the masked logits to 0, but a logit of 0 still gets probability mass after the softmax. "
              "Fill them with -1e8 (masked_fill(mask, -1e8)) so they drop out.")],
    "direction": [("teacher_student", None, ""),
                  ("student_teacher", "reversed_kl",
                   "the KL is the wrong way round: you computed KL(student || teacher). The zero-shot teacher is "
                   "the target: KL(p_teacher || p_student) = sum_j p_teacher * (log p_teacher - log p_student).")],
    "reduction": [("mean", None, ""),
                  ("sum", "summed_over_batch",
                   "you summed over the batch; StarFT averages over the B images: (1/B) sum_i KL_i."),
                  ("all", "mean_over_entries",
                   "you averaged over all B x B entries (F.kl_div's reduction='mean' does this); sum over the "
                   "captions j, then average over the images i (reduction='batchmean').")],
}


def _starft_cases() -> list[_Case]:
    cases = []
    for seed, (b, classes, d, noise) in enumerate(((8, 3, 16, 0.4), (12, 2, 32, 0.6), (6, 6, 16, 0.3),
                                                   (10, 4, 24, 0.8))):
        g = torch.Generator().manual_seed(200 + seed)
        labels = torch.arange(b) % classes
        labels = labels[torch.randperm(b, generator=g)]
        img0, txt0 = _features(g, b, d), _features(g, b, d)
        img, txt = _near(g, img0, noise), _near(g, txt0, noise)
        s0 = 100.0
        cases.append(_Case(f"B = {b} images, {classes} classes, s0 = {s0:g}",
                           (s0 * img @ txt.t(), s0 * img0 @ txt0.t(), labels)))
    g = torch.Generator().manual_seed(299)
    img0, txt0 = _features(g, 4, 8), _features(g, 4, 8)
    cases.append(_Case("B = 4, a single-class batch: every entry masked",
                       (100 * _near(g, img0, 0.5) @ txt0.t(), 100 * img0 @ txt0.t(), torch.zeros(4, dtype=torch.long))))
    return cases


def check_starft_kl(fn, quiet: bool = False) -> CheckResult:
    """Check ``fn(logits, teacher_logits, labels) -> scalar`` against
    :func:`rftlab.losses.spurious_alignment_kl` (StarFT's masked KL)."""
    return _run_check(
        "StarFT masked KL", fn, losses.spurious_alignment_kl, _starft_cases(),
        ["logits", "teacher_logits", "labels"],
        _knob_mistakes(_starft_variant, _STARFT_KNOBS, "masked KL"), _scalar_compare(), _show_scalar,
        "your masked KL matches rftlab.losses.spurious_alignment_kl on 5 cases (2 to 6 classes, all "
        "labels distinct, a single-class batch) and keeps the gradient.",
        grad_arg=0,
        non_finite_hint="Masking with -inf gives 0 * (-inf - (-inf)) = nan in the sum: mask with -1e8 as StarFT does "
                        "(or zero the masked terms before summing), and use F.log_softmax rather than "
                        "softmax(...).log().",
        quiet=quiet)


# --------------------------------------------------------------------------- CAR-FT
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


def _context_cases() -> list[_Case]:
    cases = []
    for seed, (b, d, k, s, noise) in enumerate(((8, 16, 6, 100.0, 0.5), (5, 32, 12, 40.0, 0.8),
                                                (16, 24, 4, torch.tensor(70.0), 0.3), (3, 16, 9, 100.0, 1.0))):
        g = torch.Generator().manual_seed(300 + seed)
        f0 = _features(g, b, d)
        w = _features(g, k, d).t().contiguous()
        cases.append(_Case(f"B = {b} images, D = {d}, K = {k} contexts, logit_scale = {float(s):g}",
                           (_near(g, f0, noise), f0, w, s)))
    g = torch.Generator().manual_seed(399)
    f0 = _features(g, 6, 16)
    cases.append(_Case("features == features0 (the KL must be 0)", (f0.clone(), f0, _features(g, 5, 16).t(), 100.0)))
    return cases


def check_context_kl(fn, quiet: bool = False) -> CheckResult:
    """Check ``fn(features, features0, context_weights, logit_scale) -> scalar`` against
    :func:`rftlab.losses.context_kl` (CAR-FT)."""
    return _run_check(
        "CAR-FT context KL", fn, losses.context_kl, _context_cases(),
        ["features", "features0", "context_weights", "logit_scale"],
        _knob_mistakes(_context_variant, _CONTEXT_KNOBS, "context KL"), _scalar_compare(), _show_scalar,
        "your context KL matches rftlab.losses.context_kl on 5 cases (scales 40 to 100, 4 to 12 contexts, "
        "features equal to theta0's) and keeps the gradient.",
        grad_arg=0, non_finite_hint="Use F.log_softmax rather than softmax(...).log(): with s = 100 small "
                                    "probabilities underflow to 0 and their log to -inf.",
        quiet=quiet)


# --------------------------------------------------------------------------- Lipsum-FT
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


def _lipsum_cases() -> list[_Case]:
    cases = []
    for seed, (b, d, m, s, noise) in enumerate(((8, 16, 10, 100.0, 0.3), (4, 32, 80, 100.0, 0.5),
                                                (6, 24, 7, torch.tensor(57.3), 0.8), (10, 16, 32, 14.3, 0.2))):
        g = torch.Generator().manual_seed(400 + seed)
        f0 = _features(g, b, d)
        cases.append(_Case(f"B = {b} images, M = {m} random texts, D = {d}, logit_scale = {float(s):g}",
                           (_near(g, f0, noise), f0, _features(g, m, d), s)))
    g = torch.Generator().manual_seed(499)
    f0 = _features(g, 5, 16)
    cases.append(_Case("features == features0 (the regulariser must be 0)", (f0.clone(), f0, _features(g, 12, 16), 100.0)))
    return cases


def check_lipsum(fn, quiet: bool = False) -> CheckResult:
    """Check ``fn(features, features0, text_features, logit_scale) -> scalar`` against
    :func:`rftlab.losses.lipsum_regularizer` (Lipsum-FT)."""
    return _run_check(
        "Lipsum-FT regulariser", fn, losses.lipsum_regularizer, _lipsum_cases(),
        ["features", "features0", "text_features", "logit_scale"],
        _knob_mistakes(_lipsum_variant, _LIPSUM_KNOBS, "regulariser"), _scalar_compare(), _show_scalar,
        "your regulariser matches rftlab.losses.lipsum_regularizer on 5 cases (M = 7 to 80 texts, scales 14.3 to "
        "100, features equal to theta0's) and keeps the gradient.",
        grad_arg=0, quiet=quiet)


# --------------------------------------------------------------------------- ECE
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


def _ece_cases() -> list[_Case]:
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
    cases.append(_Case("600 samples in batches of 256, 256 and 88 (an evaluation loop), 15 bins",
                       (list(zip(p.split(256), y.split(256))),), {"n_bins": 15}))
    g = torch.Generator().manual_seed(501)
    parts = [make(g, 100, 4, 4.0, 0.95), make(g, 50, 4, 1.0, 0.3), make(g, 25, 4, 3.0, 0.5)]
    cases.append(_Case("3 batches (100, 50, 25) calibrated very differently, 10 bins",
                       ([(a, b) for a, b in parts],), {"n_bins": 10}))
    # confidences exactly on bin edges (0.5 and 0.75 with 4 bins)
    rows = torch.tensor([[0.5, 0.25, 0.25], [0.75, 0.125, 0.125], [0.5, 0.3, 0.2], [0.4, 0.35, 0.25],
                         [0.9, 0.05, 0.05], [0.75, 0.25, 0.0], [0.3, 0.6, 0.1], [0.6, 0.2, 0.2]])
    labels = torch.tensor([0, 1, 0, 2, 0, 0, 1, 1])
    cases.append(_Case("8 samples with confidences exactly on bin edges (0.5, 0.75), 4 bins",
                       ([(rows[:5], labels[:5]), (rows[5:], labels[5:])],), {"n_bins": 4}))
    g = torch.Generator().manual_seed(503)
    p, y = make(g, 200, 2, 3.0, 0.8)
    cases.append(_Case("one batch of 200 samples, 2 classes, 15 bins", ([(p, y)],), {"n_bins": 15}))
    return cases


def check_ece(fn, quiet: bool = False) -> CheckResult:
    """Check ``fn(batches, n_bins=15) -> float``, the pooled ECE of a list of (probs, labels) batches,
    against :func:`rftlab.metrics.ece` on the concatenated batches."""
    return _run_check(
        "pooled ECE", fn, pooled_ece, _ece_cases(), ["batches"],
        _knob_mistakes(_ece_variant, _ECE_KNOBS, "ECE"), _scalar_compare(1e-4, 1e-5), _show_scalar,
        "your ECE matches rftlab.metrics.ece on 4 cases (uneven batches, batches calibrated differently, "
        "confidences on bin edges, 4 / 10 / 15 bins).", quiet=quiet)


# --------------------------------------------------------------------------- CaRot orthogonality
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


def _ortho_cases() -> list[_Case]:
    cases = []
    for seed, (w, e, scale) in enumerate(((32, 16, 0.2), (16, 16, 0.25), (64, 8, 0.15))):
        g = torch.Generator().manual_seed(600 + seed)
        cases.append(_Case(f"P of shape ({w}, {e})", (torch.randn(w, e, generator=g) * scale,)))
    g = torch.Generator().manual_seed(699)
    q, _ = torch.linalg.qr(torch.randn(24, 6, generator=g))
    cases.append(_Case("P with orthonormal columns plus a little noise, (24, 6)",
                       (q + 0.05 * torch.randn(24, 6, generator=g),)))
    return cases


def check_orthogonality(fn, quiet: bool = False) -> CheckResult:
    """Check ``fn(proj) -> scalar`` against :func:`rftlab.losses.orthogonality` (CaRot)."""
    return _run_check(
        "CaRot orthogonality", fn, losses.orthogonality, _ortho_cases(), ["proj"],
        _knob_mistakes(_ortho_variant, _ORTHO_KNOBS, "penalty"), _scalar_compare(1e-4, 1e-5), _show_scalar,
        "your penalty matches rftlab.losses.orthogonality on 4 cases (tall and square projections, a nearly "
        "orthonormal one) and keeps the gradient.", grad_arg=0, quiet=quiet)


# --------------------------------------------------------------------------- running a function inside rftlab
SWAP_POINTS = {
    "starft_kl": "rftlab.methods.starft.spurious_alignment_kl",
    "context_kl": "rftlab.methods.carft.context_kl",
    "lipsum": "rftlab.methods.lipsum.lipsum_regularizer",
    "orthogonality": "rftlab.methods.carot.orthogonality",
}


@contextlib.contextmanager
def swap_in(target: str, fn: Callable):
    """Run ``fn`` in place of one of rftlab's functions inside a ``with`` block, e.g.
    ``with swap_in("lipsum", my_fn): rftlab.finetune("lipsum-ft", ...)``.

    ``target`` is a key of :data:`SWAP_POINTS` or a dotted path ``module.function``."""
    path = SWAP_POINTS.get(target, target)
    module_name, _, attr = path.rpartition(".")
    try:
        module = importlib.import_module(module_name) if module_name else None
    except ImportError:
        module = None
    if module is None or not hasattr(module, attr):
        raise ValueError(f"cannot swap {target!r}: use one of {', '.join(SWAP_POINTS)} or a dotted path "
                         "module.function that exists")
    if not callable(fn):
        raise TypeError(f"swap_in needs a function to run in place of {path}; got {type(fn).__name__}")
    original = getattr(module, attr)
    setattr(module, attr, fn)
    try:
        yield fn
    finally:
        setattr(module, attr, original)

