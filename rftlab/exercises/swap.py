"""Run a student's function inside rftlab's own methods: :func:`swap_in` and its :data:`SWAP_POINTS`."""
from __future__ import annotations

import contextlib
import importlib
from typing import Callable


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
