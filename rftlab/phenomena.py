"""Does the world show what robust fine-tuning is about? Measure it.

1. On ``spurious``: plain fine-tuning lowers worst-group accuracy against zero-shot.
2. On ``shift``: fine-tuning raises ID accuracy; WiSE-FT (alpha 0.5) beats fine-tuning on
   mean OOD accuracy while keeping ID accuracy above zero-shot; and whether some alpha
   beats *both* endpoints on OOD (the WiSE-FT paper's stronger result).
"""
from __future__ import annotations

import dataclasses
import statistics

from .analysis.distortion import ALPHAS, wise_curve
from .classifier import ClipClassifier
from .evaluation import evaluate
from .recipes import TrainConfig
from .tasks import load_task
from .train import finetune


def measure(clip, seeds=(0, 1, 2), spurious_config: TrainConfig | None = None,
            shift_config: TrainConfig | None = None, log=print) -> dict:
    """Zero-shot vs FT on both world tasks, and the WiSE-FT curve on ``shift``, over seeds."""
    out = {"seeds": list(seeds), "spurious": [], "shift": []}
    for task_name, cfg in (("spurious", spurious_config), ("shift", shift_config)):
        task = load_task(task_name)
        zs = ClipClassifier.zeroshot(clip, task.classnames, task.templates)
        zs_metrics = evaluate(zs, task, clip.preprocess)
        for seed in seeds:
            conf = dataclasses.replace(cfg, seed=seed, progress=False) if cfg else TrainConfig(seed=seed, progress=False)
            res = finetune("ft", clip, task, conf)
            row = {"seed": seed, "zeroshot": zs_metrics, "ft": evaluate(res.classifier, task, clip.preprocess)}
            if task_name == "shift":
                row["wise"] = wise_curve(zs, res.classifier, task, clip.preprocess)
            out[task_name].append(row)
            log(f"{task_name} seed {seed}: " + summarise_row(task_name, row))
    out["verdict"] = verdict(out)
    return out


def summarise_row(task_name: str, row: dict) -> str:
    z, f = row["zeroshot"], row["ft"]
    if task_name == "spurious":
        return (f"worst-group zero-shot {z['worst_group_acc']:.3f} -> FT {f['worst_group_acc']:.3f}; "
                f"avg {z['avg_acc']:.3f} -> {f['avg_acc']:.3f}")
    w = {r["alpha"]: r for r in row["wise"]}
    return (f"ID {z['id_acc']:.3f} -> FT {f['id_acc']:.3f} (WiSE 0.5: {w[0.5]['id_acc']:.3f}); "
            f"mean OOD {z['mean_ood_acc']:.3f} -> FT {f['mean_ood_acc']:.3f} (WiSE 0.5: {w[0.5]['mean_ood_acc']:.3f})")


def verdict(result: dict) -> dict:
    """The phenomena as booleans on the means over seeds, with the means themselves."""
    mean = statistics.fmean
    sp, sh = result["spurious"], result["shift"]
    v = {}
    if sp:
        zs_wg = mean(r["zeroshot"]["worst_group_acc"] for r in sp)
        ft_wg = mean(r["ft"]["worst_group_acc"] for r in sp)
        v["spurious_worst_group_zeroshot"] = zs_wg
        v["spurious_worst_group_ft"] = ft_wg
        v["ft_lowers_worst_group_by_10_points"] = zs_wg - ft_wg >= 0.10
    if sh:
        zs_id = mean(r["zeroshot"]["id_acc"] for r in sh)
        zs_ood = mean(r["zeroshot"]["mean_ood_acc"] for r in sh)
        ft_id = mean(r["ft"]["id_acc"] for r in sh)
        ft_ood = mean(r["ft"]["mean_ood_acc"] for r in sh)
        curve = {a: (mean(r["wise"][i]["id_acc"] for r in sh), mean(r["wise"][i]["mean_ood_acc"] for r in sh))
                 for i, a in enumerate(ALPHAS)}
        w_id, w_ood = curve[0.5]
        best_alpha = max(curve, key=lambda a: curve[a][1])
        v.update({
            "shift_id": {"zeroshot": zs_id, "ft": ft_id, "wise_0.5": w_id},
            "shift_mean_ood": {"zeroshot": zs_ood, "ft": ft_ood, "wise_0.5": w_ood},
            "wise_curve": {str(a): {"id_acc": i, "mean_ood_acc": o} for a, (i, o) in curve.items()},
            "ft_raises_id": ft_id > zs_id,
            "wise_beats_ft_on_ood": w_ood > ft_ood,
            "wise_keeps_id_above_zeroshot": w_id > zs_id,
            "best_ood_alpha": best_alpha,
            "wise_beats_both_endpoints_on_ood": curve[best_alpha][1] > max(zs_ood, ft_ood) and 0 < best_alpha < 1,
        })
    return v
