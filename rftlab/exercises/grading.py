"""The grading engine of the exercises: run a student's function on generated cases, compare it
with rftlab's reference, name a classic mistake when a known-wrong variant matches, and report
one :class:`CheckResult`.

Each exercise module (:mod:`~rftlab.exercises.wise_ft`, :mod:`~rftlab.exercises.starft_kl`...)
gives :func:`run_check` its cases (:class:`Case`), its reference, its mistakes (:class:`Mistake`,
often every wrong combination of a few settings: :func:`knob_mistakes`) and its prose.
"""
from __future__ import annotations

import itertools
import math
import traceback
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

_HERE = Path(__file__).parent   # the checkers' own frames are never "the line of your code"

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
class Case:
    """One input of an exercise: ``fn(*args, **kwargs)``, described in words for the messages."""

    description: str
    args: tuple
    kwargs: dict = field(default_factory=dict)


@dataclass
class Mistake:
    """A classic mistake: its diagnosis key, the message (or a function of the outputs and cases
    that writes it), and how it is recognised."""

    key: str
    message: str | Callable
    fn: Callable | None = None         # a known-wrong implementation: matches on every case
    detect: Callable | None = None     # or a predicate (student_output, case) -> bool, any case


class BadOutput(Exception):
    """The student's output has the wrong type or shape (message says which)."""


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


def describe(x) -> str:
    """A short description of an input or output for the messages (shapes and dtypes; a scalar's value)."""
    if isinstance(x, torch.Tensor):
        if x.ndim == 0:
            return f"tensor({x.item():.6g}, {str(x.dtype).replace('torch.', '')})"
        return f"tensor {tuple(x.shape)} {str(x.dtype).replace('torch.', '')}"
    if isinstance(x, Mapping):
        return "{" + ", ".join(f"{k!r}: {describe(v)}" for k, v in list(x.items())[:8]) + \
            (", ..." if len(x) > 8 else "") + "}"
    if isinstance(x, tuple):
        return "(" + ", ".join(describe(v) for v in x) + ")"
    if isinstance(x, list):
        inner = ", ".join(describe(v) for v in x[:3])
        return f"[{inner}{', ...' if len(x) > 3 else ''}] ({len(x)} items)"
    return repr(x)


def _describe_inputs(case: Case, names: list[str]) -> str:
    parts = [f"{n} = {describe(a)}" for n, a in zip(names, case.args)]
    parts += [f"{k} = {describe(v)}" for k, v in case.kwargs.items()]
    return "; ".join(parts)


def _scalar(out) -> float:
    """A student's scalar output as a float (a 0-dim or 1-element tensor, or a number)."""
    if isinstance(out, torch.Tensor):
        if out.numel() != 1:
            raise BadOutput(f"should return a single number (a 0-dim tensor), but returned a tensor of "
                            f"shape {tuple(out.shape)}: reduce it (sum over the right axis, mean over the batch)")
        return float(out.detach().float().item())
    try:
        return float(out)
    except (TypeError, ValueError):
        raise BadOutput(f"should return a single number (a 0-dim tensor); it returned {type(out).__name__}") from None


def _close(a: float, b: float, rel: float = 1e-4, abs_: float = 1e-6) -> bool:
    if math.isnan(a) or math.isnan(b):
        return False
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def _where_in_code(err: BaseException) -> str:
    """The line of the student's own code where ``err`` came from (not torch's, not the checkers')."""
    frames = traceback.extract_tb(err.__traceback__)
    mine = [f for f in frames if Path(f.filename).parent != _HERE and "site-packages" not in f.filename
            and "/torch/" not in f.filename.replace("\\", "/")]
    if mine and mine[-1].line:
        return f" (at `{mine[-1].line.strip()}`)"
    return ""


def _raised_by_student(err: NotImplementedError) -> bool:
    """True for the exercise's own ``raise NotImplementedError`` (not torch's 'not implemented for Long')."""
    frames = traceback.extract_tb(err.__traceback__)
    return not err.args or bool(frames and (frames[-1].line or "").lstrip().startswith("raise"))


def knob_mistakes(variant: Callable, knobs: dict[str, list[tuple]], what: str) -> list[Mistake]:
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
        out.append(Mistake(key, msg, fn=variant(**settings)))
    return out


def run_check(exercise: str, fn, reference: Callable, cases: list[Case], arg_names: list[str],
              mistakes: list[Mistake], compare: Callable, show: Callable, success: str,
              grad_arg: int | None = None, non_finite_hint: str = "", error_hints=(),
              quiet: bool = False) -> CheckResult:
    """Check ``fn`` against ``reference`` on ``cases``; print and return the :class:`CheckResult`.

    ``compare(out, ref, case)`` says whether an output is right; ``show`` prints one. A wrong
    answer is matched against ``mistakes`` in order; ``grad_arg``: the argument whose gradient the
    output must keep; ``error_hints``: (text in the error, hint) pairs for errors the student raises."""
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
        except BadOutput as err:
            return done(ERROR, f"your function {err} (case {i + 1}: {cases[i].description}).", "bad_output")
        except Exception as err:  # noqa: BLE001 - an output the comparison cannot handle is reported, not raised
            return done(ERROR, f"your function returned {describe(out)} on case {i + 1} ({cases[i].description}), "
                               f"which cannot be compared with the expected {describe(ref)}: {err}", "bad_output")
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


def scalar_compare(rel=1e-4, abs_=1e-6):
    """A ``compare`` for exercises whose answer is one number."""
    def compare(out, ref, case):
        return _close(_scalar(out), _scalar(ref), rel, abs_)
    return compare


def show_scalar(x) -> str:
    """A ``show`` for exercises whose answer is one number."""
    try:
        return f"{_scalar(x):.6g}"
    except BadOutput:
        return describe(x)


def unit_features(g: torch.Generator, n: int, d: int) -> torch.Tensor:
    """``n`` random unit-norm features of width ``d``."""
    return F.normalize(torch.randn(n, d, generator=g), dim=-1)


def moved_features(g: torch.Generator, x: torch.Tensor, noise: float) -> torch.Tensor:
    """Features of a model that has moved away from theta0 by about ``noise``."""
    return F.normalize(x + noise * torch.randn(x.shape, generator=g), dim=-1)
