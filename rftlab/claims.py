"""Every claim of the robust fine-tuning papers, tested in the world under its paper's protocol.

``rftlab claims`` (:func:`run_claims`) trains what each claim needs, tunes it on validation data
with the same budget for every method (``rftlab.sweep``), retrains the selected configuration over
seeds, scores it as the paper does, and decides each claim by a rule fixed before any run
(:data:`RULE`). It writes ``docs/claims.md`` and ``rftlab/results/claims.json`` (read by ``rftlab.recorded("claims")``).

The protocols:

- ``shift``: fine-tune on the DomainNet-like ``shift`` task (train on photos) and score the
  fine-tuned classifier on its ID test set and its three OOD domains (Lipsum-FT, CAR-FT, CaRot,
  FLYP, LP-FT, WiSE-FT, soups, L2-SP: their papers fine-tune on ImageNet or DomainNet's real
  domain and score the shifts).
- ``transfer``: StarFT's zero-shot group robustness. Fine-tune on the ``broad`` world task (all
  eight shapes, each sitting on its own place 90% of the time, as ImageNet classes sit in their
  scenes), then build a fresh head from the fine-tuned model's own towers with the single
  template "This is a picture of a {}." and score the Waterbirds-like task's balanced test
  (``spurious`` with rotations up to 90 degrees, where the zero-shot model has headroom).

A claim that does not reproduce gets an ablation run (the component the paper credits switched
off, the rest unchanged, the same seeds) and a reason computed from its numbers.
"""
from __future__ import annotations

import copy
import dataclasses
import json
import math
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

# ---------------------------------------------------------------------------- the verdict rule
RULE = ("paired over seeds (seed i of the method against seed i of the baseline: the same data order); "
        "'reproduces' if the mean difference, signed in the claimed direction, exceeds twice its standard "
        "error sd(d)/sqrt(n); 'opposite' if it is below minus twice its standard error; otherwise "
        "'inconclusive'. 3 seeds; 5 when the difference is within 3 standard errors of 0.")
REPRODUCES, OPPOSITE, INCONCLUSIVE = "reproduces", "opposite", "inconclusive"


def summary(values) -> dict:
    """{"mean", "std"} over seeds (population std; 0 for one value)."""
    values = list(values)
    if not values:
        raise ValueError("no values to summarise")
    return {"mean": statistics.fmean(values), "std": statistics.pstdev(values) if len(values) > 1 else 0.0}


def paired(method, baseline, higher_is_better: bool = True) -> dict:
    """Mean and standard error of the paired differences, signed so that > 0 favours the method."""
    method, baseline = list(method), list(baseline)
    if len(method) != len(baseline) or not method:
        raise ValueError(f"paired values need the same seeds; got {len(method)} and {len(baseline)} values")
    sign = 1.0 if higher_is_better else -1.0
    d = [sign * (m - b) for m, b in zip(method, baseline)]
    se = statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 else 0.0
    return {"diff": statistics.fmean(d), "se": se, "n": len(d)}


def verdict(method, baseline, higher_is_better: bool = True) -> dict:
    """:data:`RULE` on per-seed values: {"verdict", "diff", "se", "n"}."""
    p = paired(method, baseline, higher_is_better)
    if p["diff"] > 0 and p["diff"] > 2 * p["se"]:
        word = REPRODUCES
    elif p["diff"] < 0 and -p["diff"] > 2 * p["se"]:
        word = OPPOSITE
    else:
        word = INCONCLUSIVE
    return {"verdict": word, **p}


def close_call(method, baseline, higher_is_better: bool = True) -> bool:
    """More seeds could change the verdict: the difference is within 3 standard errors of 0."""
    p = paired(method, baseline, higher_is_better)
    return p["se"] > 0 and abs(p["diff"]) < 3 * p["se"]


# ---------------------------------------------------------------------------- what is claimed
@dataclass(frozen=True)
class Run:
    """One thing to train (or not) and score: a registered method with fixed hyperparameters on a
    protocol. ``label`` names it in the report; ``tune`` says whether ``rftlab.sweep`` selects its
    learning rate and key hyperparameters (ablations reuse their method's tuned values instead)."""

    label: str
    method: str
    protocol: str
    fixed: dict = field(default_factory=dict)
    tune: bool = True


@dataclass(frozen=True)
class Claim:
    paper: str
    claim: str
    metric: str
    method: str                 # a Run label
    baseline: str | tuple       # a Run label, or several: the best of them, seed by seed
    protocol: str
    paper_protocol: str
    higher_is_better: bool = True
    ablation: str | None = None  # a Run label: the method with the credited component off
    ablation_what: str = ""


PROTOCOLS = {
    "shift": "fine-tune on world `shift` (photos, 8 shapes, rotations up to 90 degrees), score ID photos and OOD "
             "sketch/cartoon/painting with the fine-tuned classifier",
    "transfer": "fine-tune on world `broad` (8 shapes, each on its own place 90% of the time), then a fresh head "
                "from the fine-tuned towers with 'This is a picture of a {}.' scored zero-shot on the balanced "
                "test of `spurious` (square vs cross, far objects, rotations up to 90 degrees)",
}

