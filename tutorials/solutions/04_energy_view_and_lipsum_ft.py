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
# # Lesson 4: the energy view and Lipsum-FT
#
# *Answer each exercise in place: the cell under it checks your answer.*
#
# A CLIP model scores every (image, text) pair: E(x, t) = s·⟨φ(x), ψ(t)⟩. Lipsum-FT (Nam et al., ICLR 2024)
# reads this as an *energy* and makes an observation: fine-tuning the image tower for a handful of class
# prompts changes the image's energy with almost **every other text** too, and how much it changes
# tracks how much robustness is lost. Its remedy: keep those energies, measured on random texts, close to
# the zero-shot model's.
#
# In this lesson you will
#
# 1. draw random texts and compare the energies of the zero-shot and the fine-tuned model;
# 2. measure the energy gap per test domain;
# 3. **exercise**: write the Lipsum-FT regulariser (where the scale goes matters);
# 4. fine-tune with Lipsum-FT (running your regulariser inside rftlab) and compare with FT.
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
# ## Random texts
#
# Lipsum-FT's texts are nonsense on purpose: a start token, L token ids drawn uniformly from the
# vocabulary, an end token ("lorem ipsum"). They probe the text space without favouring any concept.
# Below: M = 80 texts of L = 8 tokens, encoded once by the **frozen** text tower, and a few of them decoded.

# %%
import torch.nn.functional as F
from rftlab.encode import encode_split
from rftlab.methods.lipsum import random_texts

M, L = 80, 8
tokens = random_texts(clip.tokenizer, M, L, torch.Generator().manual_seed(0))
with torch.no_grad():
    text = F.normalize(clip.model.encode_text(tokens), dim=-1)       # psi(t_m), frozen text tower
s = clip.model.logit_scale.exp().item()                             # the pretrained model's scale
print(f"{M} random texts, text features {tuple(text.shape)}, s = {s:.2f}")
if hasattr(clip.tokenizer, "words"):  # the world tokenizer: ids 2.. are words
    for row in tokens[:5]:
        print("  ", " ".join(clip.tokenizer.words[int(i) - 2] for i in row[1:L + 1]))

# %% [markdown]
# ## Energies before and after fine-tuning
#
# Encode the test images with the zero-shot model θ0 and with a fine-tuned θ (FT), and compare the
# energies E0(x, t) = s⟨φθ0(x), ψ(t)⟩ and E(x, t) = s⟨φθ(x), ψ(t)⟩ on the random texts. If fine-tuning had
# only touched what the classes need, the points would lie on the diagonal.

# %%
task = rftlab.load_task("shift", n_test=N_TEST)
splits = task.eval_splits()
zs = rftlab.ClipClassifier.zeroshot(clip, task.classnames, task.templates)
feats0 = {d: encode_split(zs, sp, clip.preprocess) for d, sp in splits.items()}
results = {"zero-shot": rftlab.evaluate(zs, task, clip.preprocess)}
models = {"FT": rftlab.finetune("ft", clip, task, CFG).classifier}
results["FT"] = rftlab.evaluate(models["FT"], task, clip.preprocess)
feats = {"FT": {d: encode_split(models["FT"], sp, clip.preprocess) for d, sp in splits.items()}}

def energy_scatter(name, n=400):
    g = torch.Generator().manual_seed(1)
    fig = go.Figure()
    for d in ("id", "sketch"):
        e0 = (s * feats0[d] @ text.t()).flatten()
        e = (s * feats[name][d] @ text.t()).flatten()
        pick = torch.randperm(len(e), generator=g)[:n]
        fig.add_scatter(x=e0[pick].numpy(), y=e[pick].numpy(), mode="markers", marker_size=4, opacity=0.6, name=d)
    lo, hi = float(e0.min()), float(e0.max())
    fig.add_scatter(x=[lo, hi], y=[lo, hi], mode="lines", line={"dash": "dash", "color": "gray"}, name="unchanged")
    fig.update_layout(xaxis_title="zero-shot energy s<φθ0(x), ψ(t)>", yaxis_title=f"{name} energy s<φθ(x), ψ(t)>",
                      title=f"Energies on random texts: zero-shot vs {name}", height=420)
    return fig

energy_scatter("FT").show()

# %% [markdown]
# The gap summarises the scatter: for each image, half the mean squared difference of the energies over
# the M texts, averaged over images,
#
# $$R(\theta) = \frac{1}{B}\sum_{i=1}^{B} \frac{1}{2M}\sum_{m=1}^{M}
# \big(s\langle\varphi_\theta(x_i), \psi(t_m)\rangle - s\langle\varphi_{\theta_0}(x_i), \psi(t_m)\rangle\big)^2 .$$
#
# The scale s sits **inside** the square: the gap is measured in logits, the units the model's softmax uses.
# With the scale outside (s·gap²) or missing (gap²) the same λ would mean a much weaker penalty (by a
# factor s or s²). The cell below measures R per test domain with rftlab's implementation.

# %%
gap = {"FT": {d: rftlab.losses.lipsum_regularizer(feats["FT"][d], feats0[d], text, s).item() for d in splits}}

