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
# # Spuriosity: what fine-tuning ties the class to
#
# In Waterbirds, landbirds are photographed on land and waterbirds on water most of the time. A model fine-tuned
# on such data can learn "water → waterbird": right on the usual pictures, wrong on a landbird on a lake.
# Average accuracy hides this; the **worst group** (class × background) shows it.
#
# rftlab's `spurious` task is that setup in the world: two classes (square, cross), each on its "own" place
# (land or water) in 95% of the training images, objects small and far away so the background is the easier cue;
# the test set is balanced over the four class/place groups. A zero-shot CLIP never saw the correlation.
#
# This notebook looks at:
#
# 1. accuracy per group and the worst-group gap, before and after fine-tuning;
# 2. *zero-shot* group robustness: is the shortcut in the head or in the image features?
# 3. how strongly images of each group align with free-text descriptions ("a cross", "on the water"), before and
#    after fine-tuning;
# 4. a ranking of candidate spurious descriptions by how much fine-tuning increased their pull, with candidates
#    from the world's factors, rftlab's phrase pools, or your own function;
# 5. a mystery task: a shortcut is planted but not named, and the shortcut probe has to find it.

# %%
# NBVAL_CHECK_OUTPUT
# --- choose the model and data here -------------------------------------------------
import os
import rftlab
SMOKE = os.environ.get("RFTLAB_SMOKE") == "1"  # CI sets RFTLAB_SMOKE=1: shorter runs, same story
MODEL, PRETRAINED = "rftlab-world", None        # a real CLIP: MODEL, PRETRAINED = "ViT-B-32", "openai"
TASK = rftlab.load_task("spurious")            # real data: TASK = rftlab.load_task("waterbirds", root="/data/waterbirds")
STEPS = 60 if SMOKE else 150                     # fine-tuning steps per run (the world default is 150)
SEED = 0                                         # training seed: change it to see the spread between runs
# -------------------------------------------------------------------------------------
import torch
import plotly.graph_objects as go
from rftlab import analysis, plots
torch.manual_seed(0)
clip = rftlab.load_model(MODEL, PRETRAINED)
CFG = rftlab.TrainConfig(steps=STEPS, seed=SEED, eval_every=0, progress=False)  # no validation: the last step is kept
print(f"model: {clip.arch} ({sum(p.numel() for p in clip.model.parameters()) / 1e6:.2f}M parameters), "
      f"smoke mode: {SMOKE}, {STEPS} steps per fine-tuning run")
print(TASK.summary())

# %% [markdown]
# ## 1. Accuracy per group
#
# θ0: the zero-shot classifier. θ: plain fine-tuning (FT) on the training set. The dark outline marks each
# model's worst group.

# %%
zs = rftlab.ClipClassifier.zeroshot(clip, TASK.classnames, TASK.templates)
ft = rftlab.finetune("ft", clip, TASK, CFG).classifier
models = {"zero-shot": zs, "FT": ft}
plots.plot_group_accuracy(analysis.group_table(models, TASK, clip.preprocess)).update_layout(height=380).show()
acc = {name: analysis.group_accuracy(m, TASK, clip.preprocess) for name, m in models.items()}
for name, m in acc.items():
    print(f"{name:<10} average {m['avg_acc']:.3f}  worst group {m['worst_group_acc']:.3f}  gap {m['gap']:.3f}   "
          + "  ".join(f"{g} {a:.3f}" for g, a in m["group_acc"].items()))
assert acc["FT"]["worst_group_acc"] < acc["zero-shot"]["worst_group_acc"]  # fine-tuning hurts the worst group
assert acc["FT"]["gap"] > acc["zero-shot"]["gap"]                          # and opens a gap to the average
train_counts = torch.bincount(TASK.train.meta["group"], minlength=len(TASK.group_names))
minority = {TASK.group_names[g] for g in train_counts.argsort()[:2].tolist()}   # the two rarest groups in training
ft_groups = acc["FT"]["group_acc"]
print("rarest groups in training:", sorted(minority))
assert set(sorted(ft_groups, key=ft_groups.get)[:2]) == minority             # ... and they are FT's two worst groups

