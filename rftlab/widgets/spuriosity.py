"""SpuriosityProbe: find the shortcut a fine-tuned model relies on, then see how strongly any
description pulls each group, before and after fine-tuning."""
from __future__ import annotations

import ipywidgets as w
import plotly.graph_objects as go

from ..analysis import description_shift, discover_shortcuts, image_features, rank_descriptions, subsample
from ..analysis import resolve_split
from ._helpers import LiveFigure, Messages, Panel, html_table, model_pair

RANK_COLUMNS = ["rank", "description", "before", "after", "change", "gap_change"]
SHORTCUT_COLUMNS = ["rank", "description", "toward", "score", "stderr", "z", "significant", "class", "group_acc",
                    "rest_acc", "n"]


class SpuriosityProbe(Panel):
    """First, *Find the shortcut* (:meth:`discover`): the descriptions the fine-tuned model relies
    on most, found on the ``discover_split`` images with the zero-shot model as the judge
    (:func:`rftlab.analysis.discover_shortcuts`); pick one (:meth:`choose`) to probe it.
    Then type any description ("on the water", "a sketch of a {}"; ``{}`` is filled with each
    image's class name) and see its mean alignment cos(image, text) with each group's images under
    the zero-shot and the fine-tuned model. Below: the candidate descriptions whose pull
    fine-tuning increased most (:func:`rftlab.analysis.rank_descriptions`).

    Image features are encoded once; each probe only encodes its text.
    """

    def __init__(self, clip, finetuned, task, zeroshot=None, split: str = "test", by: str | None = None,
                 description: str = "on the water", n: int | None = None, top: int = 10, candidates=None,
                 discover_split: str = "val"):
        theta0, theta = model_pair(clip, finetuned, task, zeroshot)
        self.theta0, self.theta, self.tokenizer, self.transform = theta0, theta, clip.tokenizer, clip.preprocess
        self.candidates, self.discover_split, self.top = candidates, discover_split, top
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
        self.shortcuts = None
        self.discover_button = w.Button(description="Find the shortcut", icon="search-plus",
                                        tooltip=f"rank descriptions by how much the fine-tuned model relies on them "
                                                f"({discover_split} images; the zero-shot model judges)")
        self.discover_button.on_click(lambda _: self.discover())
        self.found = w.Select(options=[], rows=5, description="probe", layout=w.Layout(width="620px"))
        self._listing = False
        self.found.observe(lambda ch: ch["new"] and not self._listing and self.choose(ch["new"]), names="value")
        self.found_table = w.HTML("<i>press <b>Find the shortcut</b> to rank candidate descriptions</i>")
        self.widget = w.VBox([
            w.HTML("<b>SpuriosityProbe</b>: find the shortcut, then see how strongly a description pulls each "
                   "group, before and after fine-tuning"),
            w.HBox([self.discover_button]), self.found_table, self.found,
            w.HBox([self.text, self.by_box, self.button]), self.message.widget, self.live.widget,
            w.HTML(f"<b>descriptions whose pull fine-tuning increased most</b> (mean over the {split} images; "
                   "gap = largest minus smallest group alignment)"), self.table,
        ])
        self.widget.add_class("rftlab-spuriosityprobe")
        self.probe(description)

    def discover(self, **kwargs):
        """Rank candidate descriptions by how much the fine-tuned model relies on them
        (:func:`rftlab.analysis.discover_shortcuts` on the ``discover_split`` images, theta0
        judging; ``kwargs`` go to it), list them (findings marked *) and probe the first.
        Returns the :class:`~rftlab.analysis.Shortcuts`, or None with a message when it cannot."""
        kwargs.setdefault("candidates", self.candidates)
        try:
            result = discover_shortcuts(self.theta, self.task, self.tokenizer, self.transform, reference=self.theta0,
                                        split=self.discover_split, **kwargs)
        except ValueError as err:
            self.message(str(err), "error")
            return None
        self.shortcuts = result
        rows = result.ranking[: self.top]
        verdict = (f"<b>{len(result.findings)} finding(s)</b>" if result.found
                   else "<b>nothing found</b>: no description passes the rule")
        self.found_table.value = (f"{verdict} (judge: {result.judge}; rule: {result.rule})<br>"
                                  + html_table(rows, SHORTCUT_COLUMNS, digits={"z": 1}))
        self._listing = True   # filling the list is not a click
        self.found.options = [(f"{'*' if r['significant'] else ' '} {r['rank']}. {r['description']} -> {r['toward']}"
                               f"  (score {r['score']:+.2f}, z {r['z']:.1f})", r["description"]) for r in rows]
        if rows:
            self.found.value = rows[0]["description"]
        self._listing = False
        if rows:
            self.choose(rows[0]["description"])
        return result

    def choose(self, description: str) -> list[dict]:
        """Probe a discovered description (a row of the list): the per-group view below."""
        return self.probe(description)

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
