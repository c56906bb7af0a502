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
# # Lesson 1: why fine-tuning erodes zero-shot robustness
#
# *Answer each exercise in place: the cell under it checks your answer.*
#
# A zero-shot CLIP classifies by comparing an image with captions such as "a photo of a star". It was never
# trained on your task, and that is its strength: it behaves about as well on sketches or paintings as on
# photos. Fine-tuning on labelled photos raises accuracy on photos, and often lowers it on everything else.
#
# In this lesson you will
#
# 1. measure that trade-off on rftlab's world (photos in, sketches, cartoons and paintings out);
# 2. compare the three classic ways to adapt: linear probing (LP), full fine-tuning (FT) and LP-FT;
# 3. measure *feature distortion*: how far fine-tuning moves the image features, on the domain it
#    trained on and on the others;
# 4. **exercise**: write WiSE-FT, the weight-space interpolation between the zero-shot and the fine-tuned
#    model, and trace its curve.
#
# Time: about 45 minutes. Everything runs on a laptop CPU (the full run takes a few minutes).

# %% [markdown]
# **How the exercises work.** An exercise cell holds a function whose body is `raise NotImplementedError`.
# Replace that line with your code and run the cell: the checker below it runs your function on several
# generated cases against rftlab's own implementation and answers *passed*, *not answered yet*, a
# diagnosis of a classic mistake, or the first case where your function disagrees. Until your answer passes,
# the cells after it use rftlab's reference implementation (they say so), so the notebook always runs top
# to bottom. The solutions are in `tutorials/solutions/`.

# %%
# NBVAL_CHECK_OUTPUT
# --- choose the model and data here -------------------------------------------------
import os
SMOKE = os.environ.get("RFTLAB_SMOKE") == "1"  # CI sets RFTLAB_SMOKE=1: shorter runs, same story
MODEL, PRETRAINED = "rftlab-world", None        # a real CLIP: MODEL, PRETRAINED = "ViT-B-32", "openai"
STEPS = 60 if SMOKE else 150                     # fine-tuning steps per method
N_TEST = 200 if SMOKE else 800                  # test images per domain
# -------------------------------------------------------------------------------------
import torch
import plotly.graph_objects as go
import rftlab
from rftlab import exercises
torch.manual_seed(0)
clip = rftlab.load_model(MODEL, PRETRAINED)
CFG = rftlab.TrainConfig(steps=STEPS, eval_every=0, progress=False)  # no validation: keep the last step
print(f"model: {clip.arch} ({sum(p.numel() for p in clip.model.parameters()) / 1e6:.2f}M parameters), "
      f"smoke mode: {SMOKE}, {STEPS} steps per fine-tuning run")

# %% [markdown]
# ## The task: photos in, three other styles out
#
# `shift` is rftlab's DomainNet-like task: 8 shape classes; the training set and the ID (in-distribution)
# test set are photos; the OOD (out-of-distribution) test sets are sketches, cartoons and paintings of the
# same shapes. Objects are rotated by up to 90° while pretraining saw at most 20°: labelled examples carry
# information the zero-shot model under-uses, so fine-tuning has something to gain, as on real downstream sets.

# %%
from PIL import Image
from torchvision.utils import make_grid

def image_row(images, zoom=3):
    """A row of uint8 images (N, 3, H, W) as one PIL image."""
    grid = make_grid(images, nrow=len(images), padding=2, pad_value=255)
    return Image.fromarray(grid.permute(1, 2, 0).numpy()).resize((grid.shape[2] * zoom, grid.shape[1] * zoom), Image.NEAREST)

task = rftlab.load_task("shift", n_test=N_TEST)
print(task.summary())
for name, split in task.eval_splits().items():
    print(name)
    display(image_row(split.images[:12]))

# %% [markdown]
# ## Zero-shot: the classifier CLIP gives for free
#
# The zero-shot head W0 has one column per class: the normalised mean of the text features of that class's
# prompts (`task.templates`, "a photo of a {}", "a sketch of a {}", ...). With φ(x) the normalised image
# feature and s the logit scale,
#
# $$\text{logits}(x) = s \, W_0^\top \varphi(x).$$

# %%
zs = rftlab.ClipClassifier.zeroshot(clip, task.classnames, task.templates)
results = {"zero-shot": rftlab.evaluate(zs, task, clip.preprocess)}

def show(name):
    r = results[name]
    print(f"{name:<10} ID {r['id_acc']:.3f} | mean OOD {r['mean_ood_acc']:.3f} | " +
          " ".join(f"{d} {a:.3f}" for d, a in r["ood_acc"].items()))

show("zero-shot")

# %% [markdown]
# ## Three ways to adapt
#
# * **LP** (linear probe): freeze the image tower, fit only the head on the training features
#   (logistic regression, started from W0).
# * **FT** (full fine-tuning): cross-entropy on the training set, training the image tower and the head
#   (the head starts from W0).
# * **LP-FT** (Kumar et al., 2022): LP first, then FT from the probed head.
#
# Kumar et al. explain why FT can hurt OOD: at the start of FT the head is not yet fit to the task, so
# the gradients that reach the image tower are large, and they change the features of the training
# domain, which the head then fits; the features of domains the training set never showed change in
# other, unfitted ways. They call this *feature distortion*. LP-FT fits the head first, so FT starts with
# small gradients and moves the features less. (For CLIP, FT already starts from the zero-shot head, a
# decent head: part of LP-FT's benefit is built in.)

