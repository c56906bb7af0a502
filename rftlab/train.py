"""The one training loop every method runs on.

AdamW, linear warm-up then cosine, gradient-norm clipping, seeds, automatic device (CUDA
with bf16 autocast when present), periodic validation, a history of every loss term,
callbacks, tqdm progress, checkpoints with exact resume, and Ctrl-C that keeps what was
learned. Methods (``rftlab.methods``) only supply parameters, loss terms and the hooks of
``rftlab.methods.Method``; the Trainer also runs the linear-probe stage a method asks for
(``Method.probe``: LP, LP-FT). Recipes (soups) compose several Trainer runs in :func:`finetune`.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import math
import random
import time
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from . import distributed
from .classifier import ClipClassifier, check_head
from .data import Task
from .evaluation import evaluate_val
from .methods import Method, Recipe, TrainResult, get_method
from .recipes import TrainConfig, parse_device, recipe_config


def is_convolutional(model: torch.nn.Module) -> bool:
    """Whether the image tower convolves beyond a patch embedding (ResNet, ConvNeXt, the world
    CNN: channels_last pays off, 1.13x per FT step of the world CNN on 2 CPU cores in
    docs/benchmarks.md), as opposed to a ViT's single patchifying conv."""
    visual = getattr(model, "visual", model)
    return sum(isinstance(m, torch.nn.Conv2d) for m in visual.modules()) > 1


def freeze_batchnorm(module: torch.nn.Module) -> int:
    """Put every BatchNorm layer of ``module`` in eval mode: it normalises with its pretrained
    running statistics and leaves them alone (its affine weights still train). The loop calls
    this after ``train()`` so that a model with BatchNorm (open_clip's ResNets) computes, at
    step 0, exactly the zero-shot model's function, as LayerNorm ViTs and the world CNN
    (GroupNorm) do by construction; batch statistics would also make every pull towards theta0
    (Lipsum-FT, CAR-FT, StarFT, L2-SP) non-zero before any step. Returns how many it froze."""
    layers = [m for m in module.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    for m in layers:
        m.eval()
    return len(layers)


def pick_device(device: str | None = None) -> torch.device:
    if not device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = parse_device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: this machine has no usable CUDA GPU; use --device cpu "
                         f"(or give no device)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(f"device {device!r}: this machine has {torch.cuda.device_count()} CUDA GPU(s), "
                         f"cuda:0 to cuda:{torch.cuda.device_count() - 1}")
    return dev


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)


