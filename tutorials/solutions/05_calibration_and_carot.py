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
# # Lesson 5: calibration and CaRot
#
# *Answer each exercise in place: the cell under it checks your answer.*
#
# A robust model should not only be right more often under distribution shift; it should also *know* when
# it is likely to be wrong. Its confidence should match its accuracy: that is **calibration**. Oh et al.
# (NeurIPS 2024) observe that FT, LP-FT, FLYP and Lipsum-FT all make the OOD calibration of CLIP worse, and
# propose CaRot, which improves OOD accuracy and calibration together.
#
# In this lesson you will
#
# 1. **exercise 5a**: write the expected calibration error (ECE) of an evaluation loop's batches (pooling
#    is the point);
# 2. draw reliability diagrams of the zero-shot and a fine-tuned model, in and out of distribution;
# 3. learn what CaRot adds to FLYP and why: an orthogonality constraint and self-distillation, motivated by
#    a bound involving the smallest singular value of the ID feature covariance;
# 4. **exercise 5b** (optional): write CaRot's orthogonality penalty;
# 5. compare FLYP and CaRot on accuracy, ECE and σ_min.
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
STEPS = 30 if SMOKE else 150                     # fine-tuning steps per method
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
# ## Expected calibration error
#
# Take each test image's top-label confidence (its largest predicted probability) and whether the top label
# is right. Split [0, 1] into equal-width bins (15 by default; right-closed: (k/n, (k+1)/n], a confidence of
# exactly 0 goes to the first bin). For each bin B_b, compare the accuracy with the mean confidence:
#
# $$\mathrm{ECE} = \sum_{b=1}^{n} \frac{|B_b|}{N}\,\big|\mathrm{acc}(B_b) - \mathrm{conf}(B_b)\big| .$$
#
# ECE is a property of the **whole** test set. Evaluation loops produce predictions batch by batch, and the
# tempting shortcut, computing ECE per batch and averaging, is wrong: each batch fills the bins with a
# handful of samples, their accuracies are noisy, and the absolute gaps of noise add up instead of
# cancelling. Pool first, then bin.
#
# ### Exercise 5a: pooled ECE
#
# Write `my_pooled_ece(batches, n_bins=15)`: `batches` is a list of `(probs, labels)` pairs, `probs` (b, C)
# probabilities (rows sum to 1), `labels` (b,). Return the ECE of all samples together, as a float.
#
# Useful: `torch.cat`, `probs.max(1)` (values and indices), `torch.ceil`, `torch.clamp`,
# `torch.zeros(n).index_add_(0, index, values)` or a loop over bins.

# %%
import torch.nn.functional as F
from rftlab.evaluation import predict


# %% nbgrader={"grade": false, "grade_id": "my_pooled_ece", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_pooled_ece(batches, n_bins=15):
    """Top-label ECE of all the batches pooled, equal-width right-closed bins."""
    # about 10 lines
    ### BEGIN SOLUTION
    probs = torch.cat([p for p, _ in batches]).float()
    labels = torch.cat([y for _, y in batches])
    conf, pred = probs.max(1)
    right = (pred == labels).float()
    bins = torch.clamp(torch.ceil(conf * n_bins).long() - 1, 0, n_bins - 1)  # (k/n, (k+1)/n] -> k
    total = 0.0
    for b in range(n_bins):
        in_bin = bins == b
        if in_bin.any():
            total += in_bin.sum().item() * abs(right[in_bin].mean().item() - conf[in_bin].mean().item())
    return total / len(labels)
    # Solution notes. `torch.ceil(conf * n_bins) - 1` puts a confidence of exactly k/n into bin k − 1
    # (right-closed bins), and the clamp sends a confidence of 0 to the first bin. Weighting each bin by its
    # share of samples (`in_bin.sum() / N`) is what makes ECE an expectation; averaging the bins' gaps
    # equally gives the "unweighted bins" mistake.
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_ece", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
result_ece = exercises.check_ece(my_pooled_ece)
### BEGIN HIDDEN TESTS
assert result_ece.passed, result_ece.message  # graded: the answer must pass its checker
### END HIDDEN TESTS

# %% [markdown]
# ## Calibration before and after fine-tuning
#
# The cells below fine-tune FT, run an evaluation loop (batches of 256) on every test domain, and compute
# ECE with your function (or rftlab's while yours does not pass). For contrast they also compute the
# per-batch average with small batches of 32, the shortcut the exercise warns about.