# %% [markdown]
# The zero-shot model is about equally good on every group. After fine-tuning, the two groups where a class sits
# on the *other* class's usual place fall behind (the printout names them and gives the gap of this run): the
# model uses the background.
#
# ## 2. Zero-shot group robustness: head or features?
#
# FT trains the image tower *and* the head. Which one carries the shortcut? Rebuild a zero-shot head from each
# model's own text tower and prompts, and read each model's image features with it
# (`analysis.zeroshot_group_accuracy`). If the fine-tuned image features still fail the same groups under a
# fresh zero-shot head, the shortcut lives in the features.

# %%
zs_robust = {name: analysis.zeroshot_group_accuracy(m, TASK, clip.tokenizer, clip.preprocess) for name, m in models.items()}
for name, m in zs_robust.items():
    print(f"zero-shot head on {name + ' features:':<21} worst group {m['worst_group_acc']:.3f}   "
          + "  ".join(f"{g} {a:.3f}" for g, a in m["group_acc"].items()))
head_moved = (ft.head - zs.head).norm().item() / zs.head.norm().item()
print(f"relative change of the head during FT: {head_moved:.3f}")
assert zs_robust["FT"]["worst_group_acc"] < zs_robust["zero-shot"]["worst_group_acc"]  # the shortcut is in the features

# %% [markdown]
# The fine-tuned image tower, read by a head that never saw the training labels, still fails the minority groups:
# the shortcut is in the features. The printed relative change of the head says how little the head itself moved.
# This matters for remedies: re-fitting the head on balanced data (as in "last-layer retraining") can only use
# what the features still carry.
#
# StarFT's headline claim (+14.3 worst-group accuracy on Waterbirds) is this measurement, under one more twist:
# the model is fine-tuned on a *broad* task (ImageNet), and only then read zero-shot on Waterbirds with a fresh
# head from its own towers. `rftlab claims` runs that protocol on the world: every method fine-tuned on `broad`
# (all 8 shapes, each on its own place 90% of the time, as ImageNet classes sit in their scenes), then scored
# zero-shot on this task's balanced test. The recorded runs (`rftlab.recorded("claims")`, 3 seeds, 5 for close
# calls, every method tuned on validation with the same budget) are on the shipped world CLIP. In this world the
# effect StarFT builds on is small: fine-tuning on `broad` erodes zero-shot worst-group accuracy by less than the
# 0.05 the fidelity table asks (`docs/phenomena.md`, row F10), so there is little for StarFT to win back. The cell
# prints each verdict with its measured reason and checks the two directions this paragraph relies on: FT on
# `broad` does cost zero-shot worst-group accuracy, and StarFT does not beat the zero-shot model here.

# %%
recorded = rftlab.recorded("claims")
transfer = [r for r in recorded["rows"] if r["protocol"] == "transfer"]
print(recorded["protocols"]["transfer"], "\n")
for r in transfer:
    print(f"{r['method']} vs {r['baseline']} ({r['metric']}): {r['method_value']['mean']:.3f} ± {r['method_value']['std']:.3f} "
          f"vs {r['baseline_value']['mean']:.3f} ± {r['baseline_value']['std']:.3f} -> {r['verdict']}")
    if r.get("reason"):
        print("   why:", r["reason"])
assert transfer and all(len(r["seeds"]) >= 3 for r in transfer)
by_claim = {(r["method"], r["baseline"], r["metric"]): r for r in transfer}
assert by_claim[("zeroshot on spurious", "ft on broad", "worst_group_acc")]["verdict"] == "reproduces"   # FT costs it
assert by_claim[("starft on broad", "zeroshot on spurious", "worst_group_acc")]["verdict"] != "reproduces"  # no gain over zero-shot

# %% [markdown]
# `docs/claims.md` has the zero-shot model's own numbers under this protocol and the tuned hyperparameters.
#
# ## 3. Which descriptions do the groups align with?
#
# The alignment of a description t with an image x is cos(φ(x), ψ(t)), image and text features of the same model
# (before: θ0's towers; after: θ's). `analysis.description_shift` averages it over the images of each group.
# Descriptions with `{}` are filled with each image's own class name. We take the two class words and a few
# place phrases.