RUNS = {r.label: r for r in [
    Run("zeroshot", "zeroshot", "shift", tune=False),
    Run("zeroshot (calibrated)", "zeroshot", "shift", tune=False),
    Run("ft", "ft", "shift"),
    Run("ft (random head)", "ft", "shift", {"head_init": "random"}),
    Run("lp-ft", "lp-ft", "shift"),
    Run("l2-sp", "l2-sp", "shift"),
    Run("l2-sp (alpha=0)", "l2-sp", "shift", {"alpha": 0.0}, tune=False),
    Run("wise-ft", "wise-ft", "shift"),
    Run("wise-ft (alpha=1)", "wise-ft", "shift", {"alpha": 1.0}, tune=False),
    Run("flyp", "flyp", "shift"),
    Run("soup-greedy", "soup-greedy", "shift"),
    Run("soup-uniform", "soup-uniform", "shift"),
    Run("lipsum-ft", "lipsum-ft", "shift"),
    Run("lipsum-ft (lambda=0)", "lipsum-ft", "shift", {"lam": 0.0}, tune=False),
    Run("car-ft", "car-ft", "shift"),
    Run("car-ft (beta=0)", "car-ft", "shift", {"beta": 0.0}, tune=False),
    Run("carot", "carot", "shift"),
    Run("carot (no OC, no SD)", "carot", "shift", {"lambda_oc": 0.0, "lambda_sd": 0.0}, tune=False),
    Run("model-stock", "model-stock", "shift"),
    Run("model-stock (ratio=1)", "model-stock", "shift", {"ratio": 1.0}, tune=False),
    Run("lines", "lines", "shift"),
    Run("lines (alpha=1)", "lines", "shift", {"alpha": 1.0, "beta": 0.0}, tune=False),
    Run("spd", "spd", "shift"),
    Run("spd (lambda=0)", "spd", "shift", {"lam": 0.0}, tune=False),
    Run("zeroshot on spurious", "zeroshot", "transfer", tune=False),
    Run("ft on broad", "ft", "transfer"),
    Run("flyp on broad", "flyp", "transfer"),
    Run("starft on broad", "starft", "transfer"),
    Run("starft on broad (lambda=0)", "starft", "transfer", {"lam": 0.0}, tune=False),
]}

