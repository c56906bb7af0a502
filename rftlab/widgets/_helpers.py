"""Pieces every panel shares: live figures with a static fallback, messages, throttling,
HTML tables and hyperparameter boxes."""
from __future__ import annotations

import contextlib
import html
import json
import threading
import time
import warnings

import ipywidgets as w
import plotly.graph_objects as go

from ..classifier import ClipClassifier, as_classifier
from ..evaluation import check_compatible

_fallback_warned = False
FALLBACK_MESSAGE = ("plotly's FigureWidget needs the 'anywidget' package, which is missing: rftlab's panels "
                    "show static figures that are redrawn on each update (pip install anywidget for live ones)")


def figure_widget(fig: go.Figure) -> tuple[go.Figure, bool]:
    """``fig`` as a live ``go.FigureWidget``, or the static figure itself (with a one-time
    warning) when FigureWidget cannot be built. Returns (figure, live)."""
    global _fallback_warned
    try:
        return go.FigureWidget(fig), True
    except ImportError:
        if not _fallback_warned:
            warnings.warn(FALLBACK_MESSAGE, stacklevel=3)
            _fallback_warned = True
        return fig, False


class LiveFigure:
    """A figure and the widget that shows it: the FigureWidget itself, or an Output widget
    holding the static figure's rendering, refreshed by :meth:`refresh`."""

    def __init__(self, fig: go.Figure):
        self.fig, self.live = figure_widget(fig)
        self.widget = self.fig if self.live else w.Output()
        self.lock = threading.RLock()
        self.refresh()

    @contextlib.contextmanager
    def batch(self):
        """Group updates into one message (live) or one redraw (static)."""
        with self.lock:
            ctx = self.fig.batch_update() if self.live else contextlib.nullcontext()
            with ctx:
                yield self.fig
            self.refresh()

    def refresh(self) -> None:
        if self.live:
            return
        bundle = json.loads(self.fig.to_json())
        self.widget.outputs = ({"output_type": "display_data", "metadata": {},
                                "data": {"application/vnd.plotly.v1+json": bundle,
                                         "text/plain": "<plotly figure>"}},)


class Throttle:
    """True at most once per ``interval`` seconds (the first call is always due)."""

    def __init__(self, interval: float):
        self.interval = interval
        self.last = -float("inf")

    def due(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self.last >= self.interval:
            self.last = now
            return True
        return False


class Messages:
    """A panel's message line: the last message in an HTML widget, every message in a list."""

    COLORS = {"info": "#333", "error": "#b00020", "ok": "#1b5e20"}

    def __init__(self):
        self.widget = w.HTML()
        self.log: list[tuple[str, str]] = []

    def __call__(self, text: str, kind: str = "info") -> None:
        self.log.append((kind, text))
        self.widget.value = f'<span style="color:{self.COLORS.get(kind, "#333")}">{html.escape(text)}</span>'

    @property
    def last(self) -> str:
        return self.log[-1][1] if self.log else ""


def fmt(v, digits: int = 3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.{digits}f}" if abs(v) >= 10 ** -digits or v == 0 else f"{v:.2g}"
    return str(v)


def html_table(rows: list[dict], columns: list[str], empty: str = "nothing yet", digits: dict | None = None) -> str:
    """A small HTML table (no pandas) of ``rows`` restricted to ``columns``; floats get 3 digits
    unless ``digits`` says otherwise for their column."""
    digits = digits or {}
    if not rows:
        return f"<i>{html.escape(empty)}</i>"
    head = "".join(f"<th style='padding:2px 8px;text-align:left'>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td style='padding:2px 8px'>{html.escape(fmt(r.get(c), digits.get(c, 3)))}</td>"
                           for c in columns)
                   + "</tr>" for r in rows)
    return f"<table style='border-collapse:collapse;font-size:12px'><tr>{head}</tr>{body}</table>"


def hparam_widget(name: str, hp, value=None) -> w.Widget:
    """An input box for one method hyperparameter: typed by its default, its doc, default and
    range in the tooltip. Out-of-range values are accepted here and reported at Run."""
    v = hp.default if value is None else value
    rng = f"[{'-inf' if hp.low is None else hp.low}, {'inf' if hp.high is None else hp.high}]"
    tip = f"{hp.doc} | default {hp.default!r}" + (f", paper {hp.paper!r}" if hp.paper is not None else "") + f", range {rng}" \
        + (f", or {' / '.join(map(str, hp.choices))}" if getattr(hp, "choices", ()) else "")
    kw = dict(description=name, tooltip=tip, style={"description_width": "110px"},
              layout=w.Layout(width="260px"))
    if isinstance(v, bool):
        return w.Checkbox(value=v, indent=False, **kw)
    if isinstance(v, int):
        return w.IntText(value=v, **kw)
    if isinstance(v, float):
        return w.FloatText(value=v, **kw)
    return w.Text(value="" if v is None else str(v), **kw)


def model_pair(clip, finetuned, task, zeroshot=None):
    """(theta0, theta) for a task: ``zeroshot`` defaults to ``clip``'s zero-shot classifier for
    the task's classes; both are checked against the task and put on theta's device."""
    theta = as_classifier(finetuned, "the fine-tuned model")
    device = theta.head.device
    if zeroshot is None:
        theta0 = ClipClassifier.zeroshot(clip, task.classnames, task.templates)
    else:
        theta0 = as_classifier(zeroshot, "the zero-shot model")
    if theta0.head.device != device:
        import copy
        theta0 = copy.deepcopy(theta0).to(device)
    for name, m in (("zero-shot", theta0), ("fine-tuned", theta)):
        try:
            check_compatible(clip, task, m)
        except ValueError as err:
            raise ValueError(f"{name} model: {err}") from None
    return theta0, theta


class Panel:
    """What every panel shares: ``widget`` (the box to display), ``live`` (its LiveFigure),
    ``message`` (its message line) and a short text form for frontends without widgets."""

    widget: w.Widget
    live: LiveFigure
    message: Messages

    @property
    def fig(self):
        """The panel's figure (a FigureWidget, or a static go.Figure without anywidget)."""
        return self.live.fig

    def _repr_mimebundle_(self, **kwargs):
        bundle = dict(self.widget._repr_mimebundle_(**kwargs))
        bundle["text/plain"] = f"{type(self).__name__} (an interactive panel: run the notebook in JupyterLab to use it)"
        return bundle
