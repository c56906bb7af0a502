# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.7
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Panels: train, look at drift, probe spuriosity, check calibration
#
# `rftlab.widgets` holds four panels built from ipywidgets and plotly figures (no custom JavaScript):
#
# | panel | what it shows |
# |---|---|
# | `TrainPanel` | fine-tune any method with live curves; stop; compare runs in a table; save checkpoints |
# | `DriftExplorer` | image embeddings before and after fine-tuning, with a WiSE-FT α slider |
# | `SpuriosityProbe` | how strongly a description you type pulls each group, before and after |
# | `CalibrationView` | reliability diagrams and confidence histograms, with a temperature slider |
#
# Every button and slider calls a plain method (`panel.run()`, `drift.set_alpha(0.5)`, `probe.probe("on the water")`,
# `cal.set_temperature(2)`), so this notebook drives the panels from code too; the widgets stay live for you to play with.

# %%
# NBVAL_CHECK_OUTPUT
# --- choose the model and data here -------------------------------------------------
import os
SMOKE = os.environ.get("RFTLAB_SMOKE") == "1"  # CI sets RFTLAB_SMOKE=1: shorter runs, same story
MODEL, PRETRAINED = "rftlab-world", None        # a real CLIP: MODEL, PRETRAINED = "ViT-B-32", "openai"
STEPS = 60 if SMOKE else 150                     # fine-tuning steps on the world
# -------------------------------------------------------------------------------------
import torch
import plotly.graph_objects as go
import rftlab
torch.manual_seed(0)
clip = rftlab.load_model(MODEL, PRETRAINED)
print(f"model: {clip.arch} ({sum(p.numel() for p in clip.model.parameters()) / 1e6:.2f}M parameters), smoke mode: {SMOKE}")

# %%
from rftlab.widgets import CalibrationView, DriftExplorer, SpuriosityProbe, TrainPanel
spurious = rftlab.load_task("spurious")

# %% [markdown]
# ## TrainPanel
#
# Pick a task, a model and a method; the method's hyperparameters appear with their defaults (hover a box for
# its meaning and valid range). **Run** trains in the background with live loss and validation curves; **Stop**
# ends the run after the current step and keeps the model it reached; every run adds a row to the table, so
# methods can be compared side by side. A value out of range, or a second Run while one is going, gives a
# message in the panel instead of an error.

# %%
panel = TrainPanel(clip, spurious, method="ft")
panel.set_config(steps=STEPS, eval_every=max(1, STEPS // 6))
panel

# %% [markdown]
# The next cell does from code what the Run button does (`run()` blocks; the button calls `run(block=False)`):
# plain fine-tuning, then a linear probe, for the table above.

# %%
panel.run()
panel.set_method("lp")
panel.run()
ft_model, lp_model = panel.results[0]["classifier"], panel.results[1]["classifier"]
for r in panel.results:
    print(f"{r['method']:>4}: ID acc {r['id_acc']:.3f}, worst group {r['worst_group_acc']:.3f}, ECE {r['ece']:.3f}")
assert [r["method"] for r in panel.results] == ["ft", "lp"] and panel.results[0]["steps"] == STEPS

# %% [markdown]
# ## DriftExplorer
#
# The zero-shot model θ0 (open markers) and the fine-tuned model θ (filled) embed the same test images; one
# projection (PCA here; `method="umap"` for UMAP, slower) is fit on both. The α slider moves the filled points
# along WiSE-FT's weight interpolation θα = (1 − α)·θ0 + α·θ, from features computed once for a grid of α.
# Hover a point to see its image, its metadata and both models' predictions; colour by class, group, place,
# background or colour.

# %%
drift = DriftExplorer(clip, ft_model, spurious, n=200 if SMOKE else 400, color_by="group")
drift

# %%
import torch
drift.set_alpha(0.5)
moved = (drift.positions(1.0) - drift.positions(0.0)).norm(dim=1)
print(f"mean 2-D displacement from θ0 to θ: {moved.mean():.3f} (projector: {drift.projector.method_used})")
assert torch.allclose(drift.positions(0.5), drift.coords[0.5])

# %% [markdown]
# ## SpuriosityProbe
#
# Type a description; the bars give its mean alignment (cosine of image and text embeddings) with each group's
# test images, under the zero-shot model and under the fine-tuned one (each with its own towers). `{}` is
# replaced by each image's class name, e.g. `a sketch of a {}`. The table lists the candidate descriptions whose
# pull fine-tuning increased most.

# %%
probe = SpuriosityProbe(clip, ft_model, spurious, description="on the water")
probe

# %%
rows = probe.probe("on the water")
for r in rows:
    print(f"{r['group']:<14} zero-shot {r['before']:.3f}  fine-tuned {r['after']:.3f}  change {r['change']:+.3f}")
assert [r["group"] for r in rows] == spurious.group_names

# %% [markdown]
# ## CalibrationView
#
# Reliability diagram (accuracy against confidence, per confidence bin; the diagonal is perfect calibration) and
# confidence histogram for the chosen models on the chosen test set. The temperature slider divides every logit
# by T (T > 1 softens the predictions); **T fit on val** sets T to the value that minimises the validation
# NLL of the first chosen model.

# %%
cal = CalibrationView(clip, {"ft": ft_model, "lp": lp_model}, spurious)
cal

# %%
t = cal.fit_temperature()
for r in cal.rows:
    print(f"{r['model']:>9}: ECE {r['ECE (T=1)']:.3f} at T=1, {r['ECE (T fit)']:.3f} at its val-fitted T={r['T fit on val']:.2f}")
assert cal.temperature == t
