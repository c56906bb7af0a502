"""Reading and writing the files rftlab keeps, in one place.

* Reads never unpickle code: ``torch.load(..., weights_only=True)`` (tensors and plain
  containers only) or safetensors. A file that is missing, damaged, of the wrong kind or that
  holds other Python objects raises an error from :mod:`rftlab.errors` that names the file,
  says what is wrong with it and what to do (the caller's ``fix``).
* Writes are atomic: a temporary file in the same folder, flushed and fsynced, then renamed
  over the old one, so a process killed in the middle leaves the previous file whole.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import torch

from .errors import BadFileError, MissingFileError

# A str subclass: the shipped world weights' record stores torch.__version__ as one.
_SAFE_GLOBALS = [torch.torch_version.TorchVersion]


def numpy_array_globals() -> list:
    """What unpickling a plain numpy array needs (checkpoints written before rftlab stored its
    numpy random state as a tensor hold one): array data only, no code."""
    import numpy as np
    core = getattr(np, "_core", None) or np.core
    return [core.multiarray._reconstruct, np.ndarray, np.dtype, type(np.dtype(np.uint32))]


def _reason(err: BaseException) -> str:
    text = str(err).strip()
    found = re.search(r"(?:Unsupported global: GLOBAL|unsupported GLOBAL) ([\w.]+)", text)
    if found:
        return f"it holds the Python object {found.group(1)}"
    first = text.splitlines()[0] if text else type(err).__name__
    return first if len(first) <= 160 else first[:157] + "..."


def _unsafe(err: BaseException) -> bool:
    return "Weights only load failed" in str(err) and bool(
        re.search(r"(?:Unsupported global|unsupported GLOBAL)", str(err)))


def load_torch(path, what: str = "file", fix: str = "", mmap: bool = False, extra_globals=()):
    """``torch.load(path, weights_only=True)`` on the CPU; every failure is a
    :class:`~rftlab.errors.BadFileError` (or :class:`~rftlab.errors.MissingFileError`) whose
    message names ``what`` and ``path`` and ends with ``fix``. ``mmap`` maps the tensors'
    storage instead of reading it (files in torch's zip format; others are read)."""
    path = Path(path)
    tail = f" {fix}" if fix else ""
    if not path.exists():
        raise MissingFileError(f"{what} {path} does not exist.{tail}", path)
    if path.is_dir():
        raise BadFileError(f"{what} {path} is a folder, not a file.{tail}", path)
    allowed = _SAFE_GLOBALS + list(extra_globals)
    scope = torch.serialization.safe_globals(allowed) if hasattr(torch.serialization, "safe_globals") \
        else contextlib.nullcontext()
    try:
        with scope, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*looks like a TorchScript archive")  # refused below
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
            except RuntimeError as err:
                if not (mmap and "mmap can only be used" in str(err)):
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        if _unsafe(err):
            raise BadFileError(
                f"{what} {path} holds more than tensors and plain containers ({_reason(err)}); rftlab "
                f"does not unpickle such files, because unpickling can run code. If you trust its source, "
                f"load it once yourself (torch.load with weights_only set to False) and save its tensors again "
                f"(torch.save(state_dict, new_path) or safetensors).{tail}", path) from err
        if "TorchScript archive" in str(err):
            raise BadFileError(
                f"{what} {path} is a TorchScript archive (as OpenAI's original CLIP files are), not a state dict: "
                f"for OpenAI weights put the file in ~/.cache/clip and use the pretrained tag 'openai', or save "
                f"its state_dict() with torch.save.{tail}", path) from err
        raise BadFileError(f"{what} {path} is damaged or not a PyTorch file ({_reason(err)}).{tail}", path) from err


def load_safetensors(path, what: str = "weights file", fix: str = "") -> tuple[dict, dict]:
    """(tensors, string metadata) of a safetensors file, with the errors of :func:`load_torch`."""
    path = Path(path)
    tail = f" {fix}" if fix else ""
    if not path.exists():
        raise MissingFileError(f"{what} {path} does not exist.{tail}", path)
    if path.is_dir():
        raise BadFileError(f"{what} {path} is a folder, not a file.{tail}", path)
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            return {k: f.get_tensor(k) for k in f.keys()}, dict(f.metadata() or {})
    except Exception as err:
        raise BadFileError(f"{what} {path} is damaged or not a safetensors file ({_reason(err)}).{tail}",
                           path) from err


def read_json(path, what: str = "file", fix: str = ""):
    """The JSON value in ``path``; a missing, unreadable or malformed file raises with ``fix``."""
    path = Path(path)
    tail = f" {fix}" if fix else ""
    if not path.exists():
        raise MissingFileError(f"{what} {path} does not exist.{tail}", path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BadFileError(f"{what} {path} is damaged: not valid JSON ({_reason(err)}).{tail}", path) from err
    except IsADirectoryError as err:
        raise BadFileError(f"{what} {path} is a folder, not a file.{tail}", path) from err


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # not possible on every system (Windows): the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path, write: Callable, binary: bool = True) -> Path:
    """Call ``write(f)`` on a temporary file beside ``path``, flush and fsync it, then rename it
    over ``path``: readers (and a process killed midway) see the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb" if binary else "w") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def save_torch(obj, path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically."""
    return atomic_write(path, lambda f: torch.save(obj, f))


def write_json(path, data) -> Path:
    """JSON to ``path`` atomically."""
    return atomic_write(path, lambda f: json.dump(data, f, indent=1), binary=False)


def save_safetensors(tensors: dict, path, metadata: dict | None = None) -> Path:
    """A safetensors file (contiguous CPU tensors, string metadata) written atomically."""
    from safetensors.torch import save
    state = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    return atomic_write(path, lambda f: f.write(save(state, metadata=metadata)))


def stale_temporaries(path) -> list[Path]:
    """Temporary files :func:`atomic_write` left beside ``path`` (a process killed while writing)."""
    path = Path(path)
    return sorted(path.parent.glob(f"{path.name}.*.tmp")) if path.parent.is_dir() else []


RESULTS_DIR = Path(__file__).resolve().parent / "results"   # recorded runs, shipped as package data


def recorded_path(name: str) -> Path:
    """The path of the recorded result ``name`` (``"claims"``, ``"phenomena"``, ``"compare_shift"``,
    ``"compare_spurious"``) inside the installed package."""
    path = RESULTS_DIR / f"{name}.json"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in RESULTS_DIR.glob("*.json"))) or "none"
        raise MissingFileError(f"no recorded result {name!r} in {RESULTS_DIR}: choose one of {known} "
                               f"(rftlab/results/README.md says which command writes each)", path)
    return path


def recorded(name: str) -> dict:
    """A recorded run shipped with rftlab (package data, so it is there in a wheel on a JupyterHub or
    Colab, not only in a checkout), e.g. ``rftlab.recorded("claims")["rows"]``.

    Args:
        name: ``"claims"`` (``rftlab claims``), ``"phenomena"`` (``rftlab phenomena``),
            ``"compare_shift"`` or ``"compare_spurious"`` (``rftlab compare --methods all``).

    Returns:
        The JSON content as a dict.

    Example:
        >>> import rftlab
        >>> sorted(rftlab.recorded("claims"))[:3]
        ['budget', 'generated_by', 'protocols']
    """
    return read_json(recorded_path(name), f"recorded result {name!r}",
                     "reinstall rftlab, or re-run the command in rftlab/results/README.md")
