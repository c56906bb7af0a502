"""Does the world CLIP behave like the CLIP of the papers? The fidelity table, measured.

``rftlab phenomena`` (:func:`measure`, then :func:`table` and :func:`markdown`) trains the
baselines only (FT, FT from a random head, LP-FT, WiSE-FT), with the world's default recipes and
several seeds, and checks the established phenomena of CLIP fine-tuning, F1 to F10
(:data:`PHENOMENA`), each against a criterion fixed before any run. The robust fine-tuning
methods under study (Lipsum-FT, CAR-FT, CaRot, StarFT) never enter it: the world is calibrated on
the baselines' phenomena, and the methods' claims are then tested on it (``rftlab claims``).

One measurement per seed (:func:`measure_seed`) holds every number the criteria read; a
criterion turns a measurement into named values (:attr:`Phenomenon.values`) and decides on them
(:attr:`Phenomenon.test`). The table decides on the means over seeds and says, seed by seed,
whether each seed alone meets the criterion.
"""
from __future__ import annotations

import dataclasses
import statistics
import time
from dataclasses import dataclass
from typing import Callable

from .analysis.distortion import ALPHAS, wise_curve

N_BINS = 15   # ECE bins of the table (the model's own logit scale, no temperature fitted)


@dataclass(frozen=True)
class Phenomenon:
    """One row of the fidelity table: what is claimed of real CLIP, the paper and number behind it,
    the criterion in words, the named values it reads from one seed's measurement, and the test
    on those values (applied to the means over seeds, and to each seed alone)."""

    key: str
    what: str
    task: str
    reference: str
    criterion: str
    values: Callable[[dict], dict]
    test: Callable[[dict], bool]


def _wise(m: dict, alpha: float) -> dict:
    return next(r for r in m["wise"] if abs(r["alpha"] - alpha) < 1e-9)


def chord_gap(curve: list[dict], key: str = "id_acc") -> float:
    """The most negative distance of ``curve[i][key]`` below the straight line between the curve's
    ends (alpha 0 and alpha 1); 0 when the curve never falls below it."""
    rows = sorted(curve, key=lambda r: r["alpha"])
    a0, a1 = rows[0], rows[-1]
    span = a1["alpha"] - a0["alpha"]
    if span <= 0:
        raise ValueError("a WiSE-FT curve needs at least two different alphas")
    gaps = [r[key] - (a0[key] + (r["alpha"] - a0["alpha"]) / span * (a1[key] - a0[key])) for r in rows]
    return min(0.0, min(gaps))


def _f4(m: dict) -> dict:
    w = _wise(m, 0.5)
    return {"id_margin": w["id_acc"] - (m["ft"]["id_acc"] - 0.015),
            "ood_margin": w["mean_ood_acc"] - (max(m["zeroshot"]["mean_ood_acc"], m["ft"]["mean_ood_acc"]) + 0.03)}