_S, _T = "shift", "transfer"
CLAIMS: list[Claim] = [
    Claim("WiSE-FT (Wortsman et al., CVPR 2022)", "mixing the fine-tuned and zero-shot weights raises OOD accuracy over FT",
          "mean_ood_acc", "wise-ft", "ft", _S, "ImageNet -> 5 shifts, alpha = 0.5 or swept", True,
          "wise-ft (alpha=1)", "alpha = 1 (the fine-tuned endpoint of the same runs)"),
    Claim("WiSE-FT (Wortsman et al., CVPR 2022)", "... and over the zero-shot model",
          "mean_ood_acc", "wise-ft", "zeroshot", _S, "ImageNet -> 5 shifts", True,
          "wise-ft (alpha=1)", "alpha = 1 (the fine-tuned endpoint)"),
    Claim("FLYP (Goyal et al., CVPR 2023)", "fine-tuning like pretraining beats cross-entropy FT in distribution",
          "id_acc", "flyp", "ft", _S, "ImageNet and others, ID and shifts", True, "zeroshot", "no fine-tuning"),
    Claim("FLYP (Goyal et al., CVPR 2023)", "... and out of distribution",
          "mean_ood_acc", "flyp", "ft", _S, "ImageNet -> 5 shifts", True, "zeroshot", "no fine-tuning"),
    Claim("Model soups (Wortsman et al., ICML 2022)", "the greedy soup beats the best single fine-tuned run (selected on val)",
          "id_acc", "soup-greedy", "ft", _S, "ImageNet, ingredients = a hyperparameter sweep", True,
          "soup-uniform", "uniform averaging of the same ingredients"),
    Claim("L2-SP (Li et al., ICML 2018)", "pulling towards the pretrained weights keeps OOD accuracy FT loses",
          "mean_ood_acc", "l2-sp", "ft", _S, "transfer learning; robust-FT papers use it as an OOD baseline", True,
          "l2-sp (alpha=0)", "alpha = 0 (plain FT with L2-SP's tuned lr)"),
    Claim("LP-FT (Kumar et al., ICLR 2022)", "LP-FT beats FT from a random head out of distribution",
          "mean_ood_acc", "lp-ft", "ft (random head)", _S, "CLIP ViT-B/16 on ImageNet/DomainNet..., FT from a random head",
          True, "ft", "FT from the zero-shot head (a good head without probing)"),
    Claim("LP-FT (Kumar et al., ICLR 2022)", "... and in distribution",
          "id_acc", "lp-ft", "ft (random head)", _S, "as above", True, "ft", "FT from the zero-shot head"),
    Claim("Lipsum-FT (Nam et al., ICLR 2024)", "the energy-gap regulariser raises OOD accuracy over FT",
          "mean_ood_acc", "lipsum-ft", "ft", _S, "ImageNet -> V2/R/A/Sketch; DomainNet real -> 4 domains", True,
          "lipsum-ft (lambda=0)", "lambda = 0 (its recipe without the regulariser)"),
    Claim("Lipsum-FT (Nam et al., ICLR 2024)", "... without losing ID accuracy (83.3 vs FT 82.8)",
          "id_acc", "lipsum-ft", "ft", _S, "ImageNet", True, "lipsum-ft (lambda=0)", "lambda = 0"),
    Claim("CAR-FT (Mao et al., IJCV 2023)", "keeping the context distribution raises OOD accuracy over FT",
          "mean_ood_acc", "car-ft", "ft", _S, "ImageNet (80 template contexts) -> V2/R/A/Sketch", True,
          "car-ft (beta=0)", "beta = 0 (its recipe without the context KL)"),
    Claim("CAR-FT (Mao et al., IJCV 2023)", "... and ID accuracy (83.3 vs FT 82.8)",
          "id_acc", "car-ft", "ft", _S, "ImageNet", True, "car-ft (beta=0)", "beta = 0"),
    Claim("CaRot (Oh et al., NeurIPS 2024)", "better OOD accuracy than FLYP",
          "mean_ood_acc", "carot", "flyp", _S, "ImageNet -> 5 shifts", True,
          "carot (no OC, no SD)", "lambda_OC = lambda_SD = 0"),
    Claim("CaRot (Oh et al., NeurIPS 2024)", "the lowest ID calibration error (ECE, 10 bins) of FT, LP-FT, FLYP, Lipsum-FT and CaRot",
          "ece10", "carot", ("ft", "lp-ft", "flyp", "lipsum-ft"), _S, "ImageNet, ECE with 10 bins", False,
          "carot (no OC, no SD)", "lambda_OC = lambda_SD = 0"),
    Claim("CaRot (Oh et al., NeurIPS 2024)", "the lowest OOD calibration error (mean over shifts, 10 bins)",
          "mean_ood_ece10", "carot", ("ft", "lp-ft", "flyp", "lipsum-ft"), _S, "ImageNet -> 5 shifts", False,
          "carot (no OC, no SD)", "lambda_OC = lambda_SD = 0"),
    *[Claim("CaRot (Oh et al., NeurIPS 2024)", f"{m} worsens OOD calibration relative to the zero-shot model",
            "mean_ood_ece10", "zeroshot", m, _S, "ImageNet -> 5 shifts; assumes a well-calibrated zero-shot model", False,
            "zeroshot (calibrated)", "the zero-shot model with its temperature fitted on val (a calibrated zero-shot model)")
      for m in ("ft", "lp-ft", "flyp", "lipsum-ft")],
    Claim("Model Stock (Jang et al., ECCV 2024)", "two fine-tuned runs merged with the pretrained weights beat the greedy soup in distribution",
          "id_acc", "model-stock", "soup-greedy", _S, "ImageNet, 2 runs against a greedy soup of many", True,
          "model-stock (ratio=1)", "t = 1 (the plain average of the same two runs)"),
    Claim("Model Stock (Jang et al., ECCV 2024)", "... and out of distribution",
          "mean_ood_acc", "model-stock", "soup-greedy", _S, "ImageNet -> 5 shifts", True,
          "model-stock (ratio=1)", "t = 1 (the plain average of the same two runs)"),
    Claim("Model Stock (Jang et al., ECCV 2024)", "... and beat the uniform soup in distribution",
          "id_acc", "model-stock", "soup-uniform", _S, "ImageNet", True,
          "model-stock (ratio=1)", "t = 1 (the plain average of the same two runs)"),
    Claim("LiNeS (Wang et al., ICLR 2025)", "scaling each layer's update with its depth restores OOD accuracy FT loses",
          "mean_ood_acc", "lines", "ft", _S, "edits a fine-tuned checkpoint; alpha swept, beta = 1 - alpha", True,
          "lines (alpha=1)", "alpha = 1, beta = 0 (the fine-tuned endpoint of the same runs)"),
    Claim("LiNeS (Wang et al., ICLR 2025)", "... without losing FT's ID accuracy",
          "id_acc", "lines", "ft", _S, "as above", True,
          "lines (alpha=1)", "alpha = 1, beta = 0 (the fine-tuned endpoint)"),
    Claim("SPD (Tian et al., NeurIPS 2024)", "selective projection decay beats FT out of distribution",
          "mean_ood_acc", "spd", "ft", _S, "ImageNet -> 4 shifts, and DomainNet", True,
          "spd (lambda=0)", "lambda = 0 (Adam without any weight decay)"),
    Claim("SPD (Tian et al., NeurIPS 2024)", "... and L2-SP out of distribution",
          "mean_ood_acc", "spd", "l2-sp", _S, "as above", True,
          "spd (lambda=0)", "lambda = 0 (Adam without any weight decay)"),
    Claim("StarFT (Kim et al., IJCAI 2025)", "after fine-tuning, better zero-shot worst-group accuracy on Waterbirds than FLYP",
          "worst_group_acc", "starft on broad", "flyp on broad", _T, "fine-tune on ImageNet, zero-shot on Waterbirds", True,
          "starft on broad (lambda=0)", "lambda = 0 (FLYP with StarFT's single caption)"),
    Claim("StarFT (Kim et al., IJCAI 2025)", "... and than the zero-shot model (+14.30 worst-group)",
          "worst_group_acc", "starft on broad", "zeroshot on spurious", _T, "as above", True,
          "starft on broad (lambda=0)", "lambda = 0"),
    Claim("StarFT (Kim et al., IJCAI 2025)", "... better average accuracy than FLYP (+3.02)",
          "avg_acc", "starft on broad", "flyp on broad", _T, "as above", True, "starft on broad (lambda=0)", "lambda = 0"),
    Claim("StarFT (Kim et al., IJCAI 2025)", "... and than the zero-shot model",
          "avg_acc", "starft on broad", "zeroshot on spurious", _T, "as above", True, "starft on broad (lambda=0)", "lambda = 0"),
    Claim("StarFT (Kim et al., IJCAI 2025)", "other fine-tuning (FT) degrades zero-shot worst-group accuracy",
          "worst_group_acc", "zeroshot on spurious", "ft on broad", _T, "as above", True, None, ""),
]


# ---------------------------------------------------------------------------- running them
TUNED_FILE = Path(__file__).parent / "claims_tuned.json"   # the selections of the last full run (for --quick)
SELECT = "val_acc"   # every protocol selects on ID validation accuracy of the task it fine-tunes on


