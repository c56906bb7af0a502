"""Figures for rftlab's analyses: one function per figure, computation kept in :mod:`rftlab.analysis`.

Every function takes the rows (list of dicts, or a pandas DataFrame) or result object an
analysis returns and gives back a plotly ``go.Figure`` (not shown; wrap it in
``go.FigureWidget`` for live updates). Trace names are stable so widgets can update them:
they are the split, model or method names found in the rows. :func:`plot_summary` is the
one static figure (matplotlib / seaborn), for papers and reports. :func:`save_figure` writes a
plotly figure to files (HTML, and PNG when kaleido is installed), as run folders keep them.
"""
from __future__ import annotations

import io
import math
import sys
from pathlib import Path
from typing import Mapping, Sequence

_TEMPLATE = "plotly_white"


def _go():
    import plotly.graph_objects as go
    return go


def _rows(data) -> list[dict]:
    if hasattr(data, "to_dict"):           # a pandas DataFrame
        return data.to_dict("records")
    if isinstance(data, Mapping):
        raise TypeError("expected rows (a list of dicts) or a DataFrame; got a dict")
    rows = list(data)
    if not rows:
        raise ValueError("nothing to plot: the rows are empty")
    return rows


def _unique(rows, key) -> list:
    return list(dict.fromkeys(r.get(key) for r in rows))


def _figure(title: str, xaxis: str, yaxis: str, **layout):
    go = _go()
    fig = go.Figure()
    fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis, template=_TEMPLATE, **layout)
    return fig


_METRIC_LABELS = {"cosine_drift": "1 - cosine(theta0, theta)", "cosine": "cosine(theta0, theta)",
                  "cka": "linear CKA(theta0, theta)", "relative_change": "||H - H0|| / ||H0||"}


def plot_layer_drift(rows, metric: str = "cosine_drift"):
    """Lines over layers (depth order) of a :func:`~rftlab.analysis.layer_drift` /
    :func:`~rftlab.analysis.feature_distortion` metric, one trace per split."""
    rows = _rows(rows)
    if metric not in rows[0]:
        raise ValueError(f"rows have no {metric!r}; choose one of {', '.join(k for k in _METRIC_LABELS if k in rows[0])}")
    fig = _figure(f"Feature drift per layer: {_METRIC_LABELS.get(metric, metric)}", "layer",
                  _METRIC_LABELS.get(metric, metric))
    for split in _unique(rows, "split"):
        sub = sorted((r for r in rows if r.get("split") == split), key=lambda r: r["depth"])
        fig.add_scatter(x=[r["layer"] for r in sub], y=[r[metric] for r in sub], mode="lines+markers",
                        name=str(split) if split is not None else metric)
    return fig


def plot_cka(rows):
    """Linear CKA between theta0 and theta per layer, grouped bars by split (ID vs OOD)."""
    rows = _rows(rows)
    fig = _figure("Representation similarity to theta0 per layer (linear CKA)", "layer", "linear CKA",
                  barmode="group", yaxis_range=[0, 1.05])
    for split in _unique(rows, "split"):
        sub = sorted((r for r in rows if r.get("split") == split), key=lambda r: r["depth"])
        fig.add_bar(x=[r["layer"] for r in sub], y=[r["cka"] for r in sub], name=str(split) if split else "cka")
    return fig


def plot_wise(curve=None, points=None, y: str = "mean_ood_acc"):
    """ID vs mean OOD accuracy: the WiSE-FT curve (rows of :func:`~rftlab.analysis.wise_curve`,
    labelled by alpha) and methods placed as points (rows of
    :func:`~rftlab.analysis.effective_robustness`), with the zero-shot-to-FT line dashed. ``y``:
    the metric on the vertical axis (``worst_group_acc`` for a task without OOD sets)."""
    if curve is None and points is None:
        raise ValueError("give a WiSE-FT curve, method points, or both")
    fig = _figure("ID vs OOD accuracy", "ID accuracy", {"mean_ood_acc": "mean OOD accuracy"}.get(y, y))
    if curve is not None:
        curve = _rows(curve)
        fig.add_scatter(x=[r["id_acc"] for r in curve], y=[r[y] for r in curve], mode="lines+markers+text",
                        text=[f"{r['alpha']:g}" for r in curve], textposition="top left", name="WiSE-FT (alpha)")
    if points is not None:
        points = _rows(points)
        if "line_ood" in points[0]:
            line = sorted(points, key=lambda r: r["id_acc"])
            fig.add_scatter(x=[r["id_acc"] for r in line], y=[r["line_ood"] for r in line], mode="lines",
                            line={"dash": "dash", "color": "gray"}, name="zero-shot to FT line")
        hover = [f"{r['method']}<br>effective robustness {r['effective_robustness']:+.3f}" if "effective_robustness" in r
                 else r["method"] for r in points]
        fig.add_scatter(x=[r["id_acc"] for r in points], y=[r[y] for r in points], mode="markers+text",
                        text=[r["method"] for r in points], textposition="bottom right", hovertext=hover,
                        marker={"size": 11, "symbol": "diamond"}, name="methods")
    return fig