# %%
ece_fn = result_ece.implementation()
task = rftlab.load_task("shift", n_test=N_TEST)
splits = task.eval_splits()
zs = rftlab.ClipClassifier.zeroshot(clip, task.classnames, task.templates)
models = {"zero-shot": zs, "FT": rftlab.finetune("ft", clip, task, CFG).classifier}
logits, results = {}, {}

def measure(name):
    logits[name] = {d: predict(models[name], sp, clip.preprocess) for d, sp in splits.items()}
    r = task.evaluate(logits[name])
    batches = {d: list(zip(logits[name][d].softmax(1).split(256), sp.labels.split(256))) for d, sp in splits.items()}
    r["my_ece"] = {d: ece_fn(b) for d, b in batches.items()}
    small = {d: list(zip(logits[name][d].softmax(1).split(32), sp.labels.split(32))) for d, sp in splits.items()}
    r["per_batch_ece"] = {d: sum(rftlab.metrics.ece(p, y) for p, y in b) / len(b) for d, b in small.items()}
    results[name] = r

def show(name):
    r = results[name]
    print(f"{name:<10} ID acc {r['id_acc']:.3f}  mean OOD acc {r['mean_ood_acc']:.3f}")
    print("   ECE (pooled)         " + "  ".join(f"{d} {v:.3f}" for d, v in r["my_ece"].items()))
    print("   per-batch avg (b=32) " + "  ".join(f"{d} {v:.3f}" for d, v in r["per_batch_ece"].items()))

for name in models:
    measure(name)
    show(name)
    assert abs(results[name]["my_ece"]["id"] - results[name]["ece"]) < 1e-4  # pooled ECE = rftlab's protocol

# %% [markdown]
# Compare the two ECE lines of each model above: the per-batch average differs from the pooled ECE
# (typically it comes out larger), though both summarise the same predictions. Only the pooled value is
# rftlab's protocol (`task.evaluate` reports it as `ece` and `ood_ece`).
#
# A reliability diagram shows where the error comes from: points below the diagonal are over-confident
# bins, points above it under-confident ones. (`rftlab.analysis.reliability` computes the bins;
# `rftlab.plots.plot_reliability` draws them.)

# %%
from rftlab.analysis import reliability
from rftlab.plots import plot_reliability

for d in ("id", "sketch"):
    fig = plot_reliability({name: reliability(logits[name][d], splits[d].labels) for name in models})
    fig.update_layout(title=f"Reliability diagram on {d} test images", height=380)
    fig.show()


# %% [markdown]
# ## CaRot
#
# CaRot builds on FLYP (contrastive fine-tuning of both towers with captions of the class) and adds:
#
# $$\mathcal{L} = \mathcal{L}_{\text{FLYP}} + \lambda_{OC}\,\lVert W_v^\top W_v - I\rVert_F
# + \lambda_X\,\lVert W_v W_t^\top\rVert_F + \lambda_{SD}\,\mathcal{L}_{SD},$$
#
# * W_v: the visual projection (width × embedding dim). ‖W_vᵀW_v − I‖_F (**not squared**) pushes its columns
#   to be orthonormal;
# * ‖W_v W_tᵀ‖_F (also not squared): a cross term between the visual and the text projection (W_t: the
#   text projection), in CaRot's loss as rftlab implements it (docs/methods.md), with the weight λ_X = 0.05
#   (`rftlab.get_method("carot").lambda_x`); the exercises below leave it out;
# * L_SD: self-distillation, soft-label cross-entropy towards an EMA teacher's image-text logits;
# * the theory: OOD error and OOD calibration error are bounded by ID calibration error plus a term that
#   shrinks as σ_min, the smallest singular value of the ID feature covariance, grows. An orthonormal
#   projection keeps the feature directions from collapsing, which keeps σ_min up; self-distillation keeps
#   calibration.
#
# ### Exercise 5b (optional): the orthogonality penalty
#
# Write `my_orthogonality(proj)`: `proj` is P, (width, embed_dim); return ‖PᵀP − I‖_F (Frobenius norm,
# not squared) as a tensor that keeps its gradient. Useful: `torch.eye`, `torch.linalg.matrix_norm`.

# %% nbgrader={"grade": false, "grade_id": "my_orthogonality", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_orthogonality(proj):
    """CaRot: ||P^T P - I||_F, not squared."""
    # about 3 lines
    ### BEGIN SOLUTION
    gram = proj.t() @ proj                                   # (embed_dim, embed_dim)
    eye = torch.eye(gram.shape[0], dtype=proj.dtype, device=proj.device)
    return torch.linalg.matrix_norm(gram - eye)               # Frobenius by default
    # Solution notes. `P @ P.T` would be width × width and can never be the identity when width > embed_dim.
    # Squaring the norm changes the gradient's size as the penalty shrinks (the squared norm's gradient
    # vanishes near the optimum), so λ_OC = 0.2 would mean something else.
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_orthogonality", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
result_ortho = exercises.check_orthogonality(my_orthogonality)
### BEGIN HIDDEN TESTS
assert result_ortho.passed, result_ortho.message  # graded: the answer must pass its checker
### END HIDDEN TESTS