def protocol_tasks(name: str) -> tuple:
    """(the task fine-tuned on, the task scored) of a protocol."""
    from .tasks import load_task
    if name == "shift":
        task = load_task("shift")
        return task, task
    if name == "transfer":
        return load_task("broad"), load_task("spurious", rotation=90.0)
    raise ValueError(f"unknown protocol {name!r}; choose from: {', '.join(PROTOCOLS)}")


@torch.no_grad()
def _calibrate(classifier, task, transform):
    """The classifier with its logit scale refitted on val (temperature scaling: one number, by
    minimising val NLL), as a calibrated zero-shot model."""
    from .evaluation import predict
    logits, labels = task.val.score(predict(classifier, task.val, transform))
    log_t = torch.zeros((), requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=100, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        with torch.enable_grad():
            loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), labels)
            loss.backward()
        return loss
    with torch.enable_grad():
        opt.step(closure)
    out = copy.deepcopy(classifier)
    out.scale.div_(log_t.exp().item())
    return out


def score(classifier, protocol: str, clip) -> dict:
    """Every metric a claim of this protocol reads, flat as ``rftlab compare`` rows (id_acc,
    mean_ood_acc, worst_group_acc, avg_acc, ece...), plus ``ece10`` (10 bins, as CaRot reports)
    and the mean OOD ECE with 15 and 10 bins (``mean_ood_ece``, ``mean_ood_ece10``)."""
    from .compare import _flatten
    from .evaluation import evaluate_transfer, predict
    _, scored = protocol_tasks(protocol)
    if protocol == "transfer":
        return _flatten(evaluate_transfer(classifier, scored, clip.tokenizer, clip.preprocess))
    logits = {k: predict(classifier, s, clip.preprocess) for k, s in scored.eval_splits().items()}
    m15, m10 = scored.evaluate(logits), scored.evaluate(logits, n_bins=10)
    out = {**_flatten(m15), "ece10": m10["ece"]}
    if m15["ood_ece"]:
        out["mean_ood_ece"] = statistics.fmean(m15["ood_ece"].values())
        out["mean_ood_ece10"] = statistics.fmean(m10["ood_ece"].values())
    return out


# Relative cost of one run on the world (FT = 1; docs/benchmarks.md's step times, soups = 6 FT runs),
# to send the costliest work out first.
COST = {"model-stock": 2.0, "lines": 1.0, "spd": 1.1, "zeroshot": 0.1, "lp": 0.3, "ft": 1.0, "lp-ft": 1.1, "l2-sp": 1.05, "wise-ft": 1.0, "flyp": 2.3,
        "soup-greedy": 6.0, "soup-uniform": 6.0, "lipsum-ft": 1.7, "car-ft": 1.3, "carot": 2.9, "starft": 4.0}


def _key(label: str, seed: int, hparams: dict, lr: float | None) -> tuple:
    return (label, seed, json.dumps(hparams, sort_keys=True), lr)


def _work(jobs: list, settings: dict, threads: int) -> dict:
    """A worker process: train and score ``jobs`` (one seed's runs, so a soup's ingredients and FT
    share runs) with ``threads`` torch threads. Returns their metrics by key."""
    import warnings
    from .models import load_model
    from .train import reuse_runs
    torch.set_num_threads(threads)
    warnings.filterwarnings("ignore", message="training interrupted")
    runner = _Runner(load_model(), lambda m: print(m, flush=True), settings)
    with reuse_runs():
        for label, seed, hp, lr in jobs:
            runner(RUNS[label], seed, hp, lr)
    return runner.metrics


class _Runner:
    """Trains and scores runs, each (label, seed, hparams, lr) once; :meth:`prefetch` computes
    many at once in worker processes (one thread each: on the small world model two processes
    do more work than one process with two threads)."""

    def __init__(self, clip, log, settings: dict, workers: int = 1):
        self.clip, self.log, self.settings, self.workers = clip, log, settings, workers
        self.metrics: dict = {}

    def prefetch(self, jobs) -> None:
        """Compute the (label, seed, hparams, lr) ``jobs`` not yet known in ``workers`` processes;
        with one worker, here. Jobs go out in units, the costliest first, to whichever process is
        free: one run each, except that FT and the soups of one seed share a unit (the soups'
        ingredients are FT runs, reused inside the unit)."""
        todo = list(dict.fromkeys((lab, s, json.dumps(hp, sort_keys=True), lr) for lab, s, hp, lr in jobs
                                  if _key(lab, s, hp, lr) not in self.metrics))
        if not todo:
            return
        if self.workers <= 1:
            for lab, s, hp, lr in todo:
                self(RUNS[lab], s, json.loads(hp), lr)
            return
        import concurrent.futures
        import multiprocessing
        units: dict = {}
        for lab, s, hp, lr in todo:
            run = RUNS[lab]
            family = "ft" if run.method in ("ft", "soup-greedy", "soup-uniform") and not run.fixed else lab
            units.setdefault((s, run.protocol, family), []).append((lab, s, json.loads(hp), lr))
        order = sorted(units.values(), key=lambda u: -sum(COST.get(RUNS[j[0]].method, 1.0) for j in u))
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(min(self.workers, len(order)), mp_context=ctx) as pool:
            for done in concurrent.futures.as_completed([pool.submit(_work, u, self.settings, 1) for u in order]):
                self.metrics.update(done.result())

    def __call__(self, run: Run, seed: int, hparams: dict, lr: float | None) -> dict:
        from .classifier import ClipClassifier
        from .recipes import recipe_config
        from .train import finetune
        key = _key(run.label, seed, hparams, lr)
        if key in self.metrics:
            return self.metrics[key]
        task, _ = protocol_tasks(run.protocol)
        t0 = time.time()
        if run.method == "zeroshot":
            clf = ClipClassifier.zeroshot(self.clip, task.classnames, task.templates)
            if "calibrated" in run.label:
                clf = _calibrate(clf, task, self.clip.preprocess)
        else:
            cfg = recipe_config(run.method, self.clip, task, **{"progress": False, "eval_every": 0,
                                                                **self.settings, "seed": seed})
            if lr is not None:
                cfg = dataclasses.replace(cfg, lr=lr)
            clf = finetune(run.method, self.clip, task, cfg, **hparams).classifier
        self.metrics[key] = score(clf, run.protocol, self.clip)
        self.log(f"  {run.label:<28} seed {seed}  {time.time() - t0:5.1f} s")
        return self.metrics[key]


