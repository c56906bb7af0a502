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
# # Lesson 3: context and CAR-FT
#
# *Answer each exercise in place: the cell under it checks your answer.*
#
# CLIP learned from captions, and captions say more than the class: "a *sketch* of a dog", "a dog *in the
# snow*". So a zero-shot CLIP knows the **context** of an image: its style, its setting. Cross-entropy
# fine-tuning on photos only rewards the class, and the model is free to forget the rest. CAR-FT
# (Mao et al., IJCV 2023) keeps it: a KL term holds the fine-tuned model's distribution over contexts close
# to the zero-shot model's.
#
# In this lesson you will
#
# 1. build the context weights from the task's contexts and look at the zero-shot model's context
#    distribution on photos, sketches, cartoons and paintings;
# 2. see how fine-tuning changes that distribution, domain by domain;
# 3. **exercise**: write CAR-FT's context KL, the right way round;
# 4. fine-tune with CAR-FT (running your KL inside rftlab) and compare with FT.
#
# Time: about 45 minutes. Runs on a laptop CPU (the full run takes a few minutes).

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
STEPS = 40 if SMOKE else 150                     # fine-tuning steps per method
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
# ## Contexts
#
# A context is a caption template that says something besides the class: "a sketch of a {}", "a {} on the
# grass", "a red {} by the lake"... CAR-FT uses ImageNet's 80 prompt templates; a world task carries 81
# contexts made of the captions' words (styles, places, colours and their combinations), in
# `task.context_templates`. For context k, average its text features over the classes and normalise:
#
# $$W_{\text{ctx}}[:, k] = \mathrm{normalize}\Big(\frac{1}{C}\sum_c \mathrm{normalize}\big(g(\text{template}_k(c))\big)\Big),$$
#
# a direction that says "this kind of picture, whatever the class". An image's context distribution is
#
# $$p_{\text{ctx}}(x;\theta) = \mathrm{softmax}\big(s \, W_{\text{ctx}}^\top \varphi_\theta(x)\big),$$
#
# with s the zero-shot model's own logit scale (about 21 for the world CLIP; CAR-FT's paper uses 100, which is
# OpenAI CLIP's own). `rftlab.methods.carft.context_weights` builds W_ctx from the frozen text tower.

# %%
import torch.nn.functional as F
from rftlab.encode import encode_split
from rftlab.methods.carft import context_weights

task = rftlab.load_task("shift", n_test=N_TEST)
zs = rftlab.ClipClassifier.zeroshot(clip, task.classnames, task.templates)
W_ctx = context_weights(clip.model, clip.tokenizer, task.classnames, task.context_templates)
S_CTX = clip.model.logit_scale.exp().item()        # CAR-FT's s in rftlab: the model's own scale
contexts = [t.replace("{}", "…") for t in task.context_templates]
print(f"W_ctx: {tuple(W_ctx.shape)} (embedding dim x contexts), s = {S_CTX:.1f}")
print(f"{len(contexts)} contexts, e.g.:", " | ".join(contexts[::8]))

splits = task.eval_splits()                                   # id (photo), sketch, cartoon, painting
feats0 = {d: encode_split(zs, s, clip.preprocess) for d, s in splits.items()}

def context_dist(features):
    return F.softmax(S_CTX * features @ W_ctx, dim=-1)

mean_p0 = {d: context_dist(f).mean(0) for d, f in feats0.items()}
for d, p in mean_p0.items():
    top = p.argsort(descending=True)[:3].tolist()
    print(f"{d:<9} most likely contexts: " + ", ".join(f"{contexts[k]} ({p[k]:.2f})" for k in top))


# %%
def context_heatmap(mean_p, title):
    fig = go.Figure(go.Heatmap(z=torch.stack(list(mean_p.values())).numpy(), x=contexts, y=list(mean_p),
                               colorscale="Viridis", zmin=0))
    fig.update_layout(title=title, height=360, xaxis_tickangle=-60, xaxis_tickfont_size=8)
    return fig

