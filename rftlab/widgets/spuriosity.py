"""SpuriosityProbe: how strongly a typed description pulls each group, before and after fine-tuning."""
from __future__ import annotations

import ipywidgets as w
import plotly.graph_objects as go

from ..analysis import description_shift, image_features, rank_descriptions, subsample
from ..analysis import resolve_split
from ._helpers import LiveFigure, Messages, Panel, html_table, model_pair

RANK_COLUMNS = ["rank", "description", "before", "after", "change", "gap_change"]


class SpuriosityProbe(Panel):
    """Type a description ("on the water", "a sketch of a {}"; ``{}`` is filled with each image's
    class name) and see its mean alignment cos(image, text) with each group's images under the
    zero-shot and the fine-tuned model. Below: the candidate descriptions whose pull fine-tuning
    increased most (:func:`rftlab.analysis.rank_descriptions`).

    Image features are encoded once; each probe only encodes its text.
    """

    def __init__(self, clip, finetuned, task, zeroshot=None, split: str = "test", by: str | None = None,
                 description: str = "on the water", n: int | None = None, top: int = 10, candidates=None):
        theta0, theta = model_pair(clip, finetuned, task, zeroshot)
        self.theta0, self.theta, self.tokenizer = theta0, theta, clip.tokenizer
        self.task = subsample(task, n) if n else task
        self.split_name = split
        s, _ = resolve_split(self.task, split)
        options = ["group"] if "group" in s.meta and task.has_groups else []
        options += [k for k in ("domain", "place", "background", "color") if k in s.meta and len(s.meta[k].unique()) > 1]
        options += ["class"]
        by = by or options[0]
        if by not in options:
            raise ValueError(f"by={by!r}: split {split!r} can be grouped by {', '.join(options)}")
        self.features0 = image_features(theta0, s, clip.preprocess)
        self.features = image_features(theta, s, clip.preprocess)
        self.message = Messages()
        self.text = w.Text(value=description, description="description", continuous_update=False,
                           placeholder="e.g. on the water, a sketch of a {}",
                           tooltip="free text; {} is replaced by each image's class name",
                           layout=w.Layout(width="420px"))
        self.by_box = w.Dropdown(options=options, value=by, description="per", layout=w.Layout(width="200px"))
        self.button = w.Button(description="Probe", icon="search")
        self.button.on_click(lambda _: self.probe(self.text.value))
        self.text.observe(lambda ch: self.probe(ch["new"]), names="value")
        self.by_box.observe(lambda ch: self.probe(self.description), names="value")
        fig = go.Figure([go.Bar(name="zero-shot θ0", x=[], y=[]), go.Bar(name="fine-tuned θ", x=[], y=[])])
        fig.update_layout(barmode="group", height=340, margin=dict(l=50, r=10, t=50, b=40),
                          yaxis_title="mean cos(image, description)", legend=dict(orientation="h", x=1, xanchor="right", y=1.02, yanchor="bottom"))
        self.live = LiveFigure(fig)
        self.rows: list[dict] = []
        self.description = description
        self.ranking: list[dict] = []
        self.table = w.HTML()
        try:
            self.ranking = rank_descriptions(theta0, theta, self.task, self.tokenizer, split=split, by=by,
                                             candidates=candidates, features0=self.features0,
                                             features=self.features, top=top)
            self.table.value = html_table(self.ranking, RANK_COLUMNS)
        except ValueError as err:
            self.table.value = f"<i>no ranking: {err}</i>"
        self.widget = w.VBox([
            w.HTML("<b>SpuriosityProbe</b>: how strongly a description pulls each group, before and after fine-tuning"),
            w.HBox([self.text, self.by_box, self.button]), self.message.widget, self.live.widget,
            w.HTML(f"<b>descriptions whose pull fine-tuning increased most</b> (mean over the {split} images; "
                   "gap = largest minus smallest group alignment)"), self.table,
        ])
        self.widget.add_class("rftlab-spuriosityprobe")
        self.probe(description)


    def probe(self, description: str) -> list[dict]:
        """Alignment of ``description`` per group under theta0 and theta; redraws the bars.
        Returns the rows (``group, before, after, change, n``); an unusable description
        becomes a message and returns []."""
        if self.text.value != description:
            self.text.value = description  # observed: comes back here
            return self.rows
        by = self.by_box.value
        try:
            rows = description_shift(self.theta0, self.theta, self.task, [description], self.tokenizer,
                                     by=by, split=self.split_name, features0=self.features0,
                                     features=self.features)
        except ValueError as err:
            self.message(str(err), "error")
            return []
        self.rows, self.description = rows, description
        with self.live.batch() as fig:
            groups = [r["group"] for r in rows]
            fig.data[0].x, fig.data[0].y = groups, [r["before"] for r in rows]
            fig.data[1].x, fig.data[1].y = groups, [r["after"] for r in rows]
            fig.layout.title.text = f"“{description}” per {by}"
            fig.layout.xaxis.title.text = by
        up, down = max(rows, key=lambda r: r["change"]), min(rows, key=lambda r: r["change"])
        self.message(f"change with fine-tuning: most up {up['group']} ({up['change']:+.3f}), most down "
                     f"{down['group']} ({down['change']:+.3f}); spread across {by}s: zero-shot "
                     f"{_spread(rows, 'before'):.3f}, fine-tuned {_spread(rows, 'after'):.3f}")
        return rows


def _spread(rows, key):
    vals = [r[key] for r in rows]
    return max(vals) - min(vals)