def _base(run: Run) -> Run:
    """The tuned run an ablation takes its learning rate and hyperparameters from."""
    for r in RUNS.values():
        if r.method == run.method and r.protocol == run.protocol and r.tune and not r.fixed:
            return r
    raise ValueError(f"no tuned run of {run.method} on {run.protocol} for ablation {run.label!r}")


def _tune_one(label: str, budget: int, settings: dict, threads: int) -> dict:
    """The selection of one tuned run (a worker process or here)."""
    from .models import load_model
    from .tuning import sweep
    torch.set_num_threads(threads)
    run = RUNS[label]
    task, _ = protocol_tasks(run.protocol)
    res = sweep(load_model(), task, [run.method], budget=budget, seeds=(0,), select=SELECT, hparams=run.fixed,
                log=lambda m: None, **settings)
    sel = res["rows"][0]["selected"]
    print(f"tuned {label} on {task.name}: lr {sel['lr']}, {sel['hparams']}, {SELECT} {sel['score']:.4f}", flush=True)
    return {"lr": sel["lr"], "hparams": {k: v for k, v in sel["hparams"].items() if k not in run.fixed},
            "val": sel["score"]}


def _selects(method: str, budget: int) -> bool:
    """Whether ``rftlab.sweep`` has anything to select for a method: the soups' grid is their
    ingredients (the FT learning-rate grid itself), nothing to choose; a Model Stock tunes its lr."""
    from .methods import METHODS
    return any("lr_factor" in c or len(c) > 0 and "ingredients" not in c for c in METHODS[method].grid(budget))


def tune(budget: int, workers: int = 1, log=print, labels=None, **settings) -> dict:
    """The selection of every tuned run (or of the runs ``labels``): ``rftlab.sweep`` on the
    protocol's training task, the same ``budget`` of configurations for every method, chosen on
    :data:`SELECT` (val only). Soups are not tuned (their ingredients are the FT learning-rate
    grid: nothing to select)."""
    wanted = [r for r in RUNS.values() if r.tune and r.method != "zeroshot" and (labels is None or r.label in labels)]
    labels = [r.label for r in wanted if _selects(r.method, budget)]
    out = {r.label: {"lr": None, "hparams": {}, "val": None} for r in wanted if r.label not in labels}
    log(f"tuning {len(labels)} runs, {budget} configurations each, in {workers} process(es)")
    if workers <= 1:
        out.update({lab: _tune_one(lab, budget, settings, torch.get_num_threads()) for lab in labels})
        return out
    import concurrent.futures
    import multiprocessing
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        futures = {lab: pool.submit(_tune_one, lab, budget, settings, 1) for lab in labels}
        out.update({lab: f.result() for lab, f in futures.items()})
    return out


def defaults() -> dict:
    """The published-default selection: the recipe's lr and the methods' default hyperparameters."""
    return {r.label: {"lr": None, "hparams": {}} for r in RUNS.values() if r.tune and r.method != "zeroshot"}


def _settings(run: Run, chosen: dict) -> tuple[dict, float | None]:
    src = run if run.tune else _base(run) if run.method != "zeroshot" else None
    sel = chosen.get(src.label, {"lr": None, "hparams": {}}) if src is not None else {"lr": None, "hparams": {}}
    return {**sel["hparams"], **run.fixed}, sel["lr"]


def _values(runner, label: str, chosen: dict, seeds, metric: str) -> list[float]:
    run = RUNS[label]
    hp, lr = _settings(run, chosen)
    return [runner(run, s, hp, lr)[metric] for s in seeds]


def _baseline_values(runner, claim: Claim, chosen: dict, seeds) -> list[float]:
    labels = claim.baseline if isinstance(claim.baseline, tuple) else (claim.baseline,)
    per = [_values(runner, b, chosen, seeds, claim.metric) for b in labels]
    best = max if claim.higher_is_better else min
    return [best(v) for v in zip(*per)]


def _judge(runner, claim: Claim, chosen: dict, seeds) -> dict:
    m = _values(runner, claim.method, chosen, seeds, claim.metric)
    b = _baseline_values(runner, claim, chosen, seeds)
    return {"method_value": summary(m), "baseline_value": summary(b), "seeds": list(seeds),
            **verdict(m, b, claim.higher_is_better), "_m": m, "_b": b}


def claim_key(claim) -> str:
    """How a claim (a :class:`Claim` or a report row) is named in the recorded reasons: "paper: claim"."""
    paper, text = (claim["paper"], claim["claim"]) if isinstance(claim, dict) else (claim.paper, claim.claim)
    return f"{paper}: {text}"