context_heatmap(mean_p0, "Zero-shot: mean context distribution per test domain").show()

# %% [markdown]
# Each row is a test domain, each column a context. Compare the rows in the printout above: does the
# zero-shot model put more mass on the sketch and drawing contexts for sketches, on the painting contexts
# for paintings? That is the knowledge CAR-FT wants to keep.
#
# ## What fine-tuning does to it
#
# Fine-tune on photos with cross-entropy (FT) and measure, per domain, the mean over images of
# KL(p_ctx(x; θ0) ‖ p_ctx(x; θ)): how far each image's context distribution moved.

# %%
results = {"zero-shot": rftlab.evaluate(zs, task, clip.preprocess)}
models = {"FT": rftlab.finetune("ft", clip, task, CFG).classifier}
results["FT"] = rftlab.evaluate(models["FT"], task, clip.preprocess)
feats = {"FT": {d: encode_split(models["FT"], s, clip.preprocess) for d, s in splits.items()}}
# measured with rftlab's own context KL (the exercise below asks you to write it)
kl = {"FT": {d: rftlab.losses.context_kl(feats["FT"][d], feats0[d], W_ctx, S_CTX).item() for d in splits}}

def show(name):
    r = results[name]
    line = f"{name:<10} ID {r['id_acc']:.3f} | mean OOD {r['mean_ood_acc']:.3f}"
    if name in kl:
        line += " | context KL " + " ".join(f"{d} {v:.3f}" for d, v in kl[name].items())
    print(line)

for name in results:
    show(name)
context_heatmap({d: context_dist(f).mean(0) for d, f in feats["FT"].items()},
                "After FT: mean context distribution per test domain").show()


# %% [markdown]
# Compare this heatmap with the zero-shot one, and read the context KL per domain in the printout above:
# on which domains did fine-tuning move the context distribution most?
#
# ## CAR-FT
#
# CAR-FT adds the context KL to cross-entropy:
#
# $$\mathcal{L}_{\text{CAR-FT}} = \mathrm{CE}(y, s\,W^\top\varphi_\theta(x)) + \beta\,
# \mathrm{KL}\big(p_{\text{ctx}}(x;\theta_0)\,\big\|\,p_{\text{ctx}}(x;\theta)\big),
# \qquad \mathrm{KL}(p_0\|p) = \sum_k p_{0,k}\,(\log p_{0,k} - \log p_k).$$
#
# **The direction matters.** KL(p0 ‖ p) weights each context by the zero-shot model's probability: wherever
# θ0 says "this could be a sketch", the fine-tuned model must keep some mass there, or the term explodes
# (mass covering). The reverse, KL(p ‖ p0), only looks where the *fine-tuned* model puts mass: it lets p
# collapse onto one context that θ0 also finds plausible, and forget the rest at no cost. The zero-shot
# model is the target; the model being trained goes in the second slot.
#
# A PyTorch trap: `F.kl_div(input, target)` computes KL(target ‖ input) with `input` as log-probabilities,
# so the model being trained goes *first* there.
#
# ### Exercise 3: the context KL
#
# Write `my_context_kl(features, features0, context_weights, logit_scale)`:
#
# * `features` (B, D): φθ(x), normalised, from the model being trained; `features0` (B, D): φθ0(x);
# * `context_weights` (D, K): W_ctx; `logit_scale`: s (a number or a 0-dim tensor; do not hard-code 100);
# * return the mean over the batch of KL(p_ctx(x; θ0) ‖ p_ctx(x; θ)), a tensor that keeps its gradient.
#
# Useful: `F.log_softmax(x, dim=-1)`.

