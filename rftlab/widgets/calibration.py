"""CalibrationView: reliability diagrams and confidence histograms, with a temperature slider."""
from __future__ import annotations

import math

import ipywidgets as w

from ..analysis import apply_temperature, confidence_histogram, fit_temperature, reliability
from ..classifier import ClipClassifier, as_classifier
from ..evaluation import check_compatible, predict
from ..plots import confidence_trace, plot_reliability, reliability_trace
from ._helpers import LiveFigure, Messages, Panel, html_table

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
TABLE_COLUMNS = ["model", "test set", "accuracy", "ECE (T=1)", "ECE (T)", "T fit on val", "ECE (T fit)"]


class CalibrationView(Panel):
    """Reliability diagram (accuracy against confidence per bin) and confidence histogram for
    chosen models on a chosen test set; the temperature slider divides every logit by T.

    Logits are computed once per model and set (val included, for fitting T); the slider only
    re-bins them. ``models``: {name: ClipClassifier} (or one classifier / TrainResult / TrainPanel);
    the zero-shot classifier is added as ``"zero-shot"`` unless ``zeroshot=False``. The figure is
    :func:`rftlab.plots.plot_reliability`'s with the confidence panel; its traces are updated in place.
    """

    def __init__(self, clip, models, task, zeroshot: bool = True, n_bins: int = 15, hist_bins: int = 20):
        if not isinstance(models, dict):
            models = {"fine-tuned": models}
        models = {name: as_classifier(m, f"model {name!r}") for name, m in models.items()}
        if zeroshot and "zero-shot" not in models:
            models = {"zero-shot": ClipClassifier.zeroshot(clip, task.classnames, task.templates), **models}
        if not models:
            raise ValueError("give at least one model to calibrate")
        for name, m in models.items():
            try:
                check_compatible(clip, task, m)
            except ValueError as err:
                raise ValueError(f"model {name!r}: {err}") from None
        self.task, self.n_bins, self.hist_bins = task, n_bins, hist_bins
        self.sets = {**task.eval_splits(), "val": task.val}
        # scored as Task.evaluate scores them: masked to a class subset or merged by a class pool
        scored = {(name, k): s.score(predict(m, s, clip.preprocess)) for name, m in models.items()
                  for k, s in self.sets.items()}
        self.logits = {key: z for key, (z, _) in scored.items()}
        self.labels = {k: y for (_, k), (_, y) in scored.items()}
        self.fitted = {name: fit_temperature(self.logits[(name, "val")], self.labels["val"]) for name in models}
        self.models = list(models)
        self.message = Messages()
        self.model_box = w.SelectMultiple(options=self.models, value=tuple(self.models), description="models",
                                          rows=min(4, len(self.models)), layout=w.Layout(width="280px"))
        self.set_box = w.Dropdown(options=list(task.eval_splits()), value="id", description="test set",
                                  tooltip="id = the ID test set; the others are OOD test sets")
        self.temp_slider = w.FloatLogSlider(value=1.0, base=10, min=-1, max=1, step=0.01, description="temperature",
                                            style={"description_width": "initial"}, readout_format=".2f", continuous_update=True,
                                            tooltip="softmax(logits / T): T > 1 softens, T < 1 sharpens")
        self.fit_button = w.Button(description="T fit on val", icon="magic",
                                   tooltip="set T to the value that minimises the val NLL of the first chosen model")
        self.model_box.observe(lambda ch: self.show(models=ch["new"]), names="value")
        self.set_box.observe(lambda ch: self.show(test_set=ch["new"]), names="value")
        self.temp_slider.observe(lambda ch: self.set_temperature(ch["new"]), names="value")
        self.fit_button.on_click(lambda _: self.fit_temperature())
        self.temperature = 1.0
        self.chosen: tuple[str, ...] = tuple(self.models)
        self.test_set = "id"
        fig = self._figure(self.chosen)
        fig.update_layout(height=380, margin=dict(l=50, r=10, t=50, b=40), legend=dict(orientation="h", y=-0.2))
        self.live = LiveFigure(fig)
        self.table = w.HTML()
        self.widget = w.VBox([
            w.HTML("<b>CalibrationView</b>: is confidence matched by accuracy?"),
            w.HBox([self.model_box, w.VBox([self.set_box, self.temp_slider, self.fit_button])]),
            self.message.widget, self.live.widget, self.table,
        ])
        self.widget.add_class("rftlab-calibrationview")
        self.show()

    def _curves(self, name: str, t: float) -> tuple[dict, list[dict]]:
        """(reliability, confidence histogram rows) of model ``name`` on the chosen test set at T = t."""
        logits, labels = apply_temperature(self.logits[(name, self.test_set)], t), self.labels[self.test_set]
        return reliability(logits, labels, self.n_bins), confidence_histogram(logits, labels, self.hist_bins)

    def _figure(self, models):
        """plot_reliability's figure of ``models`` at the current temperature, each model in its own colour."""
        curves = {name: self._curves(name, self.temperature) for name in models}
        return plot_reliability({n: c[0] for n, c in curves.items()}, confidence={n: c[1] for n, c in curves.items()},
                                colors={n: PALETTE[self.models.index(n) % len(PALETTE)] for n in models})

    # ------------------------------------------------------------------ public actions
    def show(self, models=None, test_set: str | None = None) -> None:
        """Choose the models (names) and the test set ("id" or an OOD set's name) to draw."""
        models = tuple(self.chosen if models is None else models)
        test_set = test_set or self.test_set
        bad = [m for m in models if m not in self.models]
        if bad or test_set not in self.task.eval_splits():
            self.message(f"unknown model(s) {bad} (have {', '.join(self.models)})" if bad else
                         f"unknown test set {test_set!r}; choose from {', '.join(self.task.eval_splits())}", "error")
            return
        if not models:
            self.message("choose at least one model", "error")
            return
        self.chosen, self.test_set = models, test_set
        if tuple(self.model_box.value) != models:
            self.model_box.value = models
        if self.set_box.value != test_set:
            self.set_box.value = test_set
        with self.live.lock:
            self.live.fig.data = ()
            self.live.fig.add_traces(list(self._figure(models).data))
        self.set_temperature(self.temperature)

    def set_temperature(self, temperature: float) -> None:
        """Redraw every chosen model with its logits divided by ``temperature`` (cached logits)."""
        try:
            t = float(temperature)
            if not t > 0 or math.isinf(t):
                raise ValueError(f"temperature must be a positive number; got {temperature}")
        except (TypeError, ValueError) as err:
            self.message(str(err), "error")
            return
        self.temperature = t
        lo, hi = math.floor(math.log10(t) * 10) / 10, math.ceil(math.log10(t) * 10) / 10
        if lo < self.temp_slider.min:  # widen the slider to reach a fitted T outside its range
            self.temp_slider.min = lo
        if hi > self.temp_slider.max:
            self.temp_slider.max = hi
        if abs(self.temp_slider.value - t) > 1e-9 * max(1.0, t):
            self.temp_slider.value = t
        labels = self.labels[self.test_set]
        rows, eces = [], []
        k = len(self.chosen)
        with self.live.batch() as fig:
            for j, name in enumerate(self.chosen):
                logits = self.logits[(name, self.test_set)]
                rel, hist = self._curves(name, t)
                fig.data[1 + j].update(reliability_trace(name, rel))       # after the diagonal: lines, then bars
                fig.data[1 + k + j].update(confidence_trace(hist))
                t_fit = self.fitted[name]
                rows.append({"model": name, "test set": self.test_set,
                             "accuracy": (logits.argmax(1) == labels).float().mean().item(),
                             "ECE (T=1)": reliability(logits, labels, self.n_bins)["ece"], "ECE (T)": rel["ece"],
                             "T fit on val": t_fit,
                             "ECE (T fit)": reliability(apply_temperature(logits, t_fit), labels, self.n_bins)["ece"]})
                eces.append(f"{name} {rel['ece']:.3f}")
            fig.layout.title.text = f"{self.test_set} test set, T = {t:.2f}"
        self.rows = rows
        self.table.value = html_table(rows, TABLE_COLUMNS)
        self.message(f"ECE at T = {t:.2f}: " + ", ".join(eces))

    def fit_temperature(self) -> float:
        """Set T to the temperature fit on val for the first chosen model; returns it."""
        t = self.fitted[self.chosen[0]]
        self.set_temperature(t)
        return t