def selected_off(claim: Claim, chosen: dict) -> str | None:
    """When the selection on val already switched the credited component off (the tuned method's
    hyperparameters equal its ablation's, e.g. WiSE-FT's alpha = 1), say so: then the method is its
    own ablation and no run can tell what the component does; None otherwise."""
    if claim.ablation is None:
        return None
    fixed = RUNS[claim.ablation].fixed
    hp, _ = _settings(RUNS[claim.method], chosen)
    if not fixed or any(k not in hp or float(hp[k]) != float(v) for k, v in fixed.items()):
        return None
    values = ", ".join(f"{k} = {v:g}" for k, v in fixed.items())
    return (f"the selection on val ({SELECT}) chose {values}, which switches the component off "
            f"({claim.ablation_what}): the tuned {claim.method} is its own ablation and equals it on every seed; "
            f"the published-defaults column runs the component at its paper's value")


def _reason(runner, claim: Claim, chosen: dict, seeds, judged: dict) -> dict:
    """Run the claim's ablation and say, from its numbers, what the credited component does."""
    if claim.ablation is None:
        return {"reason": "no ablation: the claim is about the baseline's own behaviour"}
    a = _values(runner, claim.ablation, chosen, seeds, claim.metric)
    effect = verdict(judged["_m"], a, claim.higher_is_better)
    gap = paired(a, judged["_b"], claim.higher_is_better)
    name = claim.metric
    off = selected_off(claim, chosen)
    if off is not None:
        what = off
    elif effect["verdict"] == INCONCLUSIVE:
        what = (f"switching it off ({claim.ablation_what}) changes {name} by {effect['diff']:+.3f} "
                f"± {effect['se']:.3f}: no measurable effect here")
    elif effect["verdict"] == REPRODUCES:
        what = (f"the component helps: {claim.ablation_what} gives {summary(a)['mean']:.3f}, "
                f"{effect['diff']:+.3f} ± {effect['se']:.3f} worse, but not enough to pass the baseline "
                f"({judged['diff']:+.3f} ± {judged['se']:.3f})")
    else:
        what = (f"the component hurts: {claim.ablation_what} gives {summary(a)['mean']:.3f}, "
                f"{-effect['diff']:+.3f} ± {effect['se']:.3f} better")
    return {"ablation": {"run": claim.ablation, "what": claim.ablation_what, "value": summary(a),
                         "effect": {k: effect[k] for k in ("verdict", "diff", "se")},
                         "ablation_vs_baseline": {k: gap[k] for k in ("diff", "se")}},
            "reason": what}


def _labels(claim: Claim) -> list[str]:
    return [claim.method, *(claim.baseline if isinstance(claim.baseline, tuple) else (claim.baseline,))]


def _jobs(labels, chosen: dict, seeds) -> list[tuple]:
    out = []
    for lab in labels:
        hp, lr = _settings(RUNS[lab], chosen)
        out += [(lab, s, hp, lr) for s in seeds]
    return out


def default_workers() -> int:
    """Processes that train runs side by side: one per core, two at most (each with one thread)."""
    import os
    return max(1, min(2, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1))


def select_claims(papers=None) -> list[Claim]:
    """The claims of the papers whose names start with one of ``papers`` (e.g. ``["SPD", "LiNeS"]``);
    every claim when None. An unknown name fails with the list of papers."""
    if not papers:
        return list(CLAIMS)
    names = list(dict.fromkeys(c.paper for c in CLAIMS))
    unknown = [p for p in papers if not any(n.lower().startswith(p.lower()) for n in names)]
    if unknown:
        raise ValueError(f"no claims of {unknown}; the papers are: " + "; ".join(names))
    return [c for c in CLAIMS if any(c.paper.lower().startswith(p.lower()) for p in papers)]


def _tuned_labels(claims: list[Claim]) -> list[str]:
    """The tuned runs the claims train (their methods, baselines and the bases of their ablations)."""
    out = []
    for c in claims:
        for lab in _labels(c) + ([c.ablation] if c.ablation else []):
            run = RUNS[lab] if RUNS[lab].tune or RUNS[lab].method == "zeroshot" else _base(RUNS[lab])
            if run.tune and run.method != "zeroshot" and run.label not in out:
                out.append(run.label)
    return out