def lr_factor(step: int, total: int, warmup: int) -> float:
    if warmup and step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def _rng_state() -> dict:
    """Every random state, as tensors and plain values (a checkpoint loads with weights_only=True)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss)}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, *rest = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.int64).astype(np.uint32), *rest))
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class Trainer:
    """Runs one method on one task. ``fit()`` trains; every part is a plain method so widgets,
    scripts and tests can drive it step by step (``step()``) too.

    Under ``torchrun`` (or ``TrainConfig(distributed=True)``) it trains data-parallel: each rank
    takes its shard of every global batch of ``config.batch_size``; see ``rftlab.distributed``
    and docs/distributed.md."""

    def __init__(self, method: Method | str, clip, task: Task, config: TrainConfig | None = None,
                 classifier: ClipClassifier | None = None, callbacks: list[Callable] = (), **hparams):
        self.method = get_method(method, **hparams)
        if isinstance(self.method, Recipe):
            raise ValueError(f"{self.method.name} is a recipe of several training runs, not one: train it with "
                             f"rftlab.finetune({self.method.name!r}, clip, task, config)")
        self.clip = clip
        self.task = task
        if config is None:  # the method's recipe for this model (rftlab.recipes)
            config = recipe_config(self.method, clip, task)
        self.config = config
        self.ranks = distributed.start(self.config.distributed, pick_device(self.config.device))
        self.ranks.shard_size(self.config.batch_size)
        self.device = self.ranks.device
        cuda = self.device.type == "cuda"
        self.sync_every = self.config.sync_every or (10 if cuda else 1)
        self.channels_last = is_convolutional(clip.model) if self.config.channels_last is None \
            else bool(self.config.channels_last)
        seed_everything(self.config.seed)
        if classifier is None:
            classifier = ClipClassifier.zeroshot(clip, task.classnames, task.templates)
        check_head(classifier, task)
        self.classifier = classifier.to(self.device)
        if self.channels_last:  # before setup, so the frozen references it copies are NHWC too
            self.classifier.to(memory_format=torch.channels_last)
        self.ranks.broadcast_module(self.classifier)  # every rank starts from rank 0's weights
        self.callbacks = list(callbacks)
        self.history: list[dict] = []
        self.step_count = 0
        self._best: tuple[float, int, dict] | None = None
        self.method.config, self.method.ranks = self.config, self.ranks
        self.method.setup(self.classifier, task, clip)
        self.params = [p for p in self.method.parameters(self.classifier)]
        for p in self.classifier.parameters():
            p.requires_grad_(False)
        for p in self.params:
            p.requires_grad_(True)
        self.optimizer = self.method.build_optimizer(self.params, self.config) \
            if self.params and self.method.trainable else None
        self._stop_requested = False
        self.checkpoint_extra: dict = {}  # more plain values for every checkpoint (a run folder's config)
        self._stream = None
        self._pending: list[tuple[int, float, dict]] = []  # steps whose loss terms the host has not read
        self._good: dict | None = None                      # the state at the last read of finite losses

    # ------------------------------------------------------------------ pieces
    def _autocast(self):
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _batches(self):
        if self._stream is None:
            cfg = self.config
            pin = self.device.type == "cuda" if cfg.pin_memory is None else cfg.pin_memory
            self._stream = self.ranks.batches(self.task.train, cfg.batch_size, self.clip.preprocess, seed=cfg.seed,
                                              start=self.step_count, workers=cfg.workers, pin_memory=pin)
        return self._stream

    def _emit(self, event: str, info: dict) -> None:
        for cb in self.callbacks:
            cb(event, info)

    def loss_terms(self, images: torch.Tensor, labels: torch.Tensor, step: int | None = None) -> dict:
        """The method's loss terms for a batch of preprocessed images, computed as a training
        step computes them (train mode with BatchNorm statistics frozen, the step's memory
        format and autocast) at ``step`` (default: the next step), without touching any weight."""
        fmt = torch.channels_last if self.channels_last and images.dim() == 4 else torch.preserve_format
        images = images.to(self.device, non_blocking=True, memory_format=fmt)
        labels = labels.to(self.device, non_blocking=True)
        self.classifier.train()
        freeze_batchnorm(self.classifier)
        with self._autocast():
            return self.method.loss(self.classifier, images, labels, self.step_count if step is None else step)

    def _advance(self, check: bool) -> tuple[int, float, dict]:
        """One optimiser step without reading anything back to the host (unless ``check``: then a
        non-finite loss raises FloatingPointError before the weights are touched). Returns
        (step, lr, the loss terms as detached tensors on the device)."""
        cfg = self.config
        images, labels, _ = next(self._batches())
        terms = self.loss_terms(images, labels)
        loss = terms["loss"]
        shown = self.ranks.mean_terms(terms)  # the whole batch's terms (``terms`` itself on one process)
        if check and not torch.isfinite(shown["loss"]):
            raise FloatingPointError(f"the loss became {shown['loss'].item()} at step {self.step_count}")
        factor = lr_factor(self.step_count, cfg.steps, cfg.warmup_steps)
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * factor
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.ranks.average_grads(self.params)
        if cfg.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
        self.optimizer.step()
        self.method.after_step(self.classifier, self.step_count, cfg.steps)
        self.step_count += 1
        return self.step_count, cfg.lr * factor, {k: v.detach() for k, v in shown.items()}

    def step(self) -> dict:
        """One optimiser step; returns the loss terms as floats. Raises FloatingPointError on a
        non-finite loss, before touching the weights."""
        self._read()
        self._pending.append(self._advance(check=True))
        return self._read()[-1]

    def _read(self) -> list[dict]:
        """Bring the loss terms of the steps not yet read to the host in one transfer, add them
        to the history and send their "step" events. A non-finite loss among them puts back the
        state of the last read (``fit`` with ``sync_every`` > 1 only) and raises FloatingPointError."""
        if not self._pending:
            return []
        pending, self._pending = self._pending, []
        device = pending[0][2]["loss"].device
        flat = [v.reshape(()).to(device, torch.float64, non_blocking=True) for _, _, terms in pending for v in terms.values()]
        values = iter(torch.stack(flat).cpu().tolist())
        records = [{"step": step, "lr": lr, **{k: next(values) for k in terms}} for step, lr, terms in pending]
        bad = next((r for r in records if not math.isfinite(r["loss"])), None)
        if bad is not None:
            good = self._restore_good()
            raise FloatingPointError(f"the loss became {bad['loss']} at step {bad['step'] - 1}; the weights are those "
                                     f"of step {good}, the last step read with a finite loss (losses are read every "
                                     f"{self.sync_every} steps: sync_every=1 stops at the very step)")
        self.history.extend(records)
        for rec in records:
            self._emit("step", rec)
        return records

    def _snapshot_good(self) -> None:
        """Keep the state reached (on its device) so a non-finite loss found at a later read can
        put it back; only when losses are read every few steps."""
        if self.sync_every == 1:
            return
        changing = {n for n, p in self.classifier.named_parameters() if p.requires_grad}
        changing |= {n for n, _ in self.classifier.named_buffers()}
        self._good = {
            "step": self.step_count, "history": len(self.history),
            "classifier": {k: v.detach().clone() for k, v in self.classifier.state_dict().items() if k in changing},
            "optimizer": copy.deepcopy(self.optimizer.state_dict()),
            "method": copy.deepcopy(self.method.state_dict()),
        }

    def _restore_good(self) -> int:
        good = self._good
        if good is None:
            return self.step_count
        self.classifier.load_state_dict(good["classifier"], strict=False)
        self.optimizer.load_state_dict(good["optimizer"])
        if good["method"] is not None:
            self.method.load_state_dict(good["method"])
        self.step_count = good["step"]
        del self.history[good["history"]:]
        self._stream = None
        return good["step"]

    def request_stop(self) -> None:
        """Ask :meth:`fit` to stop after the current step (from a callback or another thread):
        the weights and history reached are kept, as with Ctrl-C."""
        self._stop_requested = True

    def validate(self) -> dict:
        self.method.refresh_head(self.classifier)
        metrics = self.ranks.on_main(evaluate_val, self.classifier, self.task, self.clip.preprocess)
        rec = {"step": self.step_count, **metrics}
        self.history.append(rec)
        key = self.config.select
        if key != "last":
            score = metrics.get(key, metrics["val_acc"])
            if self._best is None or score > self._best[0]:
                self._best = (score, self.step_count,
                              {k: v.detach().cpu().clone() for k, v in self.classifier.state_dict().items()})
        return rec

    def _probe(self) -> None:
        """The linear-probe stage ``Method.probe()`` asks for (LP, LP-FT): the frozen tower encodes
        train (and val, when there is a grid to choose from) once, through the feature cache;
        full-batch L-BFGS fits the head for each weight decay from the head the method set up; the
        best val accuracy wins. One history record per weight decay, at step 0."""
        spec = self.method.probe()
        if spec is None:
            return
        from .cache import cached_encode_split
        from .methods.lp import fit_linear_probe
        clf, task, tf, cache = self.classifier, self.task, self.clip.preprocess, self.config.feature_cache
        train = cached_encode_split(clf, task.train, tf, cache=cache)
        val = cached_encode_split(clf, task.val, tf, cache=cache) if len(spec.weight_decays) > 1 else None
        head0, best = clf.head.detach().clone(), None
        for wd in spec.weight_decays:
            with torch.no_grad():
                clf.head.copy_(head0)
            fit = fit_linear_probe(clf, train, task.train.labels, wd, spec.iters)[-1]
            rec = {"step": 0, "probe_weight_decay": wd, "loss": fit["loss"], "ce": fit["ce"]}
            if val is not None:
                with torch.no_grad():
                    scored, labels = task.val.score(clf.scale.cpu() * val @ clf.head.detach().float().cpu())
                rec["val_probe_acc"] = (scored.argmax(1) == labels).float().mean().item()
            self.history.append(rec)
            if best is None or rec.get("val_probe_acc", 0.0) > best[0]:
                best = (rec.get("val_probe_acc", 0.0), clf.head.detach().clone())
        with torch.no_grad():
            clf.head.copy_(best[1])

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self, path: str | Path) -> Path:
        """Rank 0 writes (the ranks hold the same state); every rank returns once it is written.
        The file holds tensors and plain containers only (it loads with ``weights_only=True``)
        and is written atomically: a process killed while writing leaves the previous one whole."""
        from .files import save_torch
        self._read()
        path = Path(path)
        if not self.ranks.is_main:
            self.ranks.barrier()
            return path
        plain = (type(None), bool, int, float, str)
        config = {k: v if isinstance(v, plain) else str(v) for k, v in asdict(self.config).items()}
        save_torch({
            "arch": self.clip.arch, "pretrained": self.clip.pretrained, "task": self.task.name,
            "method": self.method.name, "hparams": self.method.params, "config": config,
            "classifier": self.classifier.state_dict(),
            "optimizer": self.optimizer.state_dict() if self.optimizer else None,
            "step": self.step_count, "history": self.history, "rng": _rng_state(),
            "method_state": self.method.state_dict(), **self.checkpoint_extra,
        }, path)
        self.ranks.barrier()
        return path

    def load_checkpoint(self, path: str | Path, fix: str = "", checkpoint: dict | None = None) -> None:
        """Continue from the checkpoint at ``path`` (``checkpoint``: what :func:`read_checkpoint`
        already read from it). A damaged file, or one of another architecture or method, raises;
        ``fix`` ends those messages."""
        ck = checkpoint if checkpoint is not None else read_checkpoint(path, fix)
        from .errors import ResumeError
        tail = f" {fix}" if fix else ""
        if ck["arch"] != self.clip.arch:
            raise ResumeError(f"checkpoint {path} is for architecture {ck['arch']!r}, not {self.clip.arch!r}.{tail}")
        if ck["method"] != self.method.name:
            raise ResumeError(f"checkpoint {path} was trained with {ck['method']!r}, not {self.method.name!r}.{tail}")
        try:
            self.classifier.load_state_dict(ck["classifier"])
            if self.optimizer and ck["optimizer"]:
                self.optimizer.load_state_dict(ck["optimizer"])
            if ck.get("method_state") is not None:
                self.method.load_state_dict(ck["method_state"])
            _set_rng_state(ck["rng"])
        except (RuntimeError, ValueError, KeyError, TypeError) as err:
            from .errors import BadFileError
            raise BadFileError(f"checkpoint {path} does not fit this model, task and method "
                               f"({(str(err).splitlines() or [type(err).__name__])[0]}).{tail}", path) from err
        self.step_count, self.history = ck["step"], ck["history"]
        self._stream = None

    def _finish(self, result: TrainResult) -> None:
        """The method's post-processing; keeps the weights it started from as ``result.endpoint``
        when it changed them (only methods that override ``finish`` pay for the copy)."""
        if type(self.method).finish is Method.finish:
            return
        before = {k: v.detach().cpu().clone() for k, v in self.classifier.state_dict().items()}
        result.classifier = self.method.finish(self.classifier)
        after = result.classifier.state_dict()
        if any(not torch.equal(before[k], v.detach().cpu()) for k, v in after.items()):
            result.endpoint = before

    # ------------------------------------------------------------------ the loop
    def fit(self, resume: str | Path | None = None) -> TrainResult:
        result = self._fit(resume)
        if self.channels_last:  # a training-time layout: the model goes back in torch's standard one, so
            result.classifier.to(memory_format=torch.contiguous_format)  # it evaluates exactly as when reloaded
        return result

    def _fit(self, resume: str | Path | None) -> TrainResult:
        cfg = self.config
        if resume:
            self.load_checkpoint(resume)
        t0 = time.time()
        self._emit("start", {"trainer": self})
        if self.step_count == 0:  # a resumed run already has its probed head
            self._probe()
        result = TrainResult(self.classifier, self.history)
        if not self.method.trainable or cfg.steps == 0:  # no step loop: zero-shot, LP, steps=0
            if cfg.eval_every:
                self._emit("eval", self.validate())
            if cfg.checkpoint_dir:
                self.save_checkpoint(Path(cfg.checkpoint_dir) / "last.pt")
            self.method.refresh_head(self.classifier)
            self._finish(result)
            result.seconds = time.time() - t0
            self.classifier.eval()
            self._emit("end", {"result": result})
            return result
        from tqdm.auto import tqdm
        bar = tqdm(total=cfg.steps, initial=self.step_count, desc=f"{self.method.name} on {self.task.name}",
                   leave=False, **({} if cfg.progress and self.ranks.is_main else {"disable": True}))  # else TQDM_DISABLE decides
        check_each_step = self.sync_every == 1
        try:
            self._stop_requested = False
            self._snapshot_good()
            while self.step_count < cfg.steps and not self._stop_requested:
                self._pending.append(self._advance(check=check_each_step))
                bar.update(1)
                n = self.step_count
                at_eval = cfg.eval_every and (n % cfg.eval_every == 0 or n == cfg.steps)
                at_checkpoint = cfg.checkpoint_dir and cfg.checkpoint_every and n % cfg.checkpoint_every == 0
                if not (at_eval or at_checkpoint or n % self.sync_every == 0 or n == cfg.steps):
                    continue
                records = self._read()  # the only host sync between evaluations
                bar.set_postfix(loss=f"{records[-1]['loss']:.3f}", refresh=False)
                if at_eval:
                    self._emit("eval", self.validate())
                if at_checkpoint:
                    self.save_checkpoint(Path(cfg.checkpoint_dir) / "last.pt")
                self._snapshot_good()
            result.interrupted = self.step_count < cfg.steps  # request_stop() ended the loop early
        except KeyboardInterrupt:
            result.interrupted = True
            try:
                self._read()  # steps taken before the interrupt belong to the history
            except FloatingPointError as err:
                result.stopped = f"{err}; stopped with the last good weights"
            if self.ranks.is_main:
                warnings.warn(f"training interrupted at step {self.step_count}: the model and history so far are kept")
        except FloatingPointError as err:
            result.stopped = f"{err}; stopped with the last good weights (lower the learning rate?)"
            if self.ranks.is_main:
                warnings.warn(result.stopped)
        finally:
            bar.close()
            self._stream = None  # ends the loader's worker processes
            self._good = None
        if self._best is not None and not result.interrupted and result.stopped is None:
            self.classifier.load_state_dict(self._best[2])
            result.selected_step = self._best[1]
        if cfg.checkpoint_dir:
            self.save_checkpoint(Path(cfg.checkpoint_dir) / "last.pt")
        self.method.refresh_head(self.classifier)
        if not result.interrupted:
            self._finish(result)
        result.step = self.step_count
        result.seconds = time.time() - t0
        self.classifier.eval()
        self._emit("end", {"result": result})
        return result


class _Runs(dict):
    """Finished runs by their key, kept on the CPU; ``trained`` and ``reused`` count the runs asked for."""
    trained = 0
    reused = 0

    def drop(self, method: str) -> None:
        """Forget the runs of ``method`` (their memory is freed)."""
        for key in [k for k in self if k[2] == method]:
            del self[key]


_reused: _Runs | None = None  # inside reuse_runs()


@contextlib.contextmanager
def reuse_runs():
    """Inside this block, :func:`finetune` trains each run once: a second call with the same model
    object, task object, method, hyperparameters and TrainConfig gets a copy of the first result
    (interrupted or stopped runs are not kept). ``compare`` and ``sweep`` use it, so soups share
    their FT ingredients with each other and with the FT sweep, and a sweep's seed-0 run of the
    selected configuration is not trained twice. Yields the store: its ``trained`` and ``reused``
    attributes count the runs trained and handed out again inside the block."""
    global _reused
    outer, _reused = _reused, (_Runs() if _reused is None else _reused)
    try:
        yield _reused
    finally:
        _reused = outer


def _run_key(method: Method, clip, task: Task, config: TrainConfig):
    cfg = {k: v for k, v in asdict(config).items() if k != "progress"}
    return (id(clip.model), id(task), method.name, repr(sorted(method.params.items())), repr(sorted(cfg.items())))


CHECKPOINT_KEYS = ("arch", "method", "classifier", "optimizer", "step", "history", "rng")


def read_checkpoint(path: str | Path, fix: str = "") -> dict:
    """A Trainer checkpoint read safely (``weights_only=True``) and checked for the entries a
    resume needs; a damaged or foreign file raises :class:`~rftlab.errors.BadFileError` naming
    it, with ``fix`` at the end of the message."""
    from .errors import BadFileError
    from .files import load_torch, numpy_array_globals
    ck = load_torch(path, "checkpoint", fix, extra_globals=numpy_array_globals())  # numpy: checkpoints of rftlab <= 0.1
    missing = [k for k in CHECKPOINT_KEYS if k not in ck] if isinstance(ck, dict) else list(CHECKPOINT_KEYS)
    if missing:
        raise BadFileError(f"checkpoint {path} is not a Trainer checkpoint (it lacks {', '.join(missing)})."
                           + (f" {fix}" if fix else ""), path)
    return ck


def finetune(method: Method | str, clip, task: Task, config: TrainConfig | None = None,
             resume: str | Path | None = None, callbacks: list[Callable] = (), **hparams) -> TrainResult:
    """Train ``method`` (any registered name) on ``task`` from ``clip``'s zero-shot classifier.
    ``clip`` itself is never modified: the trainer works on a deep copy of its model.
    ``config`` None: the method's recipe for this model (``rftlab.recipes.recipe_config``).
    ``resume``: a Trainer checkpoint file; for a recipe (soups), the checkpoint folder its runs
    wrote (each run resumes from its own ``last.pt`` there)."""
    method = get_method(method, **hparams)
    if config is None:
        config = recipe_config(method, clip, task)
    if isinstance(method, Recipe):
        def train(name: str, cfg: TrainConfig, **hp) -> TrainResult:
            ckpt = Path(cfg.checkpoint_dir) / "last.pt" if resume and cfg.checkpoint_dir else None
            return finetune(name, clip, task, cfg, resume=ckpt if ckpt and ckpt.is_file() else None,
                            callbacks=callbacks, **hp)
        return method.fit(train, lambda clf: evaluate_val(clf, task, clip.preprocess), config)
    key = _run_key(method, clip, task, config) if _reused is not None and not resume else None
    if key is not None and key in _reused:
        _reused.reused += 1
        device, kept = _reused[key]
        return dataclasses.replace(kept, classifier=copy.deepcopy(kept.classifier).to(device), history=list(kept.history))
    run_clip = copy.copy(clip)
    run_clip.model = copy.deepcopy(clip.model)
    result = Trainer(method, run_clip, task, config, callbacks=callbacks).fit(resume)
    if key is not None:
        _reused.trained += 1
    if key is not None and not result.interrupted and result.stopped is None:
        _reused[key] = (next(result.classifier.parameters()).device, dataclasses.replace(
            result, classifier=copy.deepcopy(result.classifier).cpu(), history=list(result.history)))
    return result
