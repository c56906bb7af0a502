"""TrainPanel: pick a task, a model and a method, train with live curves, stop, compare, save."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import ipywidgets as w
import torch
from plotly.subplots import make_subplots

from ..data import Task
from ..evaluation import check_compatible, evaluate
from ..methods import METHODS, Method, TrainResult, get_method
from ..plots import history_panel
from ..recipes import TrainConfig, recipe_of, train_settings
from ..train import Trainer, finetune
from ._helpers import LiveFigure, Messages, Panel, Throttle, hparam_widget, html_table

WORLD_TASKS = ("spurious", "shift")
CONFIG_FIELDS = ("steps", "lr", "batch_size", "eval_every", "seed")
RESULT_COLUMNS = ["run", "method", "task", "model", "hparams", "steps", "id_acc", "worst_group_acc",
                  "mean_ood_acc", "ece", "seconds", "note"]
_NOT_LOSS = {"step", "lr"}


class TrainPanel(Panel):
    """Train any registered method on a task from a zero-shot CLIP, watch its curves, stop it,
    compare runs in a table and save checkpoints.

    ``results`` holds one dict per run (the table's columns, the full ``metrics``, the ``config``
    and, with ``keep_models``, the trained ``classifier``: feed it to the other panels).

    Every button calls a public method (``run``, ``stop``, ``save``, ``set_method``...), so code
    and tests drive the panel the same way the buttons do. ``display(panel)`` (or leaving it
    last in a cell) shows it.

    ``config`` None (the default): each method trains with its recipe for the chosen model
    (``rftlab.recipes``: the world recipe on the embedded model, the paper recipe on others),
    and choosing a method puts its recipe's values in the boxes. A given ``config`` is used as
    it is for every method (the boxes still win).
    """

    def __init__(self, clip=None, task: str | Task = "spurious", method: str = "ft", tasks=(),
                 config: TrainConfig | None = None, device: str | None = None, interval: float = 0.25,
                 val_ece: bool = True, keep_models: bool = True):
        from ..models.factory import ClipModel
        from ..models.loading import load_model
        if clip is None:
            clip = load_model()
        models = clip if isinstance(clip, dict) else {getattr(clip, "arch", "model"): clip}
        for name, m in models.items():
            if not isinstance(m, ClipModel):
                raise TypeError(f"model {name!r} is a {type(m).__name__}; give a ClipModel (rftlab.load_model())")
        self.models = dict(models)
        self._tasks: dict[str, Task | None] = {n: None for n in WORLD_TASKS}
        for t in ([task] if isinstance(task, Task) else []) + list(tasks):
            if not isinstance(t, Task):
                raise TypeError(f"tasks must be rftlab Task objects; got {type(t).__name__}")
            self._tasks[t.name] = t
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; registered methods: {', '.join(METHODS)}")
        self.interval = interval
        self.val_ece = val_ece
        self.keep_models = keep_models
        self.results: list[dict] = []
        self.classifier = None          # the classifier of the last run (stopped runs included)
        self.trainer: Trainer | None = None   # the trainer of the last finished run (for save)
        self._current: Trainer | None = None  # the trainer of the run going on
        self.result: TrainResult | None = None
        self.curves: dict[str, tuple[list, list]] = {}
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._busy = threading.Lock()
        self._throttle = Throttle(interval)
        self.message = Messages()
        self._user_config = config
        self._build(task.name if isinstance(task, Task) else task, method, config or TrainConfig(), device)

    # ------------------------------------------------------------------ layout
    def _build(self, task_name, method, cfg, device):
        if task_name not in self._tasks:
            raise ValueError(f"unknown task {task_name!r}; choose from {', '.join(self._tasks)} or pass a Task")
        style = {"description_width": "90px"}
        lay = w.Layout(width="250px")
        self.task_box = w.Dropdown(options=list(self._tasks), value=task_name, description="task", style=style, layout=lay)
        self.model_box = w.Dropdown(options=list(self.models), description="model", style=style, layout=lay)
        self.method_box = w.Dropdown(options=list(METHODS), value=method, description="method", style=style, layout=lay)
        self.method_box.observe(lambda ch: self.set_method(ch["new"]), names="value")
        self.summary = w.HTML()
        self.hparam_box = w.VBox()
        self.hparam_inputs: dict[str, w.Widget] = {}
        self.config_inputs = {
            "steps": w.IntText(value=cfg.steps, description="steps", style=style, layout=lay,
                               tooltip="optimiser steps"),
            "lr": w.FloatText(value=cfg.lr, description="lr", style=style, layout=lay,
                              tooltip="peak learning rate (AdamW, warm-up then cosine)"),
            "batch_size": w.IntText(value=cfg.batch_size, description="batch size", style=style, layout=lay),
            "eval_every": w.IntText(value=min(cfg.eval_every, 25) or cfg.eval_every, description="eval every",
                                    style=style, layout=lay, tooltip="validate every N steps (0: never)"),
            "seed": w.IntText(value=cfg.seed, description="seed", style=style, layout=lay),
        }
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
        self.device_box = w.Dropdown(options=devices, value=device or devices[-1], description="device",
                                     style=style, layout=lay)
        self.run_button = w.Button(description="Run", button_style="primary", icon="play")
        self.stop_button = w.Button(description="Stop", button_style="warning", icon="stop", disabled=True)
        self.save_path = w.Text(value="runs/panel.pt", description="checkpoint", style=style, layout=lay)
        self.save_button = w.Button(description="Save", icon="save")
        self.run_button.on_click(lambda _: self.run(block=False))
        self.stop_button.on_click(lambda _: self.stop())
        self.save_button.on_click(lambda _: self.save(self.save_path.value))
        self.progress = w.IntProgress(value=0, min=0, max=max(1, cfg.steps), description="step 0",
                                      style=style, layout=w.Layout(width="400px"))
        fig = make_subplots(rows=1, cols=2, subplot_titles=("training loss terms", "validation"))
        fig.update_layout(height=320, margin=dict(l=40, r=10, t=40, b=40), legend=dict(orientation="h", y=-0.2))
        fig.update_xaxes(title_text="step")
        fig.update_yaxes(range=[0, 1.02], row=1, col=2)
        self.live = LiveFigure(fig)
        self.table = w.HTML(html_table([], RESULT_COLUMNS, "no runs yet: results appear here, one row per run"))
        self.set_method(method)
        self.model_box.observe(lambda ch: self._apply_recipe(), names="value")
        self.task_box.observe(lambda ch: self._apply_recipe(), names="value")
        left = w.VBox([self.task_box, self.model_box, self.device_box, self.method_box, self.hparam_box])
        right = w.VBox([*self.config_inputs.values(), self.save_path])
        self.widget = w.VBox([
            w.HTML("<b>TrainPanel</b>: fine-tune from the zero-shot model and compare runs"),
            w.HBox([left, right]), self.summary,
            w.HBox([self.run_button, self.stop_button, self.save_button, self.progress]),
            self.message.widget, self.live.widget, w.HTML("<b>runs</b>"), self.table,
        ])
        self.widget.add_class("rftlab-trainpanel")


    # ------------------------------------------------------------------ choices
    def set_method(self, name: str) -> None:
        """Choose a method: its hyperparameters appear with their defaults."""
        if name not in METHODS:
            self.message(f"unknown method {name!r}; registered methods: {', '.join(METHODS)}", "error")
            return
        if self.method_box.value != name:
            self.method_box.value = name  # calls back here
            return
        cls = METHODS[name]
        self.hparam_inputs = {k: hparam_widget(k, h) for k, h in cls.hparams.items()}
        self.hparam_box.children = tuple(self.hparam_inputs.values()) or (w.HTML("<i>no hyperparameters</i>"),)
        self._apply_recipe()
        self.summary.value = f"<i>{name}: {cls.summary}</i>"

    def _apply_recipe(self) -> None:
        """Put the values the method's recipe sets for this model into the boxes (no given config)."""
        if self._user_config is not None:
            return
        name, clip = self.method_box.value, self.models[self.model_box.value]
        recipe = recipe_of(name, clip)
        keys = set(recipe) | ({"steps"} if "epochs" in recipe else set())
        settings = train_settings(name, clip, train_size=lambda: len(self.task().train))
        for k in keys & set(self.config_inputs):
            self.config_inputs[k].value = settings[k]

    def set_task(self, task: str | Task) -> None:
        if isinstance(task, Task):
            self._tasks[task.name] = task
            self.task_box.options = list(self._tasks)
            task = task.name
        if task not in self._tasks:
            self.message(f"unknown task {task!r}; choose from {', '.join(self._tasks)}", "error")
            return
        self.task_box.value = task

    def set_hparams(self, **values) -> None:
        for k, v in values.items():
            if k not in self.hparam_inputs:
                raise ValueError(f"{self.method_box.value} has no hyperparameter {k!r}; it takes: "
                                 f"{', '.join(self.hparam_inputs) or 'none'}")
            self.hparam_inputs[k].value = v

    def set_config(self, **values) -> None:
        for k, v in values.items():
            if k not in self.config_inputs:
                raise ValueError(f"no TrainConfig field {k!r} in the panel; fields: {', '.join(self.config_inputs)}")
            self.config_inputs[k].value = v

    def hparams(self) -> dict:
        return {k: box.value for k, box in self.hparam_inputs.items()}

    def config(self) -> TrainConfig:
        """The TrainConfig the boxes describe, over the method's recipe for the chosen model (or
        over the given config); raises ValueError when a value is out of range."""
        import dataclasses
        given = self._user_config
        base = {f.name: getattr(given, f.name) for f in dataclasses.fields(given)} if given else {}
        values = {**base, **{k: box.value for k, box in self.config_inputs.items()},
                  "device": self.device_box.value, "progress": False}
        settings = train_settings(self.method_box.value, self.models[self.model_box.value], values,
                                  lambda: len(self.task().train))
        return TrainConfig(**settings)

    def task(self) -> Task:
        name = self.task_box.value
        if self._tasks[name] is None:
            from ..tasks import load_task
            self._tasks[name] = load_task(name)
        return self._tasks[name]

    # ------------------------------------------------------------------ actions
    @property
    def running(self) -> bool:
        return self._busy.locked()

    def run(self, block: bool = True) -> TrainResult | None:
        """Train the chosen method. ``block=False`` trains in a background thread (what the Run
        button does) so Stop works; ``block=True`` trains here and returns the TrainResult
        (Ctrl-C / the kernel's interrupt stops it and keeps the model). Bad input, a second Run
        while one is going, or a failure become a message in the panel; nothing is lost."""
        if not self._busy.acquire(blocking=False):
            self.message("a run is already going: press Stop first (this click was ignored)", "error")
            return None
        try:
            name = self.method_box.value
            method = get_method(name, **self.hparams())
            cfg = self.config()
            task = self.task()
            clip = self.models[self.model_box.value]
            check_compatible(clip, task)
        except (ValueError, TypeError) as err:
            self._busy.release()
            self.message(f"not started: {err}", "error")
            return None
        self._stop.clear()
        self._reset_curves(cfg.steps)
        self.message(f"training {name} on {task.name} for {cfg.steps} steps...")
        self.run_button.disabled, self.stop_button.disabled = True, False
        args = (method, clip, task, cfg)
        if block:
            return self._work(*args)
        self._thread = threading.Thread(target=self._work, args=args, daemon=True, name="rftlab-train")
        self._thread.start()
        return None

    def stop(self) -> None:
        """Stop the current run after the step in progress; the weights reached are kept."""
        if not self.running:
            self.message("nothing is running")
            return
        self._stop.set()
        self.message("stopping after the current step...")

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for a background run to end; True when none is running any more."""
        t = self._thread
        if t is not None:
            t.join(timeout)
        return not self.running

    def save(self, path: str | Path) -> Path | None:
        """Save the last run as a checkpoint (Trainer.save_checkpoint); returns the path."""
        if self.trainer is None:
            self.message("nothing to save yet: run a method first" if self.classifier is None else
                         "the last run is a recipe of several runs (a soup), with no single checkpoint: save its "
                         "weights with torch.save(panel.classifier.state_dict(), PATH)", "error")
            return None
        if self.running:
            self.message("wait for the run to end (or Stop it) before saving", "error")
            return None
        try:
            out = self.trainer.save_checkpoint(path)
        except (OSError, RuntimeError) as err:
            self.message(f"could not save to {path}: {err}", "error")
            return None
        self.message(f"saved {out}", "ok")
        return out

    # ------------------------------------------------------------------ the work
    def _work(self, method, clip, task, cfg) -> TrainResult | None:
        t0 = time.time()
        result = None
        try:
            self._current = None
            result = finetune(method, clip, task, cfg, callbacks=[self._on_event])  # trains a copy of the model
            self.message(f"evaluating {method.name}...")
            metrics = evaluate(result.classifier, task, clip.preprocess)
            trainer = self._current if isinstance(method, Method) else None  # a soup's runs have no one trainer
            self.trainer, self.result, self.classifier = trainer, result, result.classifier
            self._curves_from_history(result.history)  # methods without a step loop (LP, soups) too
            self._redraw(force=True)
            note = ""
            if result.interrupted:
                note = f"stopped at step {result.step}"
            elif result.stopped:
                note = result.stopped
            row = {"run": len(self.results) + 1, "method": method.name, "task": task.name,
                   "model": self.model_box.value,
                   "hparams": ", ".join(f"{k}={v}" for k, v in method.params.items()),
                   "steps": result.step, "seconds": round(time.time() - t0, 1), "note": note,
                   "config": cfg, "metrics": metrics,
                   "classifier": result.classifier if self.keep_models else None,
                   **{k: metrics.get(k) for k in ("id_acc", "worst_group_acc", "mean_ood_acc", "ece")}}
            self.results.append(row)
            self.table.value = html_table(self.results, RESULT_COLUMNS, digits={"seconds": 1})
            self.message(f"run {row['run']} done: {method.name}, ID acc {metrics['id_acc']:.3f}"
                         + (f" ({note})" if note else ""), "ok")
        except Exception as err:  # shown in the panel: a button callback has nowhere else to report
            self.message(f"run failed: {type(err).__name__}: {err} (the previous model is kept)", "error")
            result = None
        finally:
            self.run_button.disabled, self.stop_button.disabled = False, True
            self._busy.release()
        return result

    def _on_event(self, event: str, info: dict) -> None:
        if event == "start":
            self._current = info["trainer"]  # the run going on (each of a soup's runs in turn)
        elif event == "step":
            for k, v in info.items():
                if k not in _NOT_LOSS:
                    self._add_point(k, info["step"], v)
            self.progress.value = min(info["step"], self.progress.max)
            self.progress.description = f"step {info['step']}"
            self._redraw()
            if self._stop.is_set() and self._current is not None:
                self._current.request_stop()  # the trainer ends after this step and keeps its weights
        elif event == "eval":
            for k, v in info.items():
                if k != "step" and (self.val_ece or k != "val_ece"):
                    self._add_point(k, info["step"], v)
            self._redraw(force=True)

    # ------------------------------------------------------------------ curves
    def _add_point(self, key, step, value):
        xs, ys = self.curves.setdefault(key, ([], []))
        xs.append(step)
        ys.append(float(value))

    def _curves_from_history(self, history: list[dict]) -> None:
        curves: dict[str, tuple[list, list]] = {}
        for rec in history:
            for k, v in rec.items():
                if k == "step" or k.endswith("lr") or isinstance(v, bool) or not isinstance(v, (int, float)):
                    continue
                xs, ys = curves.setdefault(k, ([], []))
                xs.append(rec.get("step", 0))
                ys.append(float(v))
        if not self.val_ece:
            curves.pop("val_ece", None)
        self.curves = curves

    def _reset_curves(self, steps: int) -> None:
        self.curves = {}
        self.progress.max, self.progress.value, self.progress.description = max(1, steps), 0, "step 0"
        with self.live.lock:
            self.live.fig.data = ()
            self.live.refresh()

    def _redraw(self, force: bool = False) -> None:
        if not self._throttle.due(force):
            return
        fig = self.live.fig
        with self.live.lock:
            names = {t.name for t in fig.data}
            for key in self.curves:
                if key not in names:
                    col = 2 if history_panel(key) == "validation" else 1
                    fig.add_scatter(x=[], y=[], name=key, mode="lines" if col == 1 else "lines+markers",
                                    row=1, col=col)
            with self.live.batch():
                for tr in fig.data:
                    xs, ys = self.curves.get(tr.name, ([], []))
                    tr.x, tr.y = list(xs), list(ys)
