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

One module per job: :mod:`~rftlab.exercises.grading` (the engine and :class:`CheckResult`), one
module per exercise named after its checker (:mod:`~rftlab.exercises.wise_ft`,
:mod:`~rftlab.exercises.starft_kl`, :mod:`~rftlab.exercises.context_kl`,
:mod:`~rftlab.exercises.lipsum`, :mod:`~rftlab.exercises.ece`,
:mod:`~rftlab.exercises.orthogonality`: its cases, reference, mistakes and prose) and
:mod:`~rftlab.exercises.swap` (:func:`swap_in`).
"""
from .context_kl import check_context_kl
from .ece import check_ece, pooled_ece
from .grading import CheckResult
from .lipsum import check_lipsum
from .orthogonality import check_orthogonality
from .starft_kl import check_starft_kl
from .swap import SWAP_POINTS, swap_in
from .wise_ft import check_wise_ft

__all__ = ["CheckResult", "check_wise_ft", "check_starft_kl", "check_context_kl", "check_lipsum",
           "check_ece", "check_orthogonality", "swap_in", "SWAP_POINTS", "pooled_ece"]