PHENOMENA: list[Phenomenon] = [
    Phenomenon("F1", "shifts are harder than ID for the zero-shot model", "shift",
               "CLIP ViT-B/16 zero-shot: ImageNet 68.3, mean of V2/R/A/Sketch 59.3 (Radford et al. 2021; the "
               "robust fine-tuning papers' tables)",
               "zero-shot mean OOD acc < ID acc",
               lambda m: {"id_minus_ood": m["zeroshot"]["id_acc"] - m["zeroshot"]["mean_ood_acc"]},
               lambda v: v["id_minus_ood"] > 0),
    Phenomenon("F2", "fine-tuning gains ID", "shift",
               "ImageNet, ViT-B/16: zero-shot 68.2, FT 82.8 (Lipsum-FT's table, Nam et al. 2024)",
               "FT ID - zero-shot ID >= 0.10",
               lambda m: {"id_gain": m["ft"]["id_acc"] - m["zeroshot"]["id_acc"]},
               lambda v: v["id_gain"] >= 0.10),
    Phenomenon("F3", "fine-tuning does not gain the zero-shot model's robustness", "shift",
               "mean of V2/R/A/Sketch: zero-shot 59.3, FT 57.1 (Lipsum-FT's table)",
               "FT mean OOD <= zero-shot mean OOD + 0.01",
               lambda m: {"ood_gain": m["ft"]["mean_ood_acc"] - m["zeroshot"]["mean_ood_acc"]},
               lambda v: v["ood_gain"] <= 0.01),
    Phenomenon("F4", "WiSE-FT keeps ID and beats both ends OOD", "shift",
               "WiSE-FT (Wortsman et al. 2022): the alpha = 0.5 mix keeps the fine-tuned model's ImageNet accuracy "
               "and beats both endpoints on the shifts",
               "alpha 0.5: ID >= FT ID - 0.015 and mean OOD >= max(zero-shot, FT) + 0.03",
               _f4, lambda v: v["id_margin"] >= 0 and v["ood_margin"] >= 0),
    Phenomenon("F5", "the fine-tuned and zero-shot models share a basin", "shift",
               "WiSE-FT: ID accuracy along the interpolation path has no dip below its endpoints' line "
               "(linear mode connectivity, Neyshabur et al. 2020)",
               "ID along alpha = 0, 0.1, ..., 1 never more than 0.02 below the straight line between the ends",
               lambda m: {"below_chord": chord_gap(m["wise"])},
               lambda v: v["below_chord"] >= -0.02),
    Phenomenon("F6", "zero-shot CLIP is calibrated", "shift",
               "zero-shot CLIP is among the best-calibrated image classifiers in and out of distribution "
               "(Minderer et al. 2021); CaRot (Oh et al. 2024) starts from a well-calibrated zero-shot model",
               f"zero-shot ID ECE <= 0.05 and mean OOD ECE <= 0.08 ({N_BINS} bins, the model's own scale, "
               "no temperature fitted)",
               lambda m: {"id_ece": m["zeroshot"]["ece"], "ood_ece": m["zeroshot"]["mean_ood_ece"]},
               lambda v: v["id_ece"] <= 0.05 and v["ood_ece"] <= 0.08),
    Phenomenon("F7", "fine-tuning worsens OOD calibration", "shift",
               "CaRot (Oh et al. 2024): FT, LP-FT, FLYP and Lipsum-FT all raise OOD ECE over zero-shot",
               "FT mean OOD ECE >= zero-shot's + 0.02",
               lambda m: {"ood_ece_rise": m["ft"]["mean_ood_ece"] - m["zeroshot"]["mean_ood_ece"]},
               lambda v: v["ood_ece_rise"] >= 0.02),
    Phenomenon("F8", "LP-FT beats FT from a random head OOD", "shift",
               "LP-FT (Kumar et al. 2022): LP-FT beats FT out of distribution, about 10 points on average over "
               "their shifts",
               "LP-FT mean OOD >= FT (random head) mean OOD + 0.05",
               lambda m: {"ood_gain": m["lp-ft"]["mean_ood_acc"] - m["ft (random head)"]["mean_ood_acc"]},
               lambda v: v["ood_gain"] >= 0.05),
    Phenomenon("F9", "FT trades worst-group accuracy for the background", "spurious",
               "Waterbirds (Sagawa et al. 2020): ERM reaches 97.3 average but 60.0 worst-group accuracy",
               "worst-group drop (zero-shot - FT) >= 0.10",
               lambda m: {"wg_drop": m["spurious zeroshot"]["worst_group_acc"] - m["spurious ft"]["worst_group_acc"]},
               lambda v: v["wg_drop"] >= 0.10),
    Phenomenon("F10", "fine-tuning on `broad` erodes zero-shot group robustness (StarFT's premise)", "broad -> spurious",
               "StarFT (Kim et al. 2025): fine-tuning on ImageNet lowers CLIP's zero-shot worst-group accuracy "
               "on Waterbirds",
               "zero-shot-read worst-group on `spurious` >= 0.05 below the zero-shot model's",
               lambda m: {"wg_drop": m["transfer zeroshot"]["worst_group_acc"] - m["transfer ft"]["worst_group_acc"]},
               lambda v: v["wg_drop"] >= 0.05),
]


