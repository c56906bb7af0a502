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
# # Lesson 6: putting it together
#
# *Answer the exercise in place: the cell under it runs your answer.*
#
# The previous lessons took one method at a time. Here every method runs under one protocol, on one task,
# with one budget, and you read the results the way the papers do: ID against OOD accuracy, the WiSE-FT
# curve as the baseline to beat, calibration in and out of distribution.
#
# The first cell holds the choices. By default everything runs on rftlab's world, on a laptop CPU. To run
# on a real checkpoint, change `MODEL, PRETRAINED` (weights must already be on disk: nothing is downloaded)
# and `DATASET, ROOT` (see `rftlab.datasets.DATASETS` and `docs/datasets.md`); that wants a GPU.
#
# There is no checker in this lesson: the exercise is to extend the comparison with runs of your own.
#
# Time: about 45 minutes.

# %% [markdown]
# **How the exercises work.** An exercise cell holds a function whose body is `raise NotImplementedError`.
# Replace that line with your code and run the cell: the checker below it runs your function on several
# generated cases against rftlab's own implementation and answers *passed*, *not answered yet*, a
# diagnosis of a classic mistake, or the first case where your function disagrees. Until your answer passes,
# the cells after it use rftlab's reference implementation (they say so), so the notebook always runs top
# to bottom. The solutions are in `tutorials/solutions/`.

# %%
# --- choose the model and data here -------------------------------------------------
import os
SMOKE = os.environ.get("RFTLAB_SMOKE") == "1"  # CI sets RFTLAB_SMOKE=1: shorter runs, same story
MODEL, PRETRAINED = "rftlab-world", None        # a real CLIP: MODEL, PRETRAINED = "ViT-B-16-quickgelu", "openai"
DATASET, ROOT = None, None                      # real data: DATASET, ROOT = "domainnet", "~/data/domainnet"
STEPS = 20 if SMOKE else 100                     # fine-tuning steps per method
N_TEST = 200 if SMOKE else 800                   # test images per domain (world only)
METHODS = ["ft", "lp-ft", "wise-ft", "lipsum-ft", "car-ft", "flyp", "carot"]
# -------------------------------------------------------------------------------------
import time
import torch
import plotly.graph_objects as go
import rftlab
torch.manual_seed(0)
clip = rftlab.load_model(MODEL, PRETRAINED)
task = rftlab.load_task("shift", n_test=N_TEST) if DATASET is None else rftlab.load_dataset(DATASET, ROOT)
CFG = rftlab.TrainConfig(steps=STEPS, eval_every=0, progress=False)  # no validation: keep the last step
print(f"model: {clip.arch} ({sum(p.numel() for p in clip.model.parameters()) / 1e6:.2f}M parameters), "
      f"smoke mode: {SMOKE}, {STEPS} steps per method")
print(task.summary())

# %% [markdown]
# ## One protocol
#
# Every method starts from the same zero-shot classifier, trains for the same number of steps with the
# same seed, batch size and learning-rate schedule (`CFG`), and keeps its **last** step: nothing is selected
# on the test sets. Each is then scored by `rftlab.evaluate`: ID accuracy, accuracy on each OOD set, their
# mean, and pooled ECE. `rftlab.get_method(name).hparams` lists each method's hyperparameters with the
# world default and the paper's value; the defaults are used here.

# %%
# NBVAL_CHECK_OUTPUT
for m in METHODS:
    method = rftlab.get_method(m)
    print(f"{m:<10} {method.summary}")
    for k, h in method.hparams.items():
        print(f"{'':<12}{k} = {h.default!r} (paper: {h.paper!r}): {h.doc}")

# %%
zs = rftlab.ClipClassifier.zeroshot(clip, task.classnames, task.templates)
rows = {"zero-shot": {**rftlab.evaluate(zs, task, clip.preprocess), "seconds": 0.0}}
classifiers = {"zero-shot": zs}

def run(name, method, **hparams):
    t0 = time.time()
    res = rftlab.finetune(method, clip, task, CFG, **hparams)
    classifiers[name] = res.classifier
    rows[name] = {**rftlab.evaluate(res.classifier, task, clip.preprocess), "seconds": time.time() - t0}

def table(names):
    ood = list(rows["zero-shot"]["ood_acc"])
    print(f"{'method':<16}{'ID':>7}" + "".join(f"{d[:9]:>10}" for d in ood) + f"{'mean OOD':>10}{'ECE':>7}{'OOD ECE':>9}{'s':>6}")
    for n in names:
        r = rows[n]
        ood_ece = sum(r["ood_ece"].values()) / max(1, len(r["ood_ece"]))
        print(f"{n:<16}{r['id_acc']:>7.3f}" + "".join(f"{r['ood_acc'][d]:>10.3f}" for d in ood) +
              f"{r['mean_ood_acc']:>10.3f}{r['ece']:>7.3f}{ood_ece:>9.3f}{r['seconds']:>6.0f}")

for m in METHODS:
    run(m, m)
table(rows)
assert set(METHODS) <= set(rows)

# %% [markdown]
# ## ID against OOD, with the WiSE-FT curve
#
# A method is only interesting if it beats what the simplest baseline already buys. The WiSE-FT curve
# (FT interpolated with zero-shot, lesson 1) is that baseline: the cell below draws it with every method's
# point. Points above the curve are real gains in robustness; points on it are a trade-off WiSE-FT gives
# for free.