# %%
runs = {}
for method in ("lp", "ft", "lp-ft"):
    runs[method] = rftlab.finetune(method, clip, task, CFG).classifier
    results[method] = rftlab.evaluate(runs[method], task, clip.preprocess)
for name in results:
    show(name)
assert results["ft"]["id_acc"] > results["zero-shot"]["id_acc"]  # fine-tuning learns the ID task

# %%
names = list(results)
fig = go.Figure([go.Bar(name="ID (photo)", x=names, y=[results[n]["id_acc"] for n in names]),
                 go.Bar(name="mean OOD", x=names, y=[results[n]["mean_ood_acc"] for n in names])])
fig.update_layout(barmode="group", yaxis_title="test accuracy", yaxis_range=[0, 1], height=350,
                  title="Accuracy on the training style (ID) and on the other styles (OOD)")
fig.show()

# %% [markdown]
# Compare the rows of the printout above: how much ID accuracy each method gains over zero-shot, and what
# happens to mean OOD accuracy. The *effective robustness* question is not "is OOD accuracy high?" but
# "is OOD accuracy as high as the ID accuracy would predict?". In the CLIP papers zero-shot models sit
# higher on that scale than models trained on the ID data alone; check whether the table above agrees.
#
# ## Feature distortion, measured
#
# Encode the same test images with the zero-shot model θ0 and with a fine-tuned model θ and measure how far
# each feature moved: drift(x) = 1 − cos(φθ0(x), φθ(x)). LP does not touch the image tower, so its drift
# is 0 by construction; FT and LP-FT move it.

# %%
from rftlab.encode import encode_split

splits = task.eval_splits()
feats0 = {d: encode_split(zs, s, clip.preprocess) for d, s in splits.items()}

def drift(classifier):
    """Mean 1 - cos between theta0's and this classifier's features of the same images, per test set."""
    return {d: (1 - (feats0[d] * encode_split(classifier, s, clip.preprocess)).sum(1)).mean().item()
            for d, s in splits.items()}

drifts = {m: drift(runs[m]) for m in ("lp", "ft", "lp-ft")}
for m, d in drifts.items():
    print(f"{m:<6}" + "  ".join(f"{k} {v:.4f}" for k, v in d.items()))
assert max(drifts["lp"].values()) < 1e-5  # LP never changes the image features

# %%
fig = go.Figure([go.Bar(name=m, x=list(d), y=list(d.values())) for m, d in drifts.items() if m != "lp"])
fig.update_layout(barmode="group", yaxis_title="mean 1 - cos(φθ0, φθ)", height=350,
                  title="How far fine-tuning moved the image features, per test set")
fig.show()

# %% [markdown]
# Read the bars: does fine-tuning move ID features (photos, the domain it trained on) more or less than
# OOD features? Does LP-FT move them less than FT? The theory predicts less drift for LP-FT; how much less
# depends on how good the starting head is, and here FT starts from the zero-shot head.
#
# ## WiSE-FT: interpolate the weights
#
# Wortsman et al. (2022) found a remarkably simple fix: average the *weights* of the zero-shot model θ0 and
# the fine-tuned model θ1,
#
# $$\theta_\alpha = (1 - \alpha)\,\theta_0 + \alpha\,\theta_1, \qquad \alpha \in [0, 1].$$
#
# α = 0 is zero-shot, α = 1 is fine-tuned, and in between the models often beat *both* ends on OOD data,
# because fine-tuning from a pretrained model stays in one linearly connected basin.
#
# One detail matters in practice: a state dict holds more than weights. BatchNorm layers keep an integer
# step counter (`num_batches_tracked`), and text models often keep integer position ids. A weighted average
# of integers is meaningless (and turns them into floats), so only **floating-point** tensors are
# interpolated; every other tensor is copied. The world CLIP has none (its CNN normalises with GroupNorm, which
# keeps no statistics), as the cell below shows; an open_clip ResNet has one counter per BatchNorm layer, and the
# checker of Exercise 1 tests your function on state dicts that hold integer buffers.

# %%
# NBVAL_CHECK_OUTPUT
sd0, sd1 = zs.state_dict(), runs["ft"].state_dict()
ints = [k for k, v in sd0.items() if not v.is_floating_point()]
print(f"{len(sd0)} tensors in the state dict, {len(ints)} of them not floating point" + (":" if ints else ""))
for k in ints:
    print(f"  {k}: theta0 {sd0[k].item()}, fine-tuned {sd1[k].item()} ({sd0[k].dtype})")


