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
# # Lesson 2: spurious features and StarFT
#
# *Answer each exercise in place: the cell under it checks your answer.*
#
# A training set can reward the wrong cue. In Waterbirds, most waterbirds are photographed on water and
# most landbirds on land, so a classifier can score well by looking at the background. A zero-shot CLIP
# never saw that correlation; fine-tuning on such a set teaches it.
#
# In this lesson you will
#
# 1. see a spurious correlation in the training set and measure what it does to each *group*
#    (class × background), with worst-group accuracy as the yardstick;
# 2. learn how StarFT (Kim et al., IJCAI 2025) keeps the zero-shot model's view of spurious cues: captions
#    with injected spurious phrases, and a KL that keeps the fine-tuned model ranking them as the zero-shot
#    model did;
# 3. **exercise**: write StarFT's masked KL;
# 4. fine-tune with FLYP and with StarFT (running your KL inside rftlab) and compare the groups.
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
# ## A Waterbirds-like task
#
# `spurious` has two classes, *square* and *cross*, drawn small (far away, like the birds), on land or water
# backgrounds. In the training set each class sits on "its own" place most of the time; validation and
# test are balanced over the four groups *class/place*. The cell below counts the training groups.

# %%
from PIL import Image
from torchvision.utils import make_grid

def image_row(images, zoom=3):
    """A row of uint8 images (N, 3, H, W) as one PIL image."""
    grid = make_grid(images, nrow=len(images), padding=2, pad_value=255)
    return Image.fromarray(grid.permute(1, 2, 0).numpy()).resize((grid.shape[2] * zoom, grid.shape[1] * zoom), Image.NEAREST)

task = rftlab.load_task("spurious", n_test=N_TEST)
print(task.summary())
counts = torch.bincount(task.train.meta["group"], minlength=len(task.group_names))
for name, n in zip(task.group_names, counts.tolist()):
    print(f"  train images in group {name:<13} {n:>4}")
for k, name in enumerate(task.group_names):
    idx = (task.test.meta["group"] == k).nonzero().flatten()[:10]
    print(name)
    display(image_row(task.test.images[idx]))

# %% [markdown]
# ## Average accuracy hides the minority groups
#
# We report, on the balanced test set, the accuracy of each group and the **worst-group accuracy**, the
# minimum over groups. A model that reads the background gets the majority groups right and the minority
# groups (a square on the *cross's* usual place, and the reverse) wrong.

# %%
zs = rftlab.ClipClassifier.zeroshot(clip, task.classnames, task.templates)
results = {"zero-shot": rftlab.evaluate(zs, task, clip.preprocess)}
results["FT"] = rftlab.evaluate(rftlab.finetune("ft", clip, task, CFG).classifier, task, clip.preprocess)

def show(name):
    r = results[name]
    print(f"{name:<10} worst group {r['worst_group_acc']:.3f} | average {r['avg_acc']:.3f} | " +
          " ".join(f"{g} {a:.3f}" for g, a in r["group_acc"].items()))

for name in results:
    show(name)


# %%
def group_figure(names, title):
    groups = task.group_names
    fig = go.Figure([go.Bar(name=n, x=groups, y=[results[n]["group_acc"][g] for g in groups]) for n in names])
    fig.update_layout(barmode="group", yaxis_title="test accuracy", yaxis_range=[0, 1], height=350, title=title)
    return fig

group_figure(list(results), "Accuracy per group (class/place)").show()