# %%
from rftlab.analysis import wise_curve
alphas = [0.0, 0.5, 1.0] if SMOKE else [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
curve = wise_curve(zs, classifiers["ft"], task, clip.preprocess, alphas)
fig = go.Figure()
fig.add_scatter(x=[r["id_acc"] for r in curve], y=[r["mean_ood_acc"] for r in curve], mode="lines+markers",
                name="WiSE-FT curve (FT)", line={"dash": "dot"})
names = list(rows)
fig.add_scatter(x=[rows[n]["id_acc"] for n in names], y=[rows[n]["mean_ood_acc"] for n in names],
                mode="markers+text", text=names, textposition="top center", marker_size=11, name="methods")
fig.update_layout(xaxis_title="ID accuracy", yaxis_title="mean OOD accuracy", height=480,
                  title="Every method against the WiSE-FT curve")
fig.show()
for r in curve:
    print(f"WiSE-FT alpha {r['alpha']:.1f}: ID {r['id_acc']:.3f}, mean OOD {r['mean_ood_acc']:.3f}")

# %%
fig = go.Figure(go.Scatter(x=[rows[n]["ece"] for n in names],
                           y=[sum(rows[n]["ood_ece"].values()) / max(1, len(rows[n]["ood_ece"])) for n in names],
                           mode="markers+text", text=names, textposition="top center", marker_size=11))
fig.update_layout(xaxis_title="ID ECE", yaxis_title="mean OOD ECE", height=420,
                  title="Calibration in and out of distribution (lower is better)")
fig.show()


# %% [markdown]
# Read the table and the figures above. Which methods sit above the WiSE-FT curve in this run? Which have
# the best OOD calibration? Is the ordering the same on every OOD domain (the table's columns)? With one
# seed and a short budget these are single draws: before you believe a difference, re-run with other
# seeds (`dataclasses.replace(CFG, seed=1)`) or use `rftlab.compare.compare`, which reports mean and
# spread over seeds.
#
# ### Exercise 6: your own runs
#
# Return your runs from `my_runs()`: a name, a method and its hyperparameters (see the listing above). Ideas: a larger
# λ for Lipsum-FT or β for CAR-FT; WiSE-FT with another α; the same method with another seed. Then run
# the two cells: the second trains each run and prints the table with your rows added. While `my_runs()`
# returns no run, it only says so.

# %% nbgrader={"grade": false, "grade_id": "my_runs", "locked": false, "schema_version": 3, "solution": true, "task": false}
def my_runs():
    """Your runs: {"a name for the row": ("method", {hyperparameters})}, for example
    {"lipsum-ft λ=10": ("lipsum-ft", {"lam": 10.0})}."""
    ### BEGIN SOLUTION
    return {
        "lipsum-ft λ=10": ("lipsum-ft", {"lam": 10.0}),
        "car-ft β=5": ("car-ft", {"beta": 5.0}),
    }
    # Solution notes. Stronger regularisers (larger λ or β) keep the model closer to zero-shot: expect ID
    # accuracy to gain less and OOD accuracy to drop less than with the defaults, that is, a move along a
    # trade-off curve. Whether a point moves *above* the WiSE-FT curve is the real question, and needs
    # several seeds to answer.
    ### END SOLUTION


# %% nbgrader={"grade": true, "grade_id": "run_my_runs", "locked": true, "points": 1, "schema_version": 3, "solution": false, "task": false}
try:
    MY_RUNS = my_runs()
except NotImplementedError:  # not answered yet
    MY_RUNS = {}
for name, (method, hparams) in MY_RUNS.items():
    run(name, method, **hparams)
if MY_RUNS:
    table(rows)
else:
    print("my_runs() returns no run yet: add one above and execute both cells again")
### BEGIN HIDDEN TESTS
assert MY_RUNS, "my_runs() must return at least one run of your own"
### END HIDDEN TESTS

# %% [markdown]
# ## On a real checkpoint
#
# Everything above is generic; only the first cell changes:
#
# 1. `MODEL, PRETRAINED = "ViT-B-16-quickgelu", "openai"` (or a weights file as `PRETRAINED`) with the
#    weights already on disk. Beware of the classic trap: OpenAI weights were trained with QuickGELU (open_clip
#    names ending in `-quickgelu`); loading them into the GELU variant gives silently worse features.
# 2. `DATASET, ROOT = "domainnet", "~/data/domainnet"` (or `"waterbirds"`, `"imagenet"` with its variants,
#    see `rftlab.datasets.DATASETS`).
# 3. The papers' recipes are in `rftlab.get_method(name).paper_recipe` (learning rate, weight decay, batch
#    size, epochs, warm-up); `rftlab.recipe_config(name, clip, task)` turns the one for your model into a
#    TrainConfig (epochs become steps with the task's size), and `rftlab.finetune(name, clip, task)` uses it
#    when no config is given. They assume a GPU.
#
# ## Discussion questions
#
# 1. The methods differ in what they keep from the zero-shot model: weights (L2-SP, WiSE-FT), energies on
#    random texts (Lipsum-FT), context distributions (CAR-FT), the contrastive objective and a calibrated
#    teacher (FLYP, CaRot), the view of spurious cues (StarFT). Which would you try first on a new task, and
#    why?
# 2. Which of the methods can be combined with WiSE-FT after training? Would you expect the gains to add up?
# 3. A method's hyperparameters were tuned on ImageNet with ViT-B/16. What would you re-tune on a new task
#    and a different model, and on which data?
# 4. What would you need to claim that one method is more robust than another: how many seeds, which
#    OOD sets, which selection rule?
# 5. Run the comparison on `rftlab.load_task("spurious")` with StarFT added, and read worst-group
#    accuracy (`rows[name]["worst_group_acc"]`). Do the rankings agree with the ones above?