def plot_effective_robustness(points):
    """Horizontal bars of effective robustness (OOD accuracy above the zero-shot-to-FT line) per method."""
    points = sorted(_rows(points), key=lambda r: r["effective_robustness"])
    fig = _figure("Effective robustness (OOD accuracy above the zero-shot to FT line)",
                  "effective robustness", "method")
    fig.add_bar(y=[r["method"] for r in points], x=[r["effective_robustness"] for r in points], orientation="h",
                marker_color=["#2a9d8f" if r["effective_robustness"] >= 0 else "#e76f51" for r in points],
                name="effective robustness")
    return fig


def plot_group_accuracy(rows):
    """Grouped bars of accuracy per group, one trace per model (rows of
    :func:`~rftlab.analysis.group_table`); each model's worst group has a dark outline."""
    rows = _rows(rows)
    fig = _figure("Accuracy per group", "group", "accuracy", barmode="group", yaxis_range=[0, 1.05])
    for model in _unique(rows, "model"):
        sub = [r for r in rows if r["model"] == model]
        fig.add_bar(x=[r["group"] for r in sub], y=[r["acc"] for r in sub], name=str(model),
                    marker_line_width=[3 if r.get("worst") else 0 for r in sub], marker_line_color="black",
                    hovertext=[f"n={r.get('n')}" for r in sub])
    return fig


def plot_alignment(rows, value: str | None = None):
    """Heatmap of description x group of an alignment column: ``alignment`` for
    :func:`~rftlab.analysis.description_alignment` rows, ``change`` (default) for
    :func:`~rftlab.analysis.description_shift` rows (or ``before`` / ``after``)."""
    rows = _rows(rows)
    value = value or ("change" if "change" in rows[0] else "alignment")
    if value not in rows[0]:
        raise ValueError(f"rows have no {value!r} column")
    descs, groups = _unique(rows, "description"), _unique(rows, "group")
    cell = {(r["description"], r["group"]): r[value] for r in rows}
    z = [[cell.get((d, g), math.nan) for g in groups] for d in descs]
    go = _go()
    diverging = value == "change"
    fig = go.Figure(go.Heatmap(z=z, x=[str(g) for g in groups], y=descs, colorscale="RdBu" if diverging else "Viridis",
                               zmid=0 if diverging else None, colorbar_title=value, name=value))
    fig.update_layout(title=f"Description alignment per group ({value})", xaxis_title="group",
                      yaxis_title="description", template=_TEMPLATE)
    return fig


def plot_ranking(rows, top: int = 15, value: str = "change"):
    """Horizontal bars of the ``top`` descriptions of :func:`~rftlab.analysis.rank_descriptions`
    by ``value`` (``change`` in pull, or ``gap_change``), largest on top."""
    rows = sorted(_rows(rows), key=lambda r: r[value], reverse=True)[:top]
    fig = _figure(f"Descriptions fine-tuning pulled closer ({value})", value, "description")
    fig.add_bar(y=[r["description"] for r in rows][::-1], x=[r[value] for r in rows][::-1], orientation="h", name=value)
    return fig


def plot_shortcuts(result, top: int = 15):
    """Horizontal bars of the ``top`` descriptions of :func:`~rftlab.analysis.discover_shortcuts`
    (a ``Shortcuts`` or its ranking rows): score with ± one standard error, strongest on top;
    findings (rows that pass the rule) in red, the rest grey."""
    rows = list(result.ranking if hasattr(result, "ranking") else _rows(result))[:top]
    if not rows:
        raise ValueError("nothing to plot: the ranking is empty")
    fig = _figure("Shortcuts: how much the classifier relies on each description", "score", "description")
    rows = rows[::-1]
    fig.add_bar(y=[f"{r['description']} → {r['toward']}" for r in rows], x=[r["score"] for r in rows],
                error_x=dict(type="data", array=[r["stderr"] for r in rows]), orientation="h", name="score",
                marker_color=["#d62828" if r["significant"] else "#adb5bd" for r in rows],
                hovertext=[f"z {r['z']:.1f}; {r['class']}: acc {r['group_acc']:.2f} in group (n={r['n']}) vs "
                           f"{r['rest_acc']:.2f}" for r in rows])
    fig.update_layout(height=max(300, 28 * len(rows) + 120))
    return fig


