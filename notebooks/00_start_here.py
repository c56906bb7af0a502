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
# # Start here: what fine-tuning does to a zero-shot CLIP
#
# CLIP classifies images *zero-shot*: it compares an image with captions such as "a photo of a star"
# and picks the best-matching class. Fine-tuning on a small labelled set raises accuracy on that set,
# but can cost what made the zero-shot model valuable: robustness to distribution shift and indifference
# to spurious cues such as the background.
#
# This notebook shows both effects on rftlab's **world**, a procedurally generated image-caption world whose
# factors (shape, colour, background, style) are known by construction, with rftlab's own small CLIP,
# pretrained on that world with every factor independent of every other. Everything runs offline on a CPU.
#
# The first cell chooses the model. Change `MODEL` and `PRETRAINED` to use a real open_clip model.

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

# %% [markdown]
# ## The world
#
# Each row is a style (the *domain*), each column a shape (the *class*). Colours and backgrounds vary;
# captions mention a random subset of the factors, the way alt-text does.

# %%
from rftlab.world.grid import sample_grid
from rftlab.world import captions, sample_factors
sample_grid(seed=1, zoom=2)

# %%
# NBVAL_CHECK_OUTPUT
f = sample_factors(5, seed=3)
for c in captions(f["shape"], f["color"], f["background"], f["style"], seed=4):
    print(c)

# %% [markdown]
# ## Zero-shot on a Waterbirds-like task
#
# In the `spurious` task each class sits on its "own" kind of background (land or water) 95% of the time
# in the training set, while validation and test sets are balanced over the four class × place groups.
# As the birds of Waterbirds, the objects are far away (small), so the shape is sometimes hard to read
# while the background never is. A zero-shot model never saw the correlation, so it should do about equally
# well on every group.

# %%
spurious = rftlab.load_task("spurious")
print(spurious.summary())
zs = rftlab.ClipClassifier.zeroshot(clip, spurious.classnames, spurious.templates)
zs_sp = rftlab.evaluate(zs, spurious, clip.preprocess)
print({k: round(v, 3) for k, v in zs_sp["group_acc"].items()}, "worst group:", round(zs_sp["worst_group_acc"], 3))

# %% [markdown]
# ## Fine-tune, then look at the groups again
#
# Plain fine-tuning (FT): cross-entropy on the training set, training the image tower and a head that
# starts from the zero-shot head. The training set rewards the background as much as the shape.

# %%
cfg = rftlab.TrainConfig(steps=STEPS, progress=False)
ft_sp = rftlab.finetune("ft", clip, spurious, cfg)
ft_sp_m = rftlab.evaluate(ft_sp.classifier, spurious, clip.preprocess)
groups = list(zs_sp["group_acc"])
fig = go.Figure([go.Bar(name="zero-shot", x=groups, y=[zs_sp["group_acc"][g] for g in groups]),
                 go.Bar(name="fine-tuned", x=groups, y=[ft_sp_m["group_acc"][g] for g in groups])])
fig.update_layout(barmode="group", yaxis_title="test accuracy", yaxis_range=[0, 1], height=350,
                  title="Accuracy per group (class/place) before and after fine-tuning")
fig.show()
print(f"worst-group accuracy: zero-shot {zs_sp['worst_group_acc']:.3f} -> fine-tuned {ft_sp_m['worst_group_acc']:.3f}")
print(f"average accuracy:     zero-shot {zs_sp['avg_acc']:.3f} -> fine-tuned {ft_sp_m['avg_acc']:.3f}")
assert ft_sp.step == STEPS
assert ft_sp_m["worst_group_acc"] < zs_sp["worst_group_acc"]  # the phenomenon this section shows

# %% [markdown]
# The groups where the class sits on the *other* class's usual background are the ones that suffer:
# the fine-tuned model leans on the background. The printout above gives the numbers of this run.

# %% [markdown]
# ## Distribution shift and WiSE-FT
#
# In the `shift` task (DomainNet-like) the training set holds photos only; the test sets are photos (ID)
# and sketches, cartoons and paintings (OOD). Objects appear turned by up to 90°, a pose the zero-shot model
# saw in pretraining only now and then (a quarter of its photos, fewer of its drawings), so it is unsure of
# turned objects, and labelled examples can teach it: this is where fine-tuning earns its ID gains. WiSE-FT mixes the weights of the zero-shot model θ0 and the
# fine-tuned model θ: θα = (1 − α)·θ0 + α·θ. Sweeping α traces a curve from zero-shot (α = 0) to
# fine-tuned (α = 1), with no retraining.

# %%
from rftlab.analysis import wise_curve
shift = rftlab.load_task("shift")
zs_shift = rftlab.ClipClassifier.zeroshot(clip, shift.classnames, shift.templates)
ft_shift = rftlab.finetune("ft", clip, shift, cfg)
alphas = [0.0, 0.25, 0.5, 0.75, 1.0] if SMOKE else [round(0.1 * i, 1) for i in range(11)]
curve = wise_curve(zs_shift, ft_shift.classifier, shift, clip.preprocess, alphas)
fig = go.Figure(go.Scatter(x=[r["id_acc"] for r in curve], y=[r["mean_ood_acc"] for r in curve],
                           mode="lines+markers+text", text=[f"α={r['alpha']}" for r in curve],
                           textposition="top left"))
fig.update_layout(xaxis_title="ID accuracy (photos)", yaxis_title="mean OOD accuracy (other styles)",
                  title="WiSE-FT: from zero-shot (α=0) to fine-tuned (α=1)", height=420)
fig.show()
for r in curve:
    print(f"alpha {r['alpha']:.2f}: ID {r['id_acc']:.3f}  mean OOD {r['mean_ood_acc']:.3f}  " +
          "  ".join(f"{k} {v:.3f}" for k, v in r["ood_acc"].items()))
assert curve[0]["id_acc"] == rftlab.evaluate(zs_shift, shift, clip.preprocess)["id_acc"]  # alpha 0 is zero-shot
assert curve[-1]["id_acc"] > curve[0]["id_acc"]  # fine-tuning raises ID accuracy

# %% [markdown]
# Read the curve from left to right: fine-tuning moves ID accuracy up; the OOD axis shows how much of
# that carries over to styles the fine-tuning set never showed. Mixed models between the ends that beat both
# of them on OOD accuracy are the "free lunch" WiSE-FT is known for; the printout shows whether this run has
# them (on this world the lunch is smaller than the paper's: `docs/phenomena.md`, rows F4 and F5).
#
# Where next: the robust fine-tuning methods (Lipsum-FT, CAR-FT, CaRot, StarFT) try to keep the zero-shot
# model's robustness *during* fine-tuning instead of restoring it afterwards.