# %% [markdown]
# ### Exercise 1: WiSE-FT
#
# Write `my_wise_ft(state_dict0, state_dict1, alpha)`. It returns a **new** dict with the same keys:
# for floating-point tensors `(1 - alpha) * theta0 + alpha * theta1` (keep each tensor's dtype), for every
# other tensor a copy (of either endpoint; rftlab copies the one alpha is nearer to). Do not modify the
# inputs: the sweep below calls your function many times with the same state dicts.
# Useful: `t.is_floating_point()`, `t.clone()`.

# %% nbgrader={"grade": false, "grade_id": "my_wise_ft", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_wise_ft(state_dict0, state_dict1, alpha):
    """theta_alpha = (1 - alpha) * theta0 + alpha * theta1 over floating tensors; other tensors copied."""
    # about 6 lines
    ### BEGIN SOLUTION
    out = {}
    for name, a in state_dict0.items():
        b = state_dict1[name]
        if a.is_floating_point():
            out[name] = (1 - alpha) * a + alpha * b
        else:  # integer buffers (BatchNorm step counters, position ids): copy, never mix
            out[name] = (a if alpha < 0.5 else b).clone()
    return out
    # Solution notes. `(1 - alpha) * a + alpha * b` builds a new tensor and keeps a float16 tensor float16,
    # so nothing is modified in place. The common wrong answer mixes every tensor, `{k: (1 - alpha) * a +
    # alpha * b ...}`: the integer counters become floats somewhere between the two step counts, and
    # `load_state_dict` silently truncates them back. Try it: the checker names that mistake.
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_wise_ft", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
result = exercises.check_wise_ft(my_wise_ft)
### BEGIN HIDDEN TESTS
assert result.passed, result.message  # graded: the answer must pass its checker
### END HIDDEN TESTS

# %% [markdown]
# ### The WiSE-FT curve
#
# The cell below sweeps α with your function (or rftlab's while your answer does not pass yet) and plots
# ID against mean OOD accuracy, with LP and LP-FT for comparison.

# %%
import copy
wise = result.implementation()
alphas = [0.0, 0.25, 0.5, 0.75, 1.0] if SMOKE else [round(0.1 * i, 1) for i in range(11)]
probe = copy.deepcopy(runs["ft"])
curve = []
for a in alphas:
    probe.load_state_dict(wise(sd0, sd1, a))
    curve.append({"alpha": a, **rftlab.evaluate(probe, task, clip.preprocess)})
for r in curve:
    print(f"alpha {r['alpha']:.2f}: ID {r['id_acc']:.3f}  mean OOD {r['mean_ood_acc']:.3f}")
assert curve[0]["id_acc"] == results["zero-shot"]["id_acc"]  # alpha = 0 is the zero-shot model
assert curve[-1]["id_acc"] == results["ft"]["id_acc"]        # alpha = 1 is the fine-tuned model

# %%
fig = go.Figure()
fig.add_scatter(x=[r["id_acc"] for r in curve], y=[r["mean_ood_acc"] for r in curve], mode="lines+markers+text",
                text=[f"α={r['alpha']}" for r in curve], textposition="top left", name="WiSE-FT")
for name in ("lp", "lp-ft"):
    fig.add_scatter(x=[results[name]["id_acc"]], y=[results[name]["mean_ood_acc"]], mode="markers+text",
                    text=[name], textposition="bottom right", marker_size=11, name=name)
fig.update_layout(xaxis_title="ID accuracy (photo)", yaxis_title="mean OOD accuracy",
                  title="From zero-shot (α = 0) to fine-tuned (α = 1)", height=450)
fig.show()
best = max(curve, key=lambda r: r["mean_ood_acc"])
print(f"best mean OOD accuracy on the curve: alpha {best['alpha']} "
      f"(ID {best['id_acc']:.3f}, mean OOD {best['mean_ood_acc']:.3f})")

# %% [markdown]
# Read the curve against the printouts above: where is mean OOD accuracy highest, and how much ID accuracy
# does that α keep compared with FT? Points above the straight line between the two ends are what WiSE-FT
# buys for free.
#
# Caution: picking α by its *test* OOD accuracy, as the printout above does for illustration, is selecting
# on the test set. In practice α is fixed in advance (0.5 is the usual choice) or chosen on held-out ID
# validation data.
#
# ## Discussion questions
#
# 1. LP leaves the features untouched. Why can it still lose OOD accuracy relative to zero-shot?
# 2. Feature distortion predicts that FT changes ID features more than OOD ones. Did the drift bars agree?
#    What would you expect with a randomly initialised head instead of W0?
# 3. Did the method that moved the features least also keep the most OOD accuracy in your run? If not,
#    what besides the features decides OOD accuracy? (Compare LP-FT's row with LP's.)
# 4. Why does averaging *weights* work at all? (Hint: both endpoints come from the same pretrained model.)
#    Would averaging two models trained from different random initialisations work?
# 5. WiSE-FT needs no extra training. What does it cost at inference time? What does it need that a
#    method like LP-FT does not?
# 6. Your checker passed on integer buffers. What would have happened to a ResNet CLIP (BatchNorm) if the
#    counters were mixed, and would you have noticed from accuracy alone?
#
# Next lesson: spurious features, and StarFT, which keeps the zero-shot model's view of spurious cues
# during fine-tuning.