# %%
class_words = [f"a {c}" for c in TASK.classnames]
place_phrases = ["on the water", "in the ocean", "on the grass", "in the desert"]
shift = analysis.description_shift(zs, ft, TASK, class_words + place_phrases, clip.tokenizer, clip.preprocess)
plots.plot_alignment(shift, "before").update_layout(height=360, title="Alignment per group before fine-tuning (θ0)").show()
plots.plot_alignment(shift, "change").update_layout(height=360, title="Change of alignment per group (θ − θ0)").show()
for r in shift:
    print(f"{r['description']:<14} {r['group']:<14} before {r['before']:+.3f}  after {r['after']:+.3f}  change {r['change']:+.3f}")

# %% [markdown]
# Before fine-tuning, the class word "a cross" aligns with squares on land and squares on water about equally:
# the zero-shot model does not care about the place. Read the change heatmap row by row for the class words:
# which groups did each class word gain or lose?
#
# The shortcut shows as a **pull**: a class word aligning more with images of the *other* class when they sit on
# its usual place. The cell below computes, for each class word, (alignment with the other class's images on the
# word's usual place) − (on the other place), before and after. Each class's usual place is read from the
# training set.

# %%
train_place, train_y = TASK.train.meta["place"], TASK.train.labels
usual_place = [int(train_place[train_y == k].float().mean().round()) for k in range(TASK.num_classes)]
cell = {(r["description"], r["value"]): r for r in shift}   # value = group id = 2 * class + place
pull = []
for k, word in enumerate(class_words):
    other = 1 - k
    here, there = 2 * other + usual_place[k], 2 * other + 1 - usual_place[k]
    row = {"word": word, "images": TASK.group_names[here] + " vs " + TASK.group_names[there]}
    for when in ("before", "after"):
        row[when] = cell[(word, here)][when] - cell[(word, there)][when]
    pull.append(row)
    print(f"{word!r} on {row['images']}: pull before {row['before']:+.3f}, after {row['after']:+.3f}")
fig = go.Figure([go.Bar(name=when, x=[f"{r['word']} ({r['images']})" for r in pull], y=[r[when] for r in pull])
                 for when in ("before", "after")])
fig.update_layout(barmode="group", height=360, template="plotly_white", yaxis_title="alignment difference",
                  title="Pull of each class word toward the other class on its usual place")
fig.show()
assert all(r["after"] > r["before"] for r in pull)  # fine-tuning ties each class word to its usual place


# %% [markdown]
# Fine-tuning pulled each class word toward its usual background: after FT, a square on water looks more like
# "a cross" than a square on land does, and the other way round. This is the background shortcut, read in
# CLIP's own language.
#
# ## 4. Ranking candidate spurious descriptions
#
# Which descriptions did fine-tuning make more *separating*? `analysis.rank_descriptions` scores each candidate
# t by its mean alignment before and after (`change`) and, with `by="place"`, by how strongly it separates the
# places within a class (`gap_before`, `gap_after`, per class the largest minus the smallest place mean, averaged
# over classes). A spurious attribute that fine-tuning latched onto gains separation.
#
# Candidates come from three sources (`analysis.candidate_descriptions`):
# * `"factors"`: the world's factor phrases (backgrounds, colours, style prefixes) as class templates;
# * `"phrases"`: rftlab's StarFT-style phrase pools;
# * a **callable** you write, called with the task; here: the class words and place phrases of section 3,
#   without the class-name slot.

# %%
def my_candidates(task):
    return [f"a {c}" for c in task.classnames] + ["on the water", "in the ocean", "on the grass", "in the desert",
                                                  "a photo", "a small object", "far away"]

candidates = (analysis.candidate_descriptions(TASK, clip.tokenizer, ("factors", "phrases"))
              + analysis.candidate_descriptions(TASK, clip.tokenizer, my_candidates))
print(f"{len(candidates)} candidates (words the tokenizer does not know are dropped)")
ranking = analysis.rank_descriptions(zs, ft, TASK, clip.tokenizer, clip.preprocess, candidates=candidates, by="place")
by_gap = sorted(ranking, key=lambda r: r["gap_change"], reverse=True)
plots.plot_ranking(ranking, top=15, value="gap_change").update_layout(
    height=480, title="Candidates whose place separation fine-tuning increased most (gap_change)").show()