def _metrics(metrics: dict) -> dict:
    """The numbers the criteria read from ``rftlab.evaluate``'s output, with the mean OOD ECE."""
    out = {k: metrics.get(k) for k in ("id_acc", "mean_ood_acc", "ece", "worst_group_acc", "avg_acc")}
    out["ood_acc"] = dict(metrics.get("ood_acc") or {})
    out["group_acc"] = dict(metrics.get("group_acc") or {})
    ood_ece = metrics.get("ood_ece") or {}
    out["ood_ece"] = dict(ood_ece)
    out["mean_ood_ece"] = statistics.fmean(ood_ece.values()) if ood_ece else None
    return out


def tasks(task_args: dict | None = None) -> dict:
    """The tasks of the table: ``shift``, ``spurious``, and the transfer pair of StarFT's protocol
    (fine-tune on ``broad``, read ``spurious`` with rotations up to 90 degrees zero-shot), as
    ``rftlab claims`` builds them. ``task_args`` adds arguments per task name (for small tests)."""
    from .tasks import load_task
    a = task_args or {}
    return {"shift": load_task("shift", **a.get("shift", {})),
            "spurious": load_task("spurious", **a.get("spurious", {})),
            "broad": load_task("broad", **a.get("broad", {})),
            "transfer": load_task("spurious", **{"rotation": 90.0, **a.get("spurious", {})})}


def measure_seed(clip, seed: int, tasks_: dict, zeroshot: dict, settings: dict | None = None) -> dict:
    """One seed's measurement: FT (zero-shot head), FT from a random head, LP-FT and the WiSE-FT
    curve on ``shift``; FT on ``spurious``; FT on ``broad`` read zero-shot on the transfer task.
    ``zeroshot``: the zero-shot numbers (:func:`measure_zeroshot`, the same for every seed).
    ``settings``: TrainConfig fields on top of every recipe (``steps=2`` for a smoke run)."""
    from .evaluation import evaluate, evaluate_transfer
    from .recipes import recipe_config
    from .train import finetune
    settings = {"progress": False, "eval_every": 0, **(settings or {}), "seed": seed}

    def run(method, task, **hp):
        return finetune(method, clip, task, recipe_config(method, clip, task, **settings), **hp).classifier

    shift = tasks_["shift"]
    ft = run("ft", shift)
    out = {"seed": seed, **zeroshot,
           "ft": _metrics(evaluate(ft, shift, clip.preprocess, n_bins=N_BINS)),
           "ft (random head)": _metrics(evaluate(run("ft", shift, head_init="random"), shift, clip.preprocess)),
           "lp-ft": _metrics(evaluate(run("lp-ft", shift), shift, clip.preprocess))}
    out["wise"] = [{"alpha": r["alpha"], "id_acc": r["id_acc"], "mean_ood_acc": r["mean_ood_acc"]}
                   for r in wise_curve(zeroshot["_classifier"], ft, shift, clip.preprocess, alphas=ALPHAS)]
    out["spurious ft"] = _metrics(evaluate(run("ft", tasks_["spurious"]), tasks_["spurious"], clip.preprocess))
    broad_ft = run("ft", tasks_["broad"])
    out["transfer ft"] = _metrics(evaluate_transfer(broad_ft, tasks_["transfer"], clip.tokenizer, clip.preprocess))
    return {k: v for k, v in out.items() if not k.startswith("_")}


