"""DriftExplorer: where fine-tuning moves image embeddings, with a WiSE-FT alpha slider."""
from __future__ import annotations

import html

import ipywidgets as w
import plotly.graph_objects as go
import torch
from tqdm.auto import tqdm

from ..analysis import Projector, image_features, points_table, subsample, wise_classifier
from ..analysis.distortion import ALPHAS
from ..plots import thumbnail_png
from ._helpers import LiveFigure, Messages, Panel, model_pair

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf")
HOVER_KEYS = ("class", "group", "domain", "background", "color", "place")


class DriftExplorer(Panel):
    """Image embeddings of theta0 (zero-shot, open markers) and theta_alpha (filled), projected
    to 2-D by one projector (PCA or UMAP) fit on theta0's and theta's features together.

    Features are computed once for a grid of WiSE-FT alphas; the slider moves points between
    the precomputed positions (linear interpolation between grid neighbours): no retraining, no
    re-encoding. Hovering a point shows its image and metadata (``show_sample`` does the same
    from code).
    """

    def __init__(self, clip, finetuned, task, zeroshot=None, split: str = "test", n: int = 300,
                 method: str = "pca", alphas=ALPHAS, color_by: str = "class", seed: int = 0,
                 progress: bool = True):
        alphas = sorted(float(a) for a in alphas)
        if len(alphas) < 2 or alphas[0] < 0 or alphas[-1] > 1:
            raise ValueError(f"alphas must hold at least two values in [0, 1]; got {alphas}")
        if 0.0 not in alphas or 1.0 not in alphas:
            raise ValueError("alphas must include 0 (zero-shot) and 1 (fine-tuned)")
        theta0, theta = model_pair(clip, finetuned, task, zeroshot)
        self.task, self.split_name, self.alphas = task, split, alphas
        small = subsample(task, n, seed=seed)
        from ..analysis import resolve_split
        self.split, _ = resolve_split(small, split)
        self.points = points_table(torch.zeros(len(self.split), 2), small, split=split)  # metadata rows
        feats = []
        for a in tqdm(alphas, desc="features per alpha", disable=not progress, leave=False):
            model = theta0 if a == 0 else theta if a == 1 else wise_classifier(theta0, theta, a)
            feats.append(image_features(model, self.split, clip.preprocess))
        self.features = dict(zip(alphas, feats))
        self.projector = Projector(method, seed=seed).fit([self.features[0.0], self.features[1.0]])
        self.coords = {a: self.projector.transform(f) for a, f in self.features.items()}
        head0, head1 = theta0.head.detach().float().cpu(), theta.head.detach().float().cpu()
        self.pred0 = (self.features[0.0] @ head0).argmax(1)
        self.pred1 = (self.features[1.0] @ head1).argmax(1)
        keys = ["class"] + [k for k in ("group", "domain", "place", "background", "color")
                            if k in self.points[0] and len({p[k] for p in self.points}) > 1
                            and (k != "group" or task.has_groups)]
        self._hover_keys = [k for k in HOVER_KEYS if k in self.points[0] and (k != "group" or task.has_groups)]
        if color_by not in keys:
            raise ValueError(f"color_by={color_by!r}: choose from {', '.join(keys)}")
        self.message = Messages()
        self.alpha_slider = w.FloatSlider(value=alphas[-1], min=0.0, max=1.0, step=0.05, description="WiSE α",
                                          continuous_update=True, readout_format=".2f",
                                          tooltip="0 = zero-shot weights, 1 = fine-tuned weights")
        self.alpha_slider.observe(lambda ch: self.set_alpha(ch["new"]), names="value")
        self.color_box = w.Dropdown(options=keys, value=color_by, description="colour by")
        self.color_box.observe(lambda ch: self.set_color_by(ch["new"]), names="value")
        self.image = w.Image(format="png", width=96, height=96)
        self.info = w.HTML()
        fig = go.Figure()
        used = self.projector.method_used.upper()
        fig.update_layout(height=480, title=f"{used} of image embeddings", margin=dict(l=40, r=10, t=50, b=40),
                          xaxis_title=f"{used} 1", yaxis_title=f"{used} 2")
        self.live = LiveFigure(fig)
        self.alpha = alphas[-1]
        self._color_by = None
        self.set_color_by(color_by)
        self.widget = w.VBox([
            w.HTML("<b>DriftExplorer</b>: how fine-tuning moves image embeddings. Open markers: zero-shot θ0; "
                   "filled: θα = (1 − α)·θ0 + α·θ (one projection, fit on θ0 and θ)"),
            w.HBox([self.color_box, self.alpha_slider]), self.message.widget,
            w.HBox([self.live.widget, w.VBox([self.image, self.info], layout=w.Layout(width="240px"))]),
        ])
        self.widget.add_class("rftlab-driftexplorer")
        self.show_sample(0)
        self.info.value = "<i>hover a point to see its image</i><br>" + self.info.value
        self.message(f"{len(self.split)} images of split {split!r}; projector {self.projector.method_used}, "
                     f"{len(alphas)} alphas precomputed")


    # ------------------------------------------------------------------ public actions
    def positions(self, alpha: float) -> torch.Tensor:
        """(N, 2) positions at ``alpha``: interpolated between the two nearest precomputed alphas."""
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1]; got {alpha}")
        grid = self.alphas
        hi = next(i for i, a in enumerate(grid) if a >= alpha - 1e-12)
        if abs(grid[hi] - alpha) < 1e-12 or hi == 0:
            return self.coords[grid[hi]]
        a0, a1 = grid[hi - 1], grid[hi]
        t = (alpha - a0) / (a1 - a0)
        return (1 - t) * self.coords[a0] + t * self.coords[a1]

    def set_alpha(self, alpha: float) -> None:
        """Move the filled points to theta_alpha (cached features; nothing is recomputed)."""
        try:
            xy = self.positions(float(alpha))
        except ValueError as err:
            self.message(str(err), "error")
            return
        self.alpha = float(alpha)
        if abs(self.alpha_slider.value - self.alpha) > 1e-9:
            self.alpha_slider.value = self.alpha
        with self.live.batch() as fig:
            for tr, idx in zip(fig.data[len(self._groups):], self._groups.values()):
                tr.x, tr.y = xy[idx, 0].tolist(), xy[idx, 1].tolist()
            fig.layout.title.text = fig.layout.title.text.split(" | ")[0] + f" | α = {self.alpha:.2f}"

    def set_color_by(self, key: str) -> None:
        """Colour the points by a metadata key (class, group, domain...)."""
        if key not in self.color_box.options:
            self.message(f"cannot colour by {key!r}; choose from {', '.join(self.color_box.options)}", "error")
            return
        if self.color_box.value != key:
            self.color_box.value = key
            return
        self._color_by = key
        groups: dict[str, list[int]] = {}
        for i, p in enumerate(self.points):
            groups.setdefault(str(p[key]), []).append(i)
        self._groups = {k: torch.tensor(v) for k, v in sorted(groups.items())}
        keys = self._hover_keys
        template = "<br>".join(f"{k}: %{{customdata[{j + 1}]}}" for j, k in enumerate(keys)) + "<extra>#%{customdata[0]}</extra>"
        xy0, xy = self.coords[0.0], self.positions(self.alpha)
        traces = []
        for filled in (False, True):
            for j, (name, idx) in enumerate(self._groups.items()):
                cd = [[int(i)] + [str(self.points[i][k]) for k in keys] for i in idx.tolist()]
                pts = xy if filled else xy0
                traces.append(go.Scatter(
                    x=pts[idx, 0].tolist(), y=pts[idx, 1].tolist(), mode="markers", customdata=cd,
                    name=f"{name}" if filled else f"{name} (θ0)", legendgroup=name, hovertemplate=template,
                    marker=dict(color=PALETTE[j % len(PALETTE)], size=7 if filled else 6, opacity=0.85 if filled else 0.4,
                                symbol="circle" if filled else "circle-open")))
        with self.live.lock:
            self.live.fig.data = ()
            self.live.fig.add_traces(traces)
            if self.live.live:
                for tr in self.live.fig.data:
                    tr.on_hover(self._on_hover)
            self.live.refresh()
        self.set_alpha(self.alpha)

    def show_sample(self, index: int) -> None:
        """Show sample ``index`` (of the explored split): its image, metadata and predictions."""
        if not 0 <= index < len(self.split):
            self.message(f"no sample {index}: the split has {len(self.split)}", "error")
            return
        self.image.value = thumbnail_png(self.split.open(index), size=96)
        p = self.points[index]
        names = self.task.classnames
        rows = [f"<b>#{index}</b>"] + [f"{k}: {html.escape(str(p[k]))}" for k in self._hover_keys]
        rows.append(f"zero-shot predicts: {html.escape(names[int(self.pred0[index])])}")
        rows.append(f"fine-tuned predicts: {html.escape(names[int(self.pred1[index])])}")
        self.info.value = "<br>".join(rows)

    def _on_hover(self, trace, points, state):
        if points.point_inds:
            self.show_sample(int(trace.customdata[points.point_inds[0]][0]))
