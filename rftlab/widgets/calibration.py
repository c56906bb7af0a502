"""CalibrationView: reliability diagrams and confidence histograms, with a temperature slider."""
from __future__ import annotations

import math

import ipywidgets as w
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from ..analysis import apply_temperature, confidence_histogram, fit_temperature, reliability
from ..evaluation import predict
from ._helpers import LiveFigure, Messages, Panel, as_classifier, check_compatible, html_table

PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf")
TABLE_COLUMNS = ["model", "test set", "accuracy", "ECE (T=1)", "ECE (T)", "T fit on val", "ECE (T fit)"]


class CalibrationView(Panel):
    """Reliability diagram (accuracy against confidence per bin) and confidence histogram for
    chosen models on a chosen test set; the temperature slider divides every logit by T.

    Logits are computed once per model and set (val included, for fitting T); the slider only
    re-bins them. ``models``: {name: ClipClassifier} (or one classifier / TrainResult / TrainPanel);
    the zero-shot classifier is added as ``"zero-shot"`` unless ``zeroshot=False``.
    """

    def __init__(self, clip, models, task, zeroshot: bool = True, n_bins: int = 15, hist_bins: int = 20):
        from ..classifier import ClipClassifier
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
        fig = make_subplots(rows=1, cols=2, subplot_titles=("reliability diagram", "confidence histogram"))
        fig.update_layout(height=380, margin=dict(l=50, r=10, t=50, b=40), legend=dict(orientation="h", y=-0.2))
        fig.update_xaxes(title_text="confidence", range=[0, 1])
        fig.update_yaxes(title_text="accuracy", range=[0, 1.02], row=1, col=1)
        fig.update_yaxes(title_text="fraction of images", row=1, col=2)
        self.live = LiveFigure(fig)
        self.table = w.HTML()
        self.temperature = 1.0
        self.chosen: tuple[str, ...] = tuple(self.models)
        self.test_set = "id"
        self.widget = w.VBox([
            w.HTML("<b>CalibrationView</b>: is confidence matched by accuracy?"),
            w.HBox([self.model_box, w.VBox([self.set_box, self.temp_slider, self.fit_button])]),
            self.message.widget, self.live.widget, self.table,
        ])
        self.widget.add_class("rftlab-calibrationview")
        self.show()


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
        traces = [go.Scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfect calibration",
                             line=dict(dash="dot", color="gray"), hoverinfo="skip")]
        for j, name in enumerate(models):
            c = PALETTE[self.models.index(name) % len(PALETTE)]
            traces.append(go.Scatter(x=[], y=[], mode="lines+markers", name=name, legendgroup=name,
                                     line=dict(color=c), xaxis="x", yaxis="y"))
            traces.append(go.Bar(x=[], y=[], name=name, legendgroup=name, showlegend=False, marker_color=c,
                                 opacity=0.6, xaxis="x2", yaxis="y2"))
        with self.live.lock:
            self.live.fig.data = ()
            self.live.fig.add_traces(traces)
            self.live.fig.update_layout(barmode="overlay")
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
        with self.live.batch() as fig:
            for j, name in enumerate(self.chosen):
                logits = self.logits[(name, self.test_set)]
                rel = reliability(apply_temperature(logits, t), labels, self.n_bins)
                filled = [b for b in rel["bins"] if b["count"]]
                line, bars = fig.data[1 + 2 * j], fig.data[2 + 2 * j]
                line.x, line.y = [b["confidence"] for b in filled], [b["accuracy"] for b in filled]
                line.text = [f"{b['count']} images" for b in filled]
                line.name = f"{name} (ECE {rel['ece']:.3f})"
                hist = confidence_histogram(apply_temperature(logits, t), labels, self.hist_bins)
                bars.x = [(h["lower"] + h["upper"]) / 2 for h in hist]
                bars.y = [h["fraction"] for h in hist]
                bars.width = 1.0 / self.hist_bins
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
