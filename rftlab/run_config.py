"""A run's configuration: the keys a config may hold, reading it from a file or NAME=VALUE flags,
checking it and filling in every default, and the model and task it names.

A config is a flat mapping: the keys of :data:`RUN_KEYS` and the
:class:`~rftlab.recipes.TrainConfig` fields in :func:`train_keys`. :func:`resolve_config` gives
the complete form a run folder stores in ``config.json`` (:mod:`rftlab.run_folder`).
"""
from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch

RUN_KEYS = {
    "method": "a registered method (rftlab.METHODS): ft, lp, wise-ft, lipsum-ft, ...",
    "hparams": "the method's hyperparameters, a mapping (validated by the method registry)",
    "model": "rftlab-world, an open_clip architecture name, or local-dir:DIR",
    "pretrained": "an open_clip tag, a weights file, or null (rftlab-world: its shipped weights)",
    "task": "a world task (spurious, shift) or a real dataset name",
    "root": "the folder a real dataset is read from (null for world tasks)",
    "task_args": "keyword arguments of the task loader, a mapping (n_train, ...)",
    "cache": "feature cache: null (off), true (~/.cache/rftlab/features or $RFTLAB_CACHE_DIR) or a folder",
}
_NOT_CONFIG = ("checkpoint_dir", "progress", "feature_cache")   # set by the run itself (cache: the `cache` key)


def train_keys() -> dict[str, dataclasses.Field]:
    """TrainConfig fields a run config may set (all but checkpoint_dir and progress)."""
    from .recipes import TrainConfig
    return {f.name: f for f in dataclasses.fields(TrainConfig) if f.name not in _NOT_CONFIG}


def valid_keys() -> list[str]:
    return list(RUN_KEYS) + list(train_keys())


def read_config_file(path: str | os.PathLike) -> dict:
    """A config mapping from a .json, .yaml or .yml file (YAML needs PyYAML)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    text = path.read_text()
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as err:
            raise ValueError(f"config file {path} is YAML but PyYAML is not installed: "
                             f"`pip install pyyaml`, or write the config as JSON") from err
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as err:
            raise ValueError(f"config file {path} is not valid YAML: {err}") from err
    elif path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"config file {path} is not valid JSON: {err}") from err
    else:
        raise ValueError(f"config file {path}: name it .json, .yaml or .yml")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ValueError(f"config file {path} must hold a mapping of keys to values, not a {type(data).__name__}")
    return data


def parse_assignment(text: str) -> tuple[str, Any]:
    """'name=value' -> (name, value); the value is read as JSON when it parses (numbers, true,
    null, lists), else kept as a string."""
    name, sep, value = text.partition("=")
    if not sep or not name.strip():
        raise ValueError(f"{text!r}: expected NAME=VALUE, e.g. alpha=0.5")
    try:
        return name.strip(), json.loads(value)
    except json.JSONDecodeError:
        return name.strip(), value


def field_kind(f: dataclasses.Field) -> type | None:
    """bool, int, float or str from a TrainConfig field's annotation; None when it says nothing."""
    text = str(f.type)
    for kind in (bool, int, float, str):
        if text.split("|")[0].strip() in (kind.__name__, f"<class '{kind.__name__}'>"):
            return kind
    return None


def _coerce(name: str, value, kind: type | None, what: str):
    """``value`` as a ``kind`` (YAML reads 1e-5 as a string, JSON reads 80.0 as a float)."""
    if value is None or kind is None:
        return value
    try:
        if kind is bool:
            if isinstance(value, bool):
                return value
            raise TypeError
        if isinstance(value, bool):
            raise TypeError
        if kind is int:
            number = float(value)
            if number != int(number):
                raise TypeError
            return int(number)
        if kind is float:
            return float(value)
        if kind is str and not isinstance(value, str):
            raise TypeError
    except (TypeError, ValueError, OverflowError):
        text = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[kind]
        raise ValueError(f"{what} {name} takes {text}; got {value!r}") from None
    return value


def _absolute(value: str | None) -> str | None:
    if value is None:
        return None
    return str(Path(value).expanduser().resolve())