def measure_zeroshot(clip, tasks_: dict) -> dict:
    """The zero-shot model's numbers on the table's tasks (no training, no seed)."""
    from .classifier import ClipClassifier
    from .evaluation import evaluate, evaluate_transfer
    shift, sp = tasks_["shift"], tasks_["spurious"]
    zs = ClipClassifier.zeroshot(clip, shift.classnames, shift.templates)
    zs_sp = ClipClassifier.zeroshot(clip, sp.classnames, sp.templates)
    return {"_classifier": zs, "zeroshot": _metrics(evaluate(zs, shift, clip.preprocess, n_bins=N_BINS)),
            "spurious zeroshot": _metrics(evaluate(zs_sp, sp, clip.preprocess)),
            "transfer zeroshot": _metrics(evaluate_transfer(zs_sp, tasks_["transfer"], clip.tokenizer,
                                                            clip.preprocess))}


def measure(clip, seeds=(0, 1, 2), settings: dict | None = None, task_args: dict | None = None,
            log=print) -> dict:
    """Every seed's measurement and the fidelity table (:func:`table`) over them."""
    t0 = time.time()
    tasks_ = tasks(task_args)
    zeroshot = measure_zeroshot(clip, tasks_)
    per_seed = []
    for seed in seeds:
        m = measure_seed(clip, seed, tasks_, zeroshot, settings)
        per_seed.append(m)
        log(f"seed {seed}: " + "; ".join(f"{p.key} {'yes' if p.test(p.values(m)) else 'no'}" for p in PHENOMENA))
    rows = table(per_seed)
    return {"seeds": list(seeds), "settings": dict(settings or {}), "task_args": dict(task_args or {}),
            "seconds": round(time.time() - t0, 1), "rows": rows,
            "passed": sum(r["pass"] for r in rows), "per_seed": per_seed}


def table(per_seed: list[dict]) -> list[dict]:
    """One row per phenomenon: its values' mean and sd over the seeds' measurements, the verdict on
    the means, and each seed's own verdict."""
    if not per_seed:
        raise ValueError("the table needs at least one seed's measurement")
    rows = []
    for p in PHENOMENA:
        vals = [p.values(m) for m in per_seed]
        mean = {k: statistics.fmean(v[k] for v in vals) for k in vals[0]}
        sd = {k: statistics.pstdev([v[k] for v in vals]) if len(vals) > 1 else 0.0 for k in vals[0]}
        rows.append({"key": p.key, "phenomenon": p.what, "task": p.task, "reference": p.reference,
                     "criterion": p.criterion, "mean": mean, "sd": sd, "pass": bool(p.test(mean)),
                     "seeds_pass": [bool(p.test(v)) for v in vals]})
    return rows


def _value_text(row: dict) -> str:
    return "; ".join(f"{k.replace('_', ' ')} {row['mean'][k]:+.3f} ± {row['sd'][k]:.3f}" for k in row["mean"])


def text_table(result: dict) -> str:
    """The table as plain text, for the terminal."""
    lines = []
    for r in result["rows"]:
        seeds = "".join("+" if s else "-" for s in r["seeds_pass"])
        lines.append(f"{r['key']:<4} {'PASS' if r['pass'] else 'fail'}  seeds {seeds:<5} {r['phenomenon']}\n"
                     f"      {_value_text(r)}   (criterion: {r['criterion']})")
    lines.append(f"{result['passed']} of {len(result['rows'])} pass")
    return "\n".join(lines)