# %% [markdown]
# Compare the zero-shot and FT rows above: which groups lost accuracy with fine-tuning, and are they the
# minority groups of the training set (the smallest counts in the first printout)?
#
# ## StarFT: keep the zero-shot view of spurious cues
#
# StarFT starts from FLYP: fine-tune both towers with CLIP's own contrastive loss on (image, caption of its
# class) pairs, captions "a photo of a {class}". It adds, for each image, a **spuriosity-injected caption**:
# its class caption with a random spurious phrase ("a photo of a square on the ice", "a photo of a red
# cross"). The phrases are class-agnostic: backgrounds, colours, textures, image quality.
#
# For a batch of B images, z_ij = s0·⟨φθ(x_i), ψθ(u_j)⟩ is the student's logit of image i against the
# injected caption u_j of image j, and z⁰_ij the same with the frozen zero-shot model. StarFT masks every
# entry whose caption has the *image's own label* (y_i = y_j, the diagonal included) to −1e8 in both, and
# adds
#
# $$\mathcal{L}_{\text{StarFT}} = \mathcal{L}_{\text{FLYP}} + \lambda_e \, \frac{1}{B} \sum_i
# \mathrm{KL}\big(\mathrm{softmax}_j\, z^0_{i} \,\big\|\, \mathrm{softmax}_j\, z_{i}\big).$$
#
# Why the mask? The same-class captions are the ones the contrastive loss pulls the image towards; the KL
# should only preserve how the zero-shot model *ranks the other classes'* spurious captions, that is, how
# much weight it gives to the spurious phrase itself. Why this direction? The zero-shot (teacher)
# distribution is the target the student must cover.
#
# The cell below builds one batch and shows the teacher's logits and its masked distribution.

# %%
import torch.nn.functional as F
phrases = task.spurious_phrases()   # what StarFT reads: the task's metadata phrases
print(f"{len(phrases)} spurious phrases for this task, e.g.:", ", ".join(p.format("square") for p in phrases[::7]))

g = torch.Generator().manual_seed(0)
idx = torch.randperm(len(task.train), generator=g)[:10]
idx = idx[task.train.labels[idx].argsort()]
labels = task.train.labels[idx]
captions = ["a photo of a " + phrases[int(torch.randint(len(phrases), (1,), generator=g))].format(task.classnames[y])
            for y in labels.tolist()]
with torch.no_grad():
    image_feats = zs.features(task.train.get(idx, clip.preprocess))
    caption_feats = F.normalize(clip.model.encode_text(clip.tokenizer(captions)), dim=-1)
s0 = clip.model.logit_scale.exp().item()
z0 = s0 * image_feats @ caption_feats.t()
same = labels[:, None] == labels[None, :]
p0 = F.softmax(z0.masked_fill(same, -1e8), dim=-1)
print(f"s0 = {s0:.2f}; masked entries per row: {same.sum(1).tolist()}")

# %%
from plotly.subplots import make_subplots
rows = [f"{i}: {task.classnames[y]}" for i, y in enumerate(labels.tolist())]
cols = [f"{j}: {c}" for j, c in enumerate(captions)]
fig = make_subplots(rows=1, cols=2, subplot_titles=("teacher logits z0 (all entries)",
                                                     "teacher distribution, same-label entries masked"))
fig.add_heatmap(z=z0.numpy(), x=cols, y=rows, colorscale="Viridis", showscale=False, row=1, col=1)
fig.add_heatmap(z=p0.numpy(), x=cols, y=rows, colorscale="Viridis", row=1, col=2)
fig.update_yaxes(autorange="reversed")
fig.update_xaxes(showticklabels=False)
fig.update_layout(height=420, title="One batch: images (rows) against spuriosity-injected captions (columns)")
fig.show()
for c in captions[:4]:
    print("  caption:", c)


# %% [markdown]
# In the right panel each row is a distribution over the captions of the *other* class only: the block of
# same-class captions (the diagonal blocks) carries no mass.
#
# ### Exercise 2: StarFT's masked KL
#
# Write `my_starft_kl(logits, teacher_logits, labels)`:
#
# * `logits`, `teacher_logits`: (B, B), the student's and the zero-shot model's z; `labels`: (B,);
# * mask the entries with `labels[i] == labels[j]` (the diagonal included) to −1e8 in **both**;
# * per row i: KL(softmax(teacher row) ‖ softmax(student row)) = Σ_j p_j (log p_j − log q_j);
# * return the mean over the B rows, as a tensor that keeps its gradient.
#
# Useful: `t.masked_fill(mask, value)`, `F.log_softmax(x, dim=-1)`.