def run_claims(quick: bool = False, budget: int = 6, log=print, tuned: dict | None = None,
               workers: int | None = None, tuning: dict | None = None, papers=None, **settings) -> dict:
    """Every claim of :data:`CLAIMS`, decided by :data:`RULE`. Full: tune every method with
    ``rftlab.sweep`` (``budget`` configurations each, on val), 3 seeds (5 for close calls), and the
    published defaults beside the tuned values. ``quick``: no sweep (the tuned values recorded by
    the last full run, :data:`TUNED_FILE`), 2 seeds, no defaults, no extra seeds, no ablations (a
    negative verdict quotes the full run's measured reason). ``workers``:
    processes training side by side (default :func:`default_workers`). ``tuned`` skips the sweep
    for the runs it has and tunes only the others (``tuning``: where those values came from:
    {"source", "seconds", "budget"}). ``papers``: only those papers' claims (:func:`select_claims`;
    :func:`merge_results` puts them into a recorded full run). ``settings``:
    TrainConfig fields for every run on top of the recipes (``steps=2`` makes a smoke run)."""
    from .models import load_model
    from .train import reuse_runs
    t0 = time.time()
    claims = select_claims(papers)
    workers = default_workers() if workers is None else max(1, int(workers))
    clip = load_model()
    seeds = (0, 1) if quick else (0, 1, 2)
    runner = _Runner(clip, log, settings, workers)
    full_reasons = {}   # --quick: the measured reasons of the last full run, quoted
    if tuned is None and quick:
        if not TUNED_FILE.is_file():
            raise FileNotFoundError(f"{TUNED_FILE} is missing: run `rftlab claims` once without --quick")
        recorded = json.loads(TUNED_FILE.read_text())
        tuned, tuning = recorded["tuned"], {"source": f"{TUNED_FILE.name} (the last full run)",
                                            "budget": recorded.get("budget")}
        full_reasons = recorded.get("reasons", {})
    elif tuned is None:
        t_tune = time.time()
        tuned = tune(budget, workers, log, labels=None if papers is None else _tuned_labels(claims), **settings)
        tuning = {"source": "this run", "seconds": round(time.time() - t_tune, 1), "budget": budget}
        log("tuned: " + json.dumps(tuned))   # a later run can reuse them: run_claims(tuned=...), --tuned FILE
    elif not quick and [lab for lab in _tuned_labels(claims) if lab not in tuned]:
        missing = [lab for lab in _tuned_labels(claims) if lab not in tuned]
        t_tune = time.time()
        tuned = {**tuned, **tune(budget, workers, log, labels=missing, **settings)}
        tuning = {**(tuning or {"source": "given", "budget": budget}),
                  "tuned_here": missing, "seconds_here": round(time.time() - t_tune, 1)}
        log("tuned: " + json.dumps({lab: tuned[lab] for lab in missing}))
    tuning = tuning or {"source": "given", "budget": budget}
    with reuse_runs():
        log(f"training every claim's method and baselines with seeds {list(seeds)} in {workers} process(es)")
        runner.prefetch([j for c in claims for j in _jobs(_labels(c), tuned, seeds)])
        judged = [_judge(runner, c, tuned, seeds) for c in claims]
        if not quick:   # close calls get two more seeds
            close = [i for i, (c, j) in enumerate(zip(claims, judged)) if close_call(j["_m"], j["_b"], c.higher_is_better)]
            runner.prefetch([j for i in close for j in _jobs(_labels(claims[i]), tuned, (3, 4))])
            for i in close:
                judged[i] = _judge(runner, claims[i], tuned, (0, 1, 2, 3, 4))
        negative = [i for i, j in enumerate(judged) if j["verdict"] != REPRODUCES and claims[i].ablation]
        if not quick:   # --quick runs no ablation: it quotes the last full run's reasons
            runner.prefetch([j for i in negative for j in _jobs([claims[i].ablation], tuned, judged[i]["seeds"])])
        if not quick:
            runner.prefetch([j for c in claims for j in _jobs(_labels(c), defaults(), seeds)])
        rows = []
        for claim, judge in zip(claims, judged):
            row = {"paper": claim.paper, "claim": claim.claim, "metric": claim.metric, "method": claim.method,
                   "baseline": claim.baseline if isinstance(claim.baseline, str) else " / ".join(claim.baseline),
                   "protocol": claim.protocol, "paper_protocol": claim.paper_protocol,
                   "world_protocol": PROTOCOLS[claim.protocol],
                   "higher_is_better": claim.higher_is_better,
                   "hparams": {lab: tuned.get(lab) for lab in (claim.method,) if lab in tuned},
                   **{k: v for k, v in judge.items() if not k.startswith("_")}}
            if judge["verdict"] != REPRODUCES and quick:
                full = full_reasons.get(claim_key(claim))
                row["reason"] = ("not measured by --quick (no ablation runs); the last full run found: " + full if full
                                 else "not measured by --quick (no ablation runs): run `rftlab claims` for it")
            elif judge["verdict"] != REPRODUCES:
                row.update(_reason(runner, claim, tuned, judge["seeds"], judge))
            if not quick:
                d = _judge(runner, claim, defaults(), seeds)
                row["defaults"] = {k: v for k, v in d.items() if not k.startswith("_")}
            rows.append(row)
            log(f"{claim.paper}: {claim.claim}\n  -> {row['verdict']}: {row['method_value']['mean']:.3f} vs "
                f"{row['baseline_value']['mean']:.3f} ({row['diff']:+.3f} ± {row['se']:.3f}, {row['n']} seeds)")
    return {"generated_by": "rftlab claims" + (" --quick" if quick else ""), "rule": RULE, "quick": quick,
            "budget": None if quick else tuning.get("budget", budget), "select": SELECT, "protocols": PROTOCOLS,
            "workers": workers, "tuning": tuning, "papers": list(papers) if papers else None,
            "tuned": tuned, "seconds": round(time.time() - t0, 1), "rows": rows}


def merge_results(recorded: dict, part: dict, command: str = "") -> dict:
    """A recorded full run with the rows of a run of some papers (``run_claims(papers=...)``) put
    in: those papers' rows replaced (or added, in :data:`CLAIMS` order), the tuned settings joined,
    and the run listed under ``additions`` with its command, papers and minutes, so the report
    says which rows came when."""
    if part.get("quick") or recorded.get("quick"):
        raise ValueError("merge only full runs: a --quick run's 2-seed rows would sit beside 3-seed ones")
    if part.get("rule") != recorded.get("rule") or part.get("select") != recorded.get("select"):
        raise ValueError("the two runs decide by different rules or select on different metrics: re-run in full")
    papers = {r["paper"] for r in part["rows"]}
    rows = {claim_key(r): r for r in recorded["rows"] if r["paper"] not in papers}
    rows.update({claim_key(r): r for r in part["rows"]})
    order = [claim_key(c) for c in CLAIMS]
    merged_rows = sorted(rows.values(), key=lambda r: order.index(claim_key(r)) if claim_key(r) in order else len(order))
    added = {"command": command or part.get("generated_by", "rftlab claims"), "papers": sorted(papers),
             "seconds": part["seconds"], "tuning": part.get("tuning")}
    return {**recorded, "tuned": {**recorded["tuned"], **part["tuned"]}, "rows": merged_rows,
            "additions": [*recorded.get("additions", []), added]}