def markdown_rows(result: dict) -> list[str]:
    """The fidelity table as markdown lines."""
    out = ["| | phenomenon | reference (real CLIP) | world: mean ± sd over seeds | criterion | pass | seeds |",
           "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        seeds = " ".join("yes" if s else "no" for s in r["seeds_pass"])
        out.append(f"| {r['key']} | {r['phenomenon']} (`{r['task']}`) | {r['reference']} | {_value_text(r)} "
                   f"| {r['criterion']} | **{'yes' if r['pass'] else 'no'}** | {seeds} |")
    return out


def _curve_mean(per_seed: list[dict]) -> list[tuple]:
    alphas = [r["alpha"] for r in per_seed[0]["wise"]]
    return [(a, statistics.fmean(_wise(m, a)["id_acc"] for m in per_seed),
             statistics.fmean(_wise(m, a)["mean_ood_acc"] for m in per_seed)) for a in alphas]


def markdown(result: dict, model: str = "the shipped world CLIP") -> str:
    """docs/phenomena.md from a :func:`measure` result."""
    ps = result["per_seed"]
    zs = ps[0]
    lines = ["# What fine-tuning does on the world, measured: the fidelity table", "",
             f"Generated by `{result.get('command', 'rftlab phenomena')}` on {model} in "
             f"{result['seconds'] / 60:.1f} minutes (`rftlab/phenomena.py`; every number is also in "
             "[phenomena.json](../rftlab/results/phenomena.json)). Baselines only (zero-shot, FT, FT from a random head, LP-FT, "
             f"WiSE-FT), each with its world default recipe, seeds {result['seeds']}. A row passes when its "
             "criterion holds on the means over the seeds; the last column says whether each seed alone meets it. "
             "The criteria were fixed before any run (the world issue).", "",
             *markdown_rows(result), "",
             f"**{result['passed']} of {len(result['rows'])} pass.**"
             + (" The rows that fail are measured reasons, not hidden: [world-design.md](world-design.md) says "
                "why each fails and logs every variant of the world tried." if result["passed"] < len(result["rows"])
                else ""), "",
             "## `shift` (DomainNet-like), per seed", "",
             "| seed | ID zero-shot | ID FT | ID WiSE 0.5 | mean OOD zero-shot | mean OOD FT | mean OOD WiSE 0.5 "
             "| OOD ECE zero-shot | OOD ECE FT | OOD LP-FT | OOD FT (random head) |",
             "|---" * 11 + "|"]
    for m in ps:
        w = _wise(m, 0.5)
        lines.append(f"| {m['seed']} | {m['zeroshot']['id_acc']:.3f} | {m['ft']['id_acc']:.3f} | {w['id_acc']:.3f} "
                     f"| {m['zeroshot']['mean_ood_acc']:.3f} | {m['ft']['mean_ood_acc']:.3f} "
                     f"| {w['mean_ood_acc']:.3f} | {m['zeroshot']['mean_ood_ece']:.3f} | {m['ft']['mean_ood_ece']:.3f} "
                     f"| {m['lp-ft']['mean_ood_acc']:.3f} | {m['ft (random head)']['mean_ood_acc']:.3f} |")
    lines += ["", f"Zero-shot ID ECE {zs['zeroshot']['ece']:.3f}; zero-shot accuracy per OOD domain: "
              + ", ".join(f"{k} {v:.3f}" for k, v in zs["zeroshot"]["ood_acc"].items()) + ".", "",
              "The WiSE-FT curve (means over the seeds; the chord is the straight line between alpha 0 and 1):", "",
              "| alpha | ID | chord | mean OOD |", "|---|---|---|---|"]
    curve = _curve_mean(ps)
    (a0, i0, _), (a1, i1, _) = curve[0], curve[-1]
    for a, i, o in curve:
        lines.append(f"| {a:.1f} | {i:.3f} | {i0 + (a - a0) / (a1 - a0) * (i1 - i0):.3f} | {o:.3f} |")
    lines += ["", "## `spurious` (Waterbirds-like) and the transfer read, per seed", "",
              "| seed | zero-shot worst-group | FT worst-group | zero-shot average | FT average "
              "| transfer: zero-shot worst-group | transfer: FT on `broad` worst-group |", "|---" * 7 + "|"]
    for m in ps:
        lines.append(f"| {m['seed']} | {m['spurious zeroshot']['worst_group_acc']:.3f} "
                     f"| {m['spurious ft']['worst_group_acc']:.3f} | {m['spurious zeroshot']['avg_acc']:.3f} "
                     f"| {m['spurious ft']['avg_acc']:.3f} | {m['transfer zeroshot']['worst_group_acc']:.3f} "
                     f"| {m['transfer ft']['worst_group_acc']:.3f} |")
    return "\n".join(lines) + "\n"