def show(name):
    r = results[name]
    line = f"{name:<10} ID {r['id_acc']:.3f} | mean OOD {r['mean_ood_acc']:.3f}"
    if name in gap:
        line += " | energy gap R " + " ".join(f"{d} {v:.3f}" for d, v in gap[name].items())
    print(line)

for name in results:
    show(name)


# %% [markdown]
# ### Exercise 4: the Lipsum-FT regulariser
#
# Lipsum-FT's loss is CE + λ·R, with R as above computed on each training batch with M fresh random texts.
# Write `my_lipsum(features, features0, text_features, logit_scale)`:
#
# * `features` (B, D): φθ(x) of the model being trained (normalised); `features0` (B, D): φθ0(x);
# * `text_features` (M, D): ψ(t_m) (normalised); `logit_scale`: s;
# * return R: mean over the B images of (1/2M)·Σ_m (s·⟨φθ, ψ_m⟩ − s·⟨φθ0, ψ_m⟩)², a tensor that keeps
#   its gradient.
#
# Mind the two classic slips: the scale outside the square, and dividing by M instead of 2M.

# %% nbgrader={"grade": false, "grade_id": "my_lipsum", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_lipsum(features, features0, text_features, logit_scale):
    """Lipsum-FT: mean over images of sum_m (s<phi, psi_m> - s<phi0, psi_m>)^2 / (2M)."""
    # about 4 lines
    ### BEGIN SOLUTION
    m = text_features.shape[0]
    energy = logit_scale * features @ text_features.t()      # (B, M), the scale inside
    energy0 = logit_scale * features0 @ text_features.t()
    return (energy - energy0).pow(2).sum(1).div(2 * m).mean()
    # Solution notes. `(energy - energy0).pow(2).mean()` would average over the M texts *and* the batch,
    # which is R times 2: the 1/2 is part of the definition (it makes the gradient of ½·gap² simply the
    # gap). `features0` comes from the frozen model, so no gradient flows into it; only `features` carries
    # the gradient.
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_lipsum", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
result = exercises.check_lipsum(my_lipsum)
### BEGIN HIDDEN TESTS
assert result.passed, result.message  # graded: the answer must pass its checker
### END HIDDEN TESTS

# %% [markdown]
# ## Lipsum-FT vs FT
#
# The cell below fine-tunes Lipsum-FT (λ = 1, M = 80 random texts per step) with your regulariser swapped
# into rftlab's method (or rftlab's own while your answer does not pass), then measures accuracy and the
# energy gap as for FT.

# %%
lipsum = result.implementation()
with exercises.swap_in("lipsum", lipsum):
    run = rftlab.finetune("lipsum-ft", clip, task, CFG)
models["Lipsum-FT"] = run.classifier
results["Lipsum-FT"] = rftlab.evaluate(models["Lipsum-FT"], task, clip.preprocess)
feats["Lipsum-FT"] = {d: encode_split(models["Lipsum-FT"], sp, clip.preprocess) for d, sp in splits.items()}
gap["Lipsum-FT"] = {d: rftlab.losses.lipsum_regularizer(feats["Lipsum-FT"][d], feats0[d], text, s).item() for d in splits}
for name in results:
    show(name)
steps = [h for h in run.history if "lipsum" in h]
print(f"Lipsum-FT training: R {steps[0]['lipsum']:.4f} at the first step, {steps[-1]['lipsum']:.4f} at the last "
      f"(CE {steps[-1]['ce']:.4f})")
assert len(steps) == STEPS

# %%
energy_scatter("Lipsum-FT").show()
domains = list(splits)
fig = go.Figure([go.Bar(name=m, x=domains, y=[gap[m][d] for d in domains]) for m in gap])
fig.update_layout(barmode="group", yaxis_title="energy gap R", height=330,
                  title="Energy gap to the zero-shot model on random texts, per test domain")
fig.show()

# %% [markdown]
# Compare the two scatter plots and the rows of the printout above: did Lipsum-FT keep the energies closer
# to the diagonal than FT, on sketches as well as photos, and what did that do to ID and OOD accuracy in
# this run? The regulariser saw photos only. (The library measures the same gap with
# `rftlab.analysis.energy_gap`.)
#
# ## Discussion questions
#
# 1. The random texts are meaningless. Why does preserving energies on *meaningless* texts help on
#    sketches? What would change with meaningful texts (captions of the classes, or of styles)?
# 2. Compare Lipsum-FT with L2-SP (a penalty on ‖θ − θ0‖²). Both keep the model near θ0: one in weight
#    space, one in function space. Which one allows large weight changes that leave the energies alone?
# 3. With the scale outside the square, what value of λ would give the same penalty as λ = 1 with the scale
#    inside, for s = 100? Why do the papers' λ values only make sense with the definition fixed?
# 4. Lipsum-FT draws M fresh texts every step. What would go wrong with one fixed set of M texts?
# 5. Each step, Lipsum-FT runs one extra forward pass of the frozen image tower (θ0's features) and encodes
#    the M fresh random texts with the frozen text tower (no gradients through either). How does its cost
#    compare with CAR-FT's (one frozen image pass; its context texts are encoded once) and with WiSE-FT's
#    (nothing per step)? `benchmarks/method_speed.py` measures all three.
#
# Next lesson: calibration, and CaRot.