# %% nbgrader={"grade": false, "grade_id": "my_context_kl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_context_kl(features, features0, context_weights, logit_scale):
    """CAR-FT: mean over the batch of KL(p_ctx(theta0) || p_ctx(theta))."""
    # about 3 lines
    ### BEGIN SOLUTION
    log_p = F.log_softmax(logit_scale * features @ context_weights, dim=-1)     # the model being trained
    log_p0 = F.log_softmax(logit_scale * features0 @ context_weights, dim=-1)   # the zero-shot target
    return (log_p0.exp() * (log_p0 - log_p)).sum(-1).mean()
    # Solution notes. Work in log-probabilities (`F.log_softmax`): with a large s (CAR-FT's paper uses 100),
    # `softmax(...).log()` underflows to −inf for unlikely contexts. The equivalent library call is
    # `F.kl_div(log_p, log_p0, log_target=True, reduction="batchmean")`, with the trained model's
    # log-probabilities *first*. Swapping the arguments gives KL(p ‖ p0), the classic mistake the checker
    # diagnoses.
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_context_kl", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
result = exercises.check_context_kl(my_context_kl)
### BEGIN HIDDEN TESTS
assert result.passed, result.message  # graded: the answer must pass its checker
### END HIDDEN TESTS

# %% [markdown]
# ## CAR-FT vs FT
#
# The cell below fine-tunes CAR-FT with your context KL (or rftlab's while your answer does not pass) swapped
# into rftlab's CAR-FT, then measures accuracy and the context KL per domain as for FT.

# %%
context_kl = result.implementation()
with exercises.swap_in("context_kl", context_kl):
    run = rftlab.finetune("car-ft", clip, task, CFG)
models["CAR-FT"] = run.classifier
results["CAR-FT"] = rftlab.evaluate(models["CAR-FT"], task, clip.preprocess)
feats["CAR-FT"] = {d: encode_split(models["CAR-FT"], s, clip.preprocess) for d, s in splits.items()}
kl["CAR-FT"] = {d: rftlab.losses.context_kl(feats["CAR-FT"][d], feats0[d], W_ctx, S_CTX).item() for d in splits}
for name in results:
    show(name)
steps = [h for h in run.history if "context_kl" in h]
print(f"CAR-FT training: context KL {steps[0]['context_kl']:.4f} at the first step, {steps[-1]['context_kl']:.4f} at the last")
assert len(steps) == STEPS

# %%
domains = list(splits)
fig = go.Figure([go.Bar(name=m, x=domains, y=[kl[m][d] for d in domains]) for m in kl])
fig.update_layout(barmode="group", yaxis_title="mean KL(p_ctx θ0 || p_ctx θ)", height=330,
                  title="How far the context distribution moved, per test domain")
fig.show()
names = list(results)
fig = go.Figure([go.Bar(name=d, x=names, y=[results[n]["id_acc"] if d == "id" else results[n]["ood_acc"][d] for n in names])
                 for d in domains])
fig.update_layout(barmode="group", yaxis_title="test accuracy", yaxis_range=[0, 1], height=330,
                  title="Accuracy per test domain")
fig.show()

# %% [markdown]
# Read the two printouts above: did CAR-FT keep the context distributions closer to zero-shot than FT, on
# the OOD domains too (it only ever trained on photos)? Did that come with better OOD accuracy in this run?
# One short run with one seed is one draw: change `torch.manual_seed`/`CFG.seed` or the number of steps and
# see what is stable. The library measures the same thing with `rftlab.analysis.context_shift`.
#
# ## Discussion questions
#
# 1. CAR-FT's KL is computed on the *training* images only (photos). Why can it still change what happens
#    on sketches?
# 2. The contexts here are phrases made of the world's caption words. What contexts would you choose for a
#    real dataset (ImageNet, iWildCam, a medical dataset)? What if a context has nothing to do with the data?
# 3. With s = 100 and cosines in [−1, 1], how peaked is p_ctx? Here s is the model's own, about 21: what
#    would CAR-FT's 100 change about the KL and its gradient?
# 4. Forward vs reverse KL: give an example distribution p0 and two candidate p's where KL(p0 ‖ p) and
#    KL(p ‖ p0) disagree about which p is better.
# 5. CAR-FT keeps a distribution over contexts; Lipsum-FT (next lesson) keeps raw image-text energies on
#    random texts. Which constraint is stronger? Which depends more on the choice of texts?