def _context_rows(shift):
    return shift.table() if hasattr(shift, "table") else _rows(shift)


def plot_contexts(shift):
    """Mean context probability under theta0 and theta, per context (a
    :class:`~rftlab.analysis.ContextShift` or its ``table()`` rows)."""
    rows = _context_rows(shift)
    fig = _figure("Context distribution (mean over images)", "context", "mean probability", barmode="group")
    fig.add_bar(x=[r["context"] for r in rows], y=[r["p0"] for r in rows], name="theta0")
    fig.add_bar(x=[r["context"] for r in rows], y=[r["p"] for r in rows], name="theta")
    return fig


def plot_context_kl(shift, nbins: int = 30):
    """Histogram of the per-image KL(p_ctx theta0 || p_ctx theta) (a ContextShift or a 1-D tensor/list)."""
    kl = shift.kl if hasattr(shift, "kl") else shift
    values = [float(v) for v in kl]
    fig = _figure("Per-image context KL(theta0 || theta)", "KL", "images")
    fig.add_histogram(x=values, nbinsx=nbins, name="context KL")
    return fig


def plot_context_recognition(rows):
    """Grouped bars of zero-shot context recognition accuracy per factor, one trace per model
    (rows of :func:`~rftlab.analysis.context_recognition_table`)."""
    rows = _rows(rows)
    fig = _figure("Zero-shot recognition of the context", "factor", "accuracy", barmode="group",
                  yaxis_range=[0, 1.05])
    for model in _unique(rows, "model"):
        sub = [r for r in rows if r["model"] == model]
        fig.add_bar(x=[r["factor"] for r in sub], y=[r["accuracy"] for r in sub], name=str(model))
    return fig


def reliability_trace(name: str, reliability) -> dict:
    """The data of one model's line in :func:`plot_reliability` (points of the non-empty bins, marker
    sizes by count, the name with the ECE), as properties a live figure's trace is updated with."""
    bins = [b for b in reliability["bins"] if b["count"] > 0]
    return {"x": [b["confidence"] for b in bins], "y": [b["accuracy"] for b in bins],
            "marker": {"size": [4 + 16 * math.sqrt(b["count"] / reliability["n"]) for b in bins]},
            "hovertext": [f"n={b['count']}" for b in bins], "name": f"{name} (ECE {reliability['ece']:.3f})"}


def confidence_trace(rows) -> dict:
    """The data of one model's bars in :func:`plot_reliability`'s confidence panel, from the rows of
    :func:`~rftlab.analysis.confidence_histogram` (one split)."""
    return {"x": [(r["lower"] + r["upper"]) / 2 for r in rows], "y": [r["fraction"] for r in rows],
            "width": [r["upper"] - r["lower"] for r in rows]}


def plot_reliability(reliability, confidence: Mapping | None = None, colors: Mapping[str, str] | None = None):
    """Reliability diagram: accuracy against mean confidence per bin, with the diagonal.
    ``reliability``: one :func:`~rftlab.analysis.reliability` result or {name: result}.

    ``confidence`` ({name: :func:`~rftlab.analysis.confidence_histogram` rows}, same names) adds a
    second panel with each model's confidence histogram. Traces: the diagonal, then one line per
    model (:func:`reliability_trace`), then with ``confidence`` one bar trace per model
    (:func:`confidence_trace`), named by the model; a model's line and bars share its colour
    (``colors``: {name: colour}, default plotly's palette in order) and legend group."""
    go = _go()
    items = list(reliability.items()) if "bins" not in reliability else [("model", reliability)]
    palette = ("#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880")
    color = {name: (colors or {}).get(name, palette[i % len(palette)]) for i, (name, _) in enumerate(items)}
    if confidence is None:
        fig = _figure("Reliability diagram", "confidence", "accuracy", xaxis_range=[0, 1], yaxis_range=[0, 1.02])
        cell = {}
    else:
        missing = [name for name, _ in items if name not in confidence]
        if missing:
            raise ValueError(f"no confidence histogram for {missing}: give one per model of the reliability diagram")
        from plotly.subplots import make_subplots
        fig = make_subplots(rows=1, cols=2, subplot_titles=("reliability diagram", "confidence histogram"))
        fig.update_layout(title="Reliability diagram", template=_TEMPLATE, barmode="overlay")
        fig.update_xaxes(title_text="confidence", range=[0, 1])
        fig.update_yaxes(title_text="accuracy", range=[0, 1.02], row=1, col=1)
        fig.update_yaxes(title_text="fraction of images", row=1, col=2)
        cell = {"row": 1, "col": 1}
    fig.add_trace(go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line={"dash": "dash", "color": "gray"},
                             name="perfect calibration", hoverinfo="skip"), **cell)
    for name, rel in items:
        line = go.Scatter(mode="lines+markers", line={"color": color[name]}, marker={"color": color[name]},
                          legendgroup=name)
        fig.add_trace(line.update(reliability_trace(name, rel)), **cell)
    for name, _ in items if confidence is not None else ():
        fig.add_trace(go.Bar(name=name, legendgroup=name, showlegend=False, marker_color=color[name], opacity=0.6,
                             **confidence_trace(confidence[name])), row=1, col=2)
    return fig