# %% [markdown]
# ## FLYP vs CaRot
#
# The cell below fine-tunes FLYP and CaRot, with your orthogonality penalty swapped into rftlab's CaRot (or
# rftlab's own), and measures accuracy, pooled ECE, σ_min of the ID test features' covariance (the library
# has it as `rftlab.analysis.covariance_sigma_min`) and the orthogonality of each model's visual projection.

# %%
from rftlab.encode import encode_split
from rftlab.methods.carot import visual_projection

ortho = result_ortho.implementation()
models["FLYP"] = rftlab.finetune("flyp", clip, task, CFG).classifier
with exercises.swap_in("orthogonality", ortho):
    run = rftlab.finetune("carot", clip, task, CFG)
models["CaRot"] = run.classifier
for name in ("FLYP", "CaRot"):
    measure(name)
def covariance_spectrum(features):
    """Singular values of the ID feature covariance (1/N) Fc^T Fc, largest first (Fc: centred features)."""
    f = features.double() - features.double().mean(0)
    return torch.linalg.svdvals(f.t() @ f / len(f))

spectra = {n: covariance_spectrum(encode_split(m, splits["id"], clip.preprocess)) for n, m in models.items()}
sigma = {n: sp.min().item() for n, sp in spectra.items()}
oc = {n: rftlab.losses.orthogonality(visual_projection(m.clip).detach()).item() for n, m in models.items()}
for name in models:
    show(name)
    print(f"   sigma_min of the ID feature covariance {sigma[name]:.2e}   ||Wv^T Wv - I||_F {oc[name]:.3f}")
steps = [h for h in run.history if "orthogonality" in h]
assert len(steps) == STEPS

# %%
names = list(models)
mean_ood_ece = {n: sum(v for d, v in results[n]["my_ece"].items() if d != "id") / (len(splits) - 1) for n in names}
fig = go.Figure(go.Scatter(x=[results[n]["my_ece"]["id"] for n in names], y=[mean_ood_ece[n] for n in names],
                           mode="markers+text", text=names, textposition="top center", marker_size=12))
fig.update_layout(xaxis_title="ID ECE", yaxis_title="mean OOD ECE", height=400,
                  title="Calibration in and out of distribution (lower is better on both axes)")
fig.show()
fig = go.Figure([go.Scatter(y=spectra[n].numpy(), mode="lines", name=n) for n in names])
fig.update_layout(xaxis_title="index (largest first)", yaxis_title="singular value", yaxis_type="log", height=380,
                  title="Spectrum of the ID feature covariance; σ_min is its last point")
fig.show()
top = {n: (spectra[n] > 1e-3 * spectra[n][0]).sum().item() for n in names}
print("directions above 1/1000 of the largest:", ", ".join(f"{n} {k}" for n, k in top.items()),
      f"(of {len(spectra[names[0]])} dimensions)")

# %% [markdown]
# Read the printout and the figures above: which model has the lowest ID and OOD ECE in this run? Does
# CaRot's projection end up more orthogonal than FLYP's? Then look at σ_min. When it is tiny for *every*
# model, as the spectrum plot may show on the world, the covariance is numerically rank-deficient: the
# embedding uses fewer directions than it has dimensions, and σ_min alone cannot rank the models; the
# whole spectrum (how many directions carry variance, the last printout) says more. One short run with
# one seed on a small model is one draw; the paper's claims are about ImageNet-scale runs.
#
# ## Discussion questions
#
# 1. ECE depends on the number of bins. Compute the pooled ECE of one model with 5, 15 and 50 bins. Which
#    values are you willing to compare across papers?
# 2. A model can have a low ECE and a low accuracy. Give an example. What does ECE not tell you?
# 3. Temperature scaling (`rftlab.analysis.fit_temperature`, fitted on val) fixes ID calibration after
#    training. Why does it not necessarily fix OOD calibration?
# 4. Why would orthonormal columns of the visual projection keep σ_min of the feature covariance away from
#    zero? What else could shrink σ_min?
# 5. CaRot's self-distillation teacher is an EMA of the student. How is that different from Lipsum-FT's or
#    CAR-FT's frozen zero-shot reference?
#
# Next (optional) lesson: everything together, on the world or on a real checkpoint.