# ---------------------------------------------------------------------------- the report
def _pm(v: dict | None) -> str:
    return f"{v['mean']:.3f} ± {v['std']:.3f}" if v else "-"


def markdown(result: dict) -> str:
    """docs/claims.md from a :func:`run_claims` result."""
    lines = ["# The papers' claims, tested in the world", "",
             f"Generated by `{result['generated_by']}` in {result['seconds'] / 60:.1f} minutes "
             f"({result.get('workers', 1)} training process(es) on this machine's CPU cores) "
             f"(`rftlab/claims.py`; the rows are also in `rftlab/results/claims.json`, read by `rftlab.recorded(\"claims\")`). Every claim is a comparison on "
             "the metric its paper reports, under its paper's protocol (below), decided by a rule fixed before "
             "any run:", "", f"> {result['rule']}", ""]
    for a in result.get("additions", []):
        lines += [f"The rows of {', '.join(a['papers'])} were added later by `{a['command']}` in "
                  f"{a['seconds'] / 60:.1f} minutes, with the tuned settings above for the runs they share and "
                  "the same budget, seeds and rule for the runs they tuned.", ""]
    tuning = result.get("tuning") or {}
    if tuning.get("seconds") and tuning.get("source") != "this run":
        lines += [f"The tuning (the sweep) was recorded separately: {tuning['source']}, "
                  f"{tuning['seconds'] / 60:.0f} minutes; this run took its selections and did the rest.", ""]
    if result["budget"]:
        lines += [f"Tuning: every method gets the same budget, {result['budget']} configurations (learning rate x "
                  f"its key hyperparameters, `rftlab sweep`), each trained with its world recipe, selected on "
                  f"{result['select']} of the task it fine-tunes on (test data never selects); the selected "
                  "configuration is then retrained with every seed. The published defaults (world recipe, the "
                  "papers' hyperparameters) run beside it with the same seeds.", ""]
    else:
        lines += ["Quick run: no sweep (the tuned values of the last full run), 2 seeds, no defaults; verdicts "
                  "from 2 seeds are weaker than the full run's.", ""]
    lines += ["| paper | claim | metric | method | baseline | method value | baseline value | difference (n) "
              "| verdict | published defaults |", "|---" * 10 + "|"]
    for r in result["rows"]:
        d = r.get("defaults")
        dtext = f"{d['verdict']} ({d['diff']:+.3f} ± {d['se']:.3f})" if d else "-"
        lines.append(f"| {r['paper']} | {r['claim']} | {r['metric']}{'' if r['higher_is_better'] else ' (lower)'} "
                     f"| {r['method']} | {r['baseline']} | {_pm(r['method_value'])} | {_pm(r['baseline_value'])} "
                     f"| {r['diff']:+.3f} ± {r['se']:.3f} ({r['n']}) | **{r['verdict']}** | {dtext} |")
    negative = [r for r in result["rows"] if r["verdict"] != REPRODUCES]
    if negative:
        lines += ["", "## Why a claim does not reproduce (measured)", "",
                  "Each claim that does not reproduce was re-run with the component its paper credits switched "
                  "off (same seeds, same tuned settings otherwise):", ""]
        for r in negative:
            lines.append(f"- **{r['paper']}: {r['claim']}** ({r['verdict']}): {r['reason']}.")
    lines += ["", "## Protocols", ""]
    for k, v in result["protocols"].items():
        lines.append(f"- `{k}`: {v}.")
    lines += ["", "Paper protocols, per claim:", ""]
    seen = set()
    for r in result["rows"]:
        if (r["paper"], r["paper_protocol"]) not in seen:
            seen.add((r["paper"], r["paper_protocol"]))
            lines.append(f"- {r['paper']}: {r['paper_protocol']}.")
    lines += ["", "## Tuned settings", "", "| run | lr | hyperparameters | val score |", "|---|---|---|---|"]
    for label, t in result["tuned"].items():
        hp = ", ".join(f"{k}={v}" for k, v in t["hparams"].items()) or "-"
        lr = f"{t['lr']:.2e}" if t.get("lr") else "-"
        val = f"{t['val']:.4f}" if t.get("val") is not None else "- (not tuned)"
        lines.append(f"| {label} | {lr} | {hp} | {val} |")
    return "\n".join(lines) + "\n"


def write_report(result: dict, out_dir: str | Path, json_dir: str | Path | None = None) -> list[Path]:
    """Write claims.md into ``out_dir`` and claims.json into ``json_dir`` (default: ``out_dir``; the
    CLI's default run records it in the package, ``rftlab/results/``, where ``rftlab.recorded``
    reads it); a full run also records its tuned values in the package (:data:`TUNED_FILE`) for
    ``--quick``."""
    out_dir = Path(out_dir)
    json_dir = out_dir if json_dir is None else Path(json_dir)
    for d in (out_dir, json_dir):
        d.mkdir(parents=True, exist_ok=True)
    paths = [json_dir / "claims.json", out_dir / "claims.md"]
    paths[0].write_text(json.dumps(result, indent=1))
    paths[1].write_text(markdown(result))
    if not result["quick"]:
        reasons = {claim_key(r): r["reason"] for r in result["rows"] if r.get("reason")}
        TUNED_FILE.write_text(json.dumps({"budget": result["budget"], "select": result["select"], "reasons": reasons,
                                          "tuned": result["tuned"]}, indent=1))
        paths.append(TUNED_FILE)
    return paths