print(f"{'description':<28}{'pull before':>12}{'after':>8}{'change':>9}{'place gap before':>18}{'after':>8}")
for r in by_gap[:12]:
    print(f"{r['description']:<28}{r['before']:>12.3f}{r['after']:>8.3f}{r['change']:>+9.3f}{r['gap_before']:>18.3f}{r['gap_after']:>8.3f}")
top_words = [r["description"] for r in by_gap[: len(by_gap) // 3]]
assert all(w in top_words for w in (f"a {c}" for c in TASK.classnames))  # the class words gained most separation

# %% [markdown]
# The top of the list gives the descriptions whose alignment became most dependent on the place. The class words
# sit in the top third, as section 3 explained. The printout shows which other candidates rank high in this run:
# look at the class-template candidates in particular (`a photo of a {}`, filled with the image's own class):
# their place gap grows because the minority groups lost alignment with their own class, the same shortcut seen
# from the other side.
#
# To test your own hypotheses, pass any list or function as `candidates`; phrases with unknown words raise a
# clear error naming the words the tokenizer does know.
#
# The pull tells what fine-tuning moved, not what the classifier *uses*: on this task style prefixes can rank as
# high as the place. The next section asks the question directly.
#
# ## 5. A mystery task: find the shortcut
#
# `rftlab.world.mystery_task(seed)` plants one factor (the place, the colour or the style of the images, chosen by
# the seed) the way the `spurious` task plants the place, but does not say which: its groups are named A and B.
# Fine-tune on it, then let `analysis.discover_shortcuts` find what the fine-tuned classifier relies on:
#
# * the **judge**, the zero-shot model θ0, says which images of each class fit each candidate description best
#   (θ's own towers would be biased by the fine-tuning);
# * the **score** of a description is how much more probability θ gives a class on the images of *every* class that
#   fit it than on the rest (minus what θ0 already did): a shortcut pushes toward its class in every class, while a
#   cue that only makes images hard pushes toward a different class in each and cancels;
# * a **finding** passes the rule printed below: its z (score over bootstrap standard error) beats a Bonferroni
#   threshold over everything tested, and its score is at least 0.1 (10 points of probability: fine-tuning
#   leaves smaller but real traces everywhere, even with nothing planted).
#
# It reads the validation images: the test images stay for scoring whatever the probe leads you to do.

# %%
MYSTERY_SEED = 6                                  # try others: each seed plants the place, the colour or the style
mystery = rftlab.world.mystery_task(MYSTERY_SEED, n_val=800)
mystery_zs = rftlab.ClipClassifier.zeroshot(clip, mystery.classnames, mystery.templates)
mystery_ft = rftlab.finetune("ft", clip, mystery, CFG).classifier
print(mystery.summary())
print({g: round(a, 3) for g, a in analysis.group_accuracy(mystery_ft, mystery, clip.preprocess, split="val")["group_acc"].items()})
found = analysis.discover_shortcuts(mystery_ft, mystery, clip.tokenizer, clip.preprocess, reference=mystery_zs)
print(found.summary(top=6))
plots.plot_shortcuts(found, top=10).update_layout(height=420).show()

# %% [markdown]
# Each row names the class the description pushes toward (`toward`), the class whose images it hurts most, and the
# accuracy on that class's images that fit it against the rest. Near-synonymous descriptions (the same images,
# the same push) are merged into one row. The same probe is a panel (`rftlab.widgets.SpuriosityProbe`, button
# *Find the shortcut*: click a row to see its alignment per group) and a command:
# `rftlab probe --task mystery --task-arg seed=6 --method ft --out probe/` writes `probe.json` and `probe.html`.
#
# Now check the answer: which factor did the seed plant?

# %%
from rftlab.world import mystery_factor
answer = mystery_factor(MYSTERY_SEED)
top = found.ranking[0]
print(f"planted: {answer}; the probe's top finding: {top['description']!r} -> {top['toward']} "
      f"(names the {top['factor']}: {', '.join(top['values'])})")
assert found.found and top["significant"] and top["factor"] == answer  # the probe named the planted factor

# %% [markdown]
# Try another `MYSTERY_SEED`, or probe the zero-shot model itself (`discover_shortcuts(mystery_zs, mystery, ...)`
# without a reference): it never saw the correlation, so it should have no strong finding.
#
# **Where next:** `05_method_zoo` compares the worst group of every method; `01_feature_distortion` measures
# how far fine-tuning moves the features.