def plot_confidence(rows):
    """Confidence histograms, one trace per split (rows of :func:`~rftlab.analysis.confidence_histogram`)."""
    rows = _rows(rows)
    fig = _figure("Top-label confidence", "confidence", "fraction of images", barmode="overlay")
    for split in _unique(rows, "split"):
        sub = [r for r in rows if r["split"] == split]
        fig.add_bar(x=[(r["lower"] + r["upper"]) / 2 for r in sub], y=[r["fraction"] for r in sub],
                    width=[r["upper"] - r["lower"] for r in sub], opacity=0.6, name=str(split))
    return fig


def plot_calibration_vs_ood(rows, x: str = "id_ece", y: str = "mean_ood_error"):
    """Scatter of ID calibration error against OOD error across methods (rows of
    :func:`~rftlab.analysis.calibration_vs_ood`)."""
    rows = [r for r in _rows(rows) if r.get(x) is not None and r.get(y) is not None]
    if not rows:
        raise ValueError(f"no row has both {x!r} and {y!r} (a task without OOD sets has no OOD error)")
    fig = _figure("ID calibration vs OOD error", x.replace("_", " "), y.replace("_", " "))
    fig.add_scatter(x=[r[x] for r in rows], y=[r[y] for r in rows], mode="markers+text",
                    text=[r["method"] for r in rows], textposition="top center", marker={"size": 11}, name="methods")
    return fig


def plot_embedding(points, color: str = "class", arrows: bool = False):
    """Scatter of projected embeddings (an :class:`~rftlab.analysis.EmbeddingDrift` or its
    ``points``): colour by a column (class, group, domain, place...), circles for theta0 and
    crosses for theta; one trace per (model, colour value), named ``"<model>: <value>"``.
    ``arrows`` draws a faint segment from each image's theta0 point to its theta point."""
    rows = _rows(points.points if hasattr(points, "points") else points)
    if color not in rows[0]:
        raise ValueError(f"points have no column {color!r}; choose one of {', '.join(k for k in rows[0] if k not in ('x', 'y'))}")
    fig = _figure(f"Image embeddings coloured by {color}", "component 1", "component 2")
    palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
               "#bcbd22", "#17becf"]
    values = _unique(rows, color)
    models = _unique(rows, "model")
    if arrows and len(models) == 2:
        a = {r["index"]: r for r in rows if r["model"] == models[0]}
        xs, ys = [], []
        for r in rows:
            if r["model"] == models[1] and r["index"] in a:
                xs += [a[r["index"]]["x"], r["x"], None]
                ys += [a[r["index"]]["y"], r["y"], None]
        fig.add_scatter(x=xs, y=ys, mode="lines", line={"width": 0.5, "color": "lightgray"}, name="drift",
                        hoverinfo="skip")
    symbols = ["circle", "x", "diamond", "square"]
    for mi, model in enumerate(models):
        for vi, v in enumerate(values):
            sub = [r for r in rows if r["model"] == model and r[color] == v]
            if sub:
                fig.add_scatter(x=[r["x"] for r in sub], y=[r["y"] for r in sub], mode="markers",
                                marker={"color": palette[vi % len(palette)], "symbol": symbols[mi % len(symbols)],
                                        "size": 6, "opacity": 0.75},
                                name=f"{model}: {v}", legendgroup=str(v), customdata=[r["index"] for r in sub])
    return fig