# %% nbgrader={"grade": false, "grade_id": "my_starft_kl", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_starft_kl(logits, teacher_logits, labels):
    """StarFT: mean over images of KL(teacher || student) over the other classes' captions."""
    # about 4 lines
    ### BEGIN SOLUTION
    same = labels[:, None] == labels[None, :]            # (B, B): y_i == y_j, the diagonal included
    log_q = F.log_softmax(logits.masked_fill(same, -1e8), dim=-1)
    log_p = F.log_softmax(teacher_logits.masked_fill(same, -1e8), dim=-1)
    return (log_p.exp() * (log_p - log_q)).sum(-1).mean()  # KL(teacher || student), averaged over images
    # Solution notes. Masked entries get a logit of −1e8, so their probability is exactly 0 in both
    # distributions and their terms p·(log p − log q) vanish; −inf would give 0·(−inf + inf) = NaN. Masking
    # only the diagonal (`torch.eye`) leaves the other same-class captions in, and the KL then also pulls
    # the positive captions back towards the zero-shot model's view, fighting the contrastive loss.
    # `F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")` computes the same KL(p ‖ q): its
    # *first* argument is the student's log-probabilities.
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "check_starft_kl", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
# NBVAL_CHECK_OUTPUT
result = exercises.check_starft_kl(my_starft_kl)
### BEGIN HIDDEN TESTS
assert result.passed, result.message  # graded: the answer must pass its checker
### END HIDDEN TESTS

# %% [markdown]
# ## FLYP vs StarFT
#
# The cell below fine-tunes FLYP (StarFT without the KL) and StarFT, whose KL runs your function
# (or rftlab's while your answer does not pass): `exercises.swap_in` puts it inside rftlab's StarFT for the
# duration of the `with` block.

# %%
kl = result.implementation()
results["FLYP"] = rftlab.evaluate(rftlab.finetune("flyp", clip, task, CFG).classifier, task, clip.preprocess)
with exercises.swap_in("starft_kl", kl):
    run = rftlab.finetune("starft", clip, task, CFG)
results["StarFT"] = rftlab.evaluate(run.classifier, task, clip.preprocess)
for name in results:
    show(name)
history = [h for h in run.history if "spurious_kl" in h]  # one record per training step
print(f"StarFT's KL: first step {history[0]['spurious_kl']:.4f}, last step {history[-1]['spurious_kl']:.4f}")
assert len(history) == STEPS and all(h["spurious_kl"] >= 0 for h in history)

# %%
group_figure(list(results), "Accuracy per group: zero-shot, FT, FLYP and StarFT").show()
fig = go.Figure(go.Scatter(x=[h["step"] for h in history], y=[h["spurious_kl"] for h in history], mode="lines"))
fig.update_layout(xaxis_title="step", yaxis_title="masked KL(teacher || student)", height=300,
                  title="StarFT: how far the student drifts from the teacher on spurious captions")
fig.show()

# %% [markdown]
# Compare worst-group accuracy across the four rows of the printout above, and look at which groups
# moved. On Waterbirds with ViT-B/16 the StarFT paper reports a large worst-group gain over other robust
# fine-tuning methods; the world is much smaller, and one short run with one seed is noisy, so treat the
# numbers here as one draw, not a verdict.
#
# ## Discussion questions
#
# 1. The zero-shot model never saw the training set's correlation. What exactly did fine-tuning learn that
#    hurt the minority groups? How would you test that it uses the background? (Hint: the test set has the same
#    shapes on both places.)
# 2. StarFT's phrases are class-agnostic and written without looking at the data. What happens if the real
#    spurious cue of a dataset is not in the pool?
# 3. Why is the KL computed against captions of *other* classes only? What would the KL do to the FLYP term
#    if same-class captions stayed in?
# 4. λ decays to 0 over the epochs (`rftlab.methods.StarFT.weight`). Why might a method want its
#    regulariser strongest at the start?
# 5. Worst-group accuracy needs group labels on the *test* set; model selection on worst-group accuracy
#    needs them on validation. Which of the methods you saw need group labels for *training*?
#
# Next lesson: context, and CAR-FT, which keeps the zero-shot model's distribution over contexts such as
# "a sketch of" or "a painting of".
