"""``load_model``, the one way to get a CLIP, and how it finds weights: the embedded default,
rftlab checkpoints, open_clip names with pretrained tags, plain weight files and ``local-dir:``
folders (which :func:`save_local_dir` writes).

Every failure says what was looked for and how to supply it; nothing waits on a network
that is not there.
"""
from __future__ import annotations

import difflib
import json
import os
import socket
from pathlib import Path

from ..errors import BadFileError, WeightsNotFoundError
from .factory import (DEFAULT_MODEL, DEFAULT_WEIGHTS, ClipModel, WorldTransform, create_world_model,
                      register_configs)

def _looks_like_path(text: str) -> bool:
    return os.sep in text or text.startswith(".") or text.endswith((".pt", ".pth", ".bin", ".safetensors", ".ckpt"))


def _check_name(name: str) -> None:
    import open_clip
    models = open_clip.list_models()
    if name not in models:
        close = difflib.get_close_matches(name, models, n=5, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise ValueError(f"unknown model {name!r}: not an open_clip architecture nor rftlab's "
                         f"{DEFAULT_MODEL!r}.{hint} See open_clip.list_models() for every name.")


def _online(host: str = "huggingface.co", timeout: float = 2.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _cached_tag_file(name: str, tag: str) -> tuple[str | None, str]:
    """(path of cached weights or None, a description of where they were looked for)."""
    from open_clip.pretrained import get_pretrained_cfg
    cfg = get_pretrained_cfg(name, tag)
    if cfg.get("file"):
        return (cfg["file"] if Path(cfg["file"]).exists() else None), cfg["file"]
    if cfg.get("hf_hub"):
        repo, filename = os.path.split(cfg["hf_hub"].rstrip("/")) if not cfg["hf_hub"].endswith("/") \
            else (cfg["hf_hub"].rstrip("/"), "open_clip_pytorch_model.bin")
        try:
            from huggingface_hub import try_to_load_from_cache
            for fn in (filename.replace(".bin", ".safetensors"), filename):
                hit = try_to_load_from_cache(repo, fn)
                if isinstance(hit, str):
                    return hit, f"Hugging Face repo {repo}, file {filename}"
        except ImportError:  # pragma: no cover - huggingface_hub comes with open_clip
            pass
        return None, f"Hugging Face repo {repo}, file {filename} (cache: ~/.cache/huggingface/hub)"
    url = cfg.get("url", "")
    local = Path("~/.cache/clip").expanduser() / os.path.basename(url)
    return (str(local) if url and local.exists() else None), f"{url} (cache: {local})"


def _world_from_checkpoint(path: Path, ck: dict, device) -> ClipModel:
    try:
        clip = create_world_model(ck.get("vocabulary"))
        clip.model.load_state_dict(ck["state_dict"])
    except (RuntimeError, TypeError, ValueError) as err:
        raise BadFileError(f"{path} does not hold {DEFAULT_MODEL} weights that fit its architecture "
                           f"({str(err).splitlines()[0]}): was it written by another version of rftlab? "
                           f"Pass another file, or omit `pretrained` for the shipped weights", path) from err
    clip.pretrained = str(path)
    clip.info = {"record": ck.get("record")}
    return _finish(clip, device)


def _finish(clip: ClipModel, device) -> ClipModel:
    clip.model.eval()
    if device is not None:
        clip.model.to(device)
    return clip


def _rftlab_checkpoint(path: Path) -> dict | None:
    """The payload if ``path`` is an rftlab checkpoint (weights + architecture name), None for
    other weight files. Read safely (no unpickling of code; tensors memory-mapped); a damaged
    file raises :class:`~rftlab.errors.BadFileError`."""
    from ..files import load_safetensors, load_torch
    fix = "Check the path, or download the file again."
    if path.suffix == ".safetensors":
        tensors, meta = load_safetensors(path, "weights file", fix)
        if "rftlab" not in meta:
            return None
        try:
            info = json.loads(meta["rftlab"])
        except json.JSONDecodeError as err:
            raise BadFileError(f"weights file {path}: its rftlab metadata is damaged ({err}). {fix}", path) from err
        return {**info, "state_dict": tensors}
    ck = load_torch(path, "weights file", fix, mmap=True)
    return ck if isinstance(ck, dict) and "arch" in ck and "state_dict" in ck else None


def load_model(name: str = DEFAULT_MODEL, pretrained: str | None = None, device=None) -> ClipModel:
    """Load a CLIP as a :class:`~rftlab.models.factory.ClipModel` (the model with its tokenizer and
    transform). Defaults to rftlab's embedded world model, trained and shipped offline."""
    import open_clip
    register_configs()
    name = name or DEFAULT_MODEL

    # --- local-dir:DIR (open_clip_config.json + weights) --------------------------------
    if name.startswith("local-dir:"):
        root = Path(name[len("local-dir:"):]).expanduser()
        cfg_file = root / "open_clip_config.json"
        if not cfg_file.exists():
            raise WeightsNotFoundError(
                f"{name}: expected a folder holding open_clip_config.json and the weights "
                f"(open_clip_model.safetensors or open_clip_pytorch_model.bin); {cfg_file} is missing. "
                f"rftlab.save_local_dir(clip, folder) writes one.")
        from ..files import read_json
        cfg = read_json(cfg_file, "open_clip config", "Write the folder again (rftlab.save_local_dir) "
                                                     "or fix the file.")
        extra = cfg.get("rftlab", {}) if isinstance(cfg, dict) else {}
        try:
            model, preprocess = open_clip.create_model_from_pretrained(name)
        except Exception as err:  # open_clip and safetensors raise many kinds for a bad folder
            raise BadFileError(f"{name}: the folder's config or weights cannot be loaded "
                               f"({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
                               f"Write the folder again (rftlab.save_local_dir).", root) from err
        if extra.get("arch") == DEFAULT_MODEL:
            world = create_world_model(extra.get("vocabulary"))
            world.model.load_state_dict(model.state_dict())
            world.pretrained = name
            return _finish(world, device)
        arch = extra.get("arch", name)
        return _finish(ClipModel(model, open_clip.get_tokenizer(name), preprocess, arch, name), device)

    # --- the embedded world model --------------------------------------------------------
    if name == DEFAULT_MODEL:
        if pretrained in ("random", "none"):
            return _finish(create_world_model(), device)
        path = Path(pretrained).expanduser() if pretrained else DEFAULT_WEIGHTS
        if not path.exists():
            how = ("rebuild it with `rftlab pretrain` (see docs/pretraining.md)" if not pretrained
                   else "check the path, or omit `pretrained` for the shipped weights")
            raise WeightsNotFoundError(f"no weights file at {path}: {how}")
        ck = _rftlab_checkpoint(path)
        if ck is not None and ck["arch"] != DEFAULT_MODEL:
            raise BadFileError(f"{path} holds weights for architecture {ck['arch']!r}, not {DEFAULT_MODEL!r}: "
                               f"load it with load_model({ck['arch']!r}, pretrained={str(path)!r})", path)
        if ck is None:
            raise BadFileError(f"{path} is not an rftlab checkpoint (no architecture name stored); "
                               f"save world models with rftlab.save_checkpoint", path)
        return _world_from_checkpoint(path, ck, device)

    _check_name(name)
    # --- a weights file ------------------------------------------------------------------
    if pretrained and (_looks_like_path(pretrained) or Path(pretrained).exists()):
        path = Path(pretrained).expanduser()
        if not path.exists():
            raise WeightsNotFoundError(f"weights file {path} does not exist")
        ck = _rftlab_checkpoint(path)
        if ck is not None:
            if ck["arch"] != name:
                raise BadFileError(
                    f"{path} holds weights for architecture {ck['arch']!r}, not {name!r} "
                    f"(a QuickGELU/GELU or size mix-up gives silently wrong features): "
                    f"load it with load_model({ck['arch']!r}, pretrained={str(path)!r})", path)
        try:
            if ck is not None:
                model, _, preprocess = open_clip.create_model_and_transforms(name)
                model.load_state_dict(ck["state_dict"])
            else:
                model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=str(path))
        except (RuntimeError, KeyError, StopIteration, AttributeError, TypeError) as err:
            raise BadFileError(f"the weights in {path} do not fit architecture {name!r}; "
                               f"is it the right model name (e.g. '-quickgelu' for OpenAI weights)? "
                               f"{(str(err).splitlines() or [type(err).__name__])[0]}", path) from err
        return _finish(ClipModel(model, open_clip.get_tokenizer(name), preprocess, name, str(path)), device)

    # --- an open_clip pretrained tag -----------------------------------------------------
    if pretrained:
        tags = open_clip.list_pretrained_tags_by_model(name)
        if pretrained not in tags:
            raise ValueError(f"unknown pretrained tag {pretrained!r} for {name}; its tags are: "
                             f"{', '.join(tags) or 'none (pass a weights file instead)'}")
        cached, where = _cached_tag_file(name, pretrained)
        if cached is None and not _online():
            raise WeightsNotFoundError(
                f"no weights for {name} ({pretrained}) on this machine and no network to fetch them.\n"
                f"Looked for: {where}.\n"
                f"To supply them: download that file on a machine with network and pass its path, "
                f"load_model({name!r}, pretrained='/path/to/file'), or a folder with "
                f"load_model('local-dir:/path/to/folder').")
        source = cached or pretrained
        model, _, preprocess = open_clip.create_model_and_transforms(name, pretrained=source)
        return _finish(ClipModel(model, open_clip.get_tokenizer(name), preprocess, name, pretrained), device)

    # --- random initialisation -----------------------------------------------------------
    model, _, preprocess = open_clip.create_model_and_transforms(name)
    return _finish(ClipModel(model, open_clip.get_tokenizer(name), preprocess, name, None), device)


def save_local_dir(clip: ClipModel, folder: str | os.PathLike) -> Path:
    """Write ``folder`` in open_clip's local-dir layout (config + safetensors weights), with the
    architecture name and, for world models, the vocabulary."""
    import open_clip

    from ..files import save_safetensors, write_json
    register_configs()
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    model_cfg = open_clip.get_model_config(clip.arch)
    if model_cfg is None:
        raise ValueError(f"no open_clip config is registered for {clip.arch!r}")
    pre = clip.preprocess
    cfg = {"model_cfg": model_cfg, "rftlab": {"arch": clip.arch, "vocabulary": getattr(clip.tokenizer, "words", None)}}
    if isinstance(pre, WorldTransform):
        cfg["preprocess_cfg"] = {"mean": pre.mean.flatten().tolist(), "std": pre.std.flatten().tolist()}
    write_json(folder / "open_clip_config.json", cfg)
    save_safetensors(clip.model.state_dict(), folder / "open_clip_model.safetensors")
    return folder