def plot_summary(drift=None, reliability=None, groups=None, figsize: Sequence[float] | None = None):
    """A static one-row summary (matplotlib + seaborn) of whichever is given: layer drift rows,
    a reliability result ({name: result} or one), group-table rows. Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns
    panels = [p for p in (("drift", drift), ("reliability", reliability), ("groups", groups)) if p[1] is not None]
    if not panels:
        raise ValueError("give at least one of drift, reliability, groups")
    fig, axes = plt.subplots(1, len(panels), figsize=figsize or (4.5 * len(panels), 3.6), squeeze=False)
    for ax, (kind, data) in zip(axes[0], panels):
        if kind == "drift":
            rows = _rows(data)
            sns.lineplot(x=[r["depth"] for r in rows], y=[r["cosine_drift"] for r in rows],
                         hue=[r.get("split", "all") for r in rows], marker="o", ax=ax)
            ax.set(xlabel="layer (depth)", ylabel="1 - cosine", title="Feature drift")
        elif kind == "reliability":
            items = data.items() if "bins" not in data else [("model", data)]
            ax.plot([0, 1], [0, 1], "--", color="gray")
            for name, rel in items:
                bins = [b for b in rel["bins"] if b["count"] > 0]
                ax.plot([b["confidence"] for b in bins], [b["accuracy"] for b in bins], "o-",
                        label=f"{name} (ECE {rel['ece']:.3f})")
            ax.set(xlabel="confidence", ylabel="accuracy", title="Reliability", xlim=(0, 1), ylim=(0, 1.02))
            ax.legend(fontsize=8)
        else:
            rows = _rows(data)
            sns.barplot(x=[r["group"] for r in rows], y=[r["acc"] for r in rows], hue=[r["model"] for r in rows], ax=ax)
            ax.set(xlabel="group", ylabel="accuracy", title="Group accuracy", ylim=(0, 1.05))
            ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    return fig


def history_panel(key: str) -> str:
    """Which panel a training-history key belongs to: ``"training terms"``, ``"validation"`` (``val_*``)
    or ``"learning rate"`` (``lr``); the run folders' figure and the TrainPanel split keys this way."""
    return "learning rate" if key == "lr" else "validation" if key.startswith("val_") else "training terms"


def _finite(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def plot_training(history: Sequence[Mapping], title: str = ""):
    """Training terms, validation metrics and the learning rate against the step, one panel each
    (rows of a training history: ``TrainResult.history``); non-finite values are left out."""
    go = _go()
    from plotly.subplots import make_subplots
    keys = list(dict.fromkeys(k for rec in history for k in rec if k != "step"))
    panels = [(name, [k for k in keys if history_panel(k) == name])
              for name in ("training terms", "validation", "learning rate")]
    panels = [p for p in panels if p[1]] or [("training terms", [])]
    fig = make_subplots(rows=len(panels), cols=1, shared_xaxes=True, subplot_titles=[p[0] for p in panels])
    for row, (_, names) in enumerate(panels, start=1):
        for k in names:
            pts = [(rec.get("step", i), rec[k]) for i, rec in enumerate(history) if _finite(rec.get(k))]
            fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], name=k,
                                     mode="lines+markers" if len(pts) < 30 else "lines"), row=row, col=1)
    fig.update_xaxes(title_text="step", row=len(panels), col=1)
    fig.update_layout(title=title, height=260 * len(panels) + 80, template=_TEMPLATE)
    return fig


def save_figure(fig, stem: str | Path) -> list[Path]:
    """``stem``.html (plotly.min.js written beside it, so it opens offline) and ``stem``.png
    when kaleido is installed; the paths written."""
    stem = Path(stem)
    html = stem.with_suffix(".html")
    fig.write_html(str(html), include_plotlyjs="directory")
    written = [html]
    try:
        import kaleido  # noqa: F401
    except ImportError:
        return written
    try:
        fig.write_image(str(stem.with_suffix(".png")))
        written.append(stem.with_suffix(".png"))
    except Exception as err:  # kaleido present but unusable (no browser...): the HTML is enough
        print(f"no PNG for {stem.name}: {err}", file=sys.stderr)
    return written


# ---------------------------------------------------------------------- images for display
def to_pil(image):
    """A world image (uint8 or [0, 1] float tensor (3, H, W)) or a PIL image, as a PIL image."""
    import torch
    from PIL import Image
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    t = torch.as_tensor(image)
    if t.is_floating_point():
        t = (t.clamp(0, 1) * 255).round()
    t = t.to(torch.uint8)
    if t.ndim == 3 and t.shape[0] in (1, 3):
        t = t.permute(1, 2, 0)
    return Image.fromarray(t.squeeze(-1).numpy() if t.shape[-1] == 1 else t.numpy())


def thumbnail_png(image, size: int = 96) -> bytes:
    """PNG bytes of an image scaled (nearest neighbour) so its longer side is ``size`` pixels."""
    from PIL import Image
    im = to_pil(image)
    k = size / max(im.size)
    im = im.resize((max(1, round(im.width * k)), max(1, round(im.height * k))), Image.NEAREST)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()