def resolve_config(config: dict) -> dict:
    """Check a config and fill in every default. Unknown keys, hyperparameters the method does
    not take or out of their range, and out-of-range training settings raise ValueError."""
    from .methods import METHODS, get_method
    from .models.factory import DEFAULT_MODEL
    from .recipes import TrainConfig, train_settings
    if not isinstance(config, dict):
        raise ValueError(f"a run config is a mapping, not a {type(config).__name__}")
    unknown = sorted(set(config) - set(valid_keys()))
    if unknown:
        raise ValueError(f"unknown config key(s) {unknown}; valid keys: {', '.join(valid_keys())}")
    out = {k: config.get(k) for k in RUN_KEYS}
    out["method"] = out["method"] or "ft"
    if not isinstance(out["method"], str) or out["method"] not in METHODS:
        get_method(str(out["method"]))  # raises, listing the registered methods
    if not out["task"]:
        raise ValueError("no task: give one with --task NAME or `task:` in the config file "
                         "(world tasks: spurious, shift)")
    out["model"] = out["model"] or DEFAULT_MODEL
    for key in ("hparams", "task_args"):
        val = out[key] if out[key] is not None else {}
        if not isinstance(val, dict):
            raise ValueError(f"config key {key!r} must be a mapping of names to values; got {val!r}")
        out[key] = dict(val)

    # the method and its hyperparameters, through the registry
    cls = METHODS[out["method"]]
    kinds = {k: type(h.default) if isinstance(h.default, (bool, int, float, str)) and not h.choices else None
             for k, h in cls.hparams.items()}  # a choice ("val") or a number: the registry checks it
    hp = {k: _coerce(k, v, kinds[k], f"{out['method']} hyperparameter") if k in kinds else v
          for k, v in out["hparams"].items()}
    out["hparams"] = dict(get_method(out["method"], **hp).params)

    # paths are stored absolute, so a run resumes from any working directory
    pre = out["pretrained"]
    if isinstance(pre, str) and (os.sep in pre or pre.startswith(".") or Path(pre).expanduser().exists()):
        out["pretrained"] = _absolute(pre)
    if out["model"].startswith("local-dir:"):
        out["model"] = "local-dir:" + _absolute(out["model"][len("local-dir:"):])
    out["root"] = _absolute(out["root"])
    cache = out["cache"]
    if cache is not None and not isinstance(cache, (bool, str)):
        raise ValueError(f"config key 'cache' is null, true, false or a folder; got {cache!r}")
    out["cache"] = _absolute(cache) if isinstance(cache, str) else (cache or None)

    # training settings: TrainConfig defaults, the method's recipe for this model (rftlab.recipes), then the config
    fields = train_keys()
    given = {k: _coerce(k, config[k], field_kind(fields[k]), "training setting")
             for k in fields if config.get(k) is not None}
    base = {k: v for k, v in train_settings(cls, out["model"], given, lambda: len(
        open_task(out["task"], out["root"], out["task_args"]).train)).items() if k in fields}
    TrainConfig(**base)   # range checks
    out.update(base)
    return out


def train_config(resolved: dict, checkpoint_dir: str | None = None, progress: bool = True):
    """The :class:`~rftlab.recipes.TrainConfig` of a resolved config (its feature cache: the ``cache`` key)."""
    from .recipes import TrainConfig
    return TrainConfig(**{k: resolved[k] for k in train_keys()}, checkpoint_dir=checkpoint_dir, progress=progress,
                       feature_cache=resolved.get("cache"))


def open_task(name: str, root: str | None = None, task_args: dict | None = None):
    """``rftlab.load_task(name, root=root, **task_args)`` (``root`` only when given), with a
    clear error for arguments the task does not take."""
    from .tasks import load_task
    kw = dict(task_args or {})
    if root is not None:
        kw["root"] = root
    try:
        return load_task(name, **kw)
    except TypeError as err:
        raise ValueError(f"task {name!r} does not take these arguments ({', '.join(kw) or 'none'}): {err}") from err


def load_parts(resolved: dict):
    """(ClipModel, Task) of a resolved config. The run's seed is set first, so a randomly
    initialised model (no pretrained weights) is the same each time the config is loaded."""
    from .models.loading import load_model
    torch.manual_seed(resolved["seed"])
    clip = load_model(resolved["model"], resolved["pretrained"])
    return clip, open_task(resolved["task"], resolved["root"], resolved["task_args"])
