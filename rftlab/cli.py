"""The ``rftlab`` command line."""
from __future__ import annotations

import argparse
import json
import sys


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",")]


def _floats(text: str) -> list[float]:
    return [float(t) for t in text.split(",")]


def cmd_pretrain(a) -> int:
    import torch

    from .pretrain import pretrain
    if a.threads:
        torch.set_num_threads(a.threads)
    if len(a.steps) != 3 or len(a.lr) != 3:
        raise SystemExit("--steps and --lr take three comma-separated values: supervised,align,joint")
    pretrain(steps=a.steps, batch_size=a.batch_size, lr=a.lr, seed=a.seed, out=a.out,
             eval_every=a.eval_every, command="rftlab " + " ".join(sys.argv[1:]),
             log=lambda m: print(m, flush=True))
    return 0


def cmd_world(a) -> int:
    from .world.grid import sample_grid
    img = sample_grid(seed=a.seed, size=a.size)
    img.save(a.out)
    print(f"wrote {a.out} ({img.width}x{img.height}): rows are styles, columns shapes; "
          f"each tile is labelled with its colour and background")
    return 0


def _metrics_table(rows: list[tuple[str, dict]]) -> str:
    cols = ["id_acc", "mean_ood_acc", "avg_acc", "worst_group_acc", "ece"]
    lines = [f"{'':<14}" + "".join(f"{c:>16}" for c in cols)]
    for name, m in rows:
        cells = "".join(f"{m[c]:>16.4f}" if isinstance(m.get(c), float) else f"{'-':>16}" for c in cols)
        lines.append(f"{name:<14}{cells}")
    return "\n".join(lines)


def cmd_zeroshot(a) -> int:
    from .classifier import ClipClassifier
    from .evaluation import evaluate
    from .models.factory import load_model
    from .world.tasks import load_task
    clip = load_model(a.model, a.pretrained)
    task = load_task(a.task)
    clf = ClipClassifier.zeroshot(clip, task.classnames, task.templates)
    metrics = evaluate(clf, task, clip.preprocess)
    if a.json:
        print(json.dumps({"task": task.name, "model": clip.arch, "pretrained": clip.pretrained,
                          "method": "zeroshot", "metrics": metrics}, indent=1))
    else:
        print(task.summary())
        print(_metrics_table([("zeroshot", metrics)]))
        if metrics.get("ood_acc"):
            print("OOD accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics["ood_acc"].items()))
        if metrics.get("group_acc"):
            print("group accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in metrics["group_acc"].items()))
    return 0


def _train_config(a):
    from .train import TrainConfig
    kw = {k: getattr(a, k) for k in ("steps", "batch_size", "lr", "seed") if getattr(a, k, None) is not None}
    return TrainConfig(**kw, progress=not getattr(a, "json", False))


def cmd_finetune(a) -> int:
    from .evaluation import evaluate
    from .models.factory import load_model
    from .train import finetune
    from .world.tasks import load_task
    clip = load_model(a.model, a.pretrained)
    task = load_task(a.task)
    hp = {"alpha": a.alpha} if a.method == "wise-ft" and a.alpha is not None else {}
    cfg = _train_config(a)
    if a.out:
        cfg.checkpoint_dir = a.out
    res = finetune(a.method, clip, task, cfg, **hp)
    metrics = evaluate(res.classifier, task, clip.preprocess)
    if a.json:
        print(json.dumps({"task": task.name, "model": clip.arch, "method": a.method,
                          "steps": res.step, "metrics": metrics}, indent=1))
    else:
        print(_metrics_table([(a.method, metrics)]))
    return 0


def cmd_phenomena(a) -> int:
    from .models.factory import load_model
    from .phenomena import measure
    clip = load_model(a.model, a.pretrained)
    result = measure(clip, seeds=tuple(range(a.seeds)), log=lambda m: print(m, flush=True))
    result["command"] = "rftlab " + " ".join(sys.argv[1:])
    print(json.dumps(result["verdict"], indent=1))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


def cmd_compare(a) -> int:
    from .compare import compare, header, markdown_table
    from .methods import METHODS
    from .models.factory import load_model
    from .world.tasks import load_task
    clip = load_model(a.model, a.pretrained)
    task = load_task(a.task)
    methods = list(METHODS) if a.methods == "all" else a.methods.split(",")
    print(header(), flush=True)
    rows = compare(clip, task, methods, seeds=tuple(range(a.seeds)), log=lambda m: print(m, flush=True))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=1)
    if a.markdown:
        print(markdown_table(rows))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rftlab", description="Robust fine-tuning of CLIP, hands on.")
    sub = p.add_subparsers(dest="command", required=True)

    from .models.factory import DEFAULT_WEIGHTS
    s = sub.add_parser("pretrain", help="pretrain rftlab's embedded CLIP on the world")
    s.add_argument("--steps", type=_ints, default=[1500, 400, 1000], help="supervised,align,joint steps")
    s.add_argument("--lr", type=_floats, default=[2e-3, 1e-3, 5e-4], help="learning rate per stage")
    s.add_argument("--batch-size", type=int, default=256)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--eval-every", type=int, default=250)
    s.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    s.add_argument("--out", default=str(DEFAULT_WEIGHTS), help="where to write the weights")
    s.set_defaults(func=cmd_pretrain)

    s = sub.add_parser("world", help="save a labelled grid of world samples")
    s.add_argument("--out", default="world.png")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", type=int, default=32)
    s.set_defaults(func=cmd_world)

    s = sub.add_parser("zeroshot", help="zero-shot evaluation of a model on a task")
    s.add_argument("--task", required=True, help="spurious or shift")
    s.add_argument("--model", default="rftlab-world", help="rftlab-world, an open_clip name, or local-dir:DIR")
    s.add_argument("--pretrained", default=None, help="an open_clip tag or a weights file")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_zeroshot)

    s = sub.add_parser("finetune", help="fine-tune a model on a world task and evaluate it")
    s.add_argument("--task", required=True, help="spurious or shift")
    s.add_argument("--method", default="ft", help="a registered method (ft, wise-ft, ...)")
    s.add_argument("--model", default="rftlab-world")
    s.add_argument("--pretrained", default=None)
    s.add_argument("--steps", type=int, default=None)
    s.add_argument("--batch-size", type=int, default=None)
    s.add_argument("--lr", type=float, default=None)
    s.add_argument("--seed", type=int, default=None)
    s.add_argument("--alpha", type=float, default=None, help="WiSE-FT mixing weight")
    s.add_argument("--out", default=None, help="folder for the checkpoint")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_finetune)

    s = sub.add_parser("compare", help="train and evaluate methods over seeds; a table and JSON rows")
    s.add_argument("--task", required=True, help="spurious or shift")
    s.add_argument("--methods", default="all", help="all, or a comma-separated list")
    s.add_argument("--seeds", type=int, default=3)
    s.add_argument("--model", default="rftlab-world")
    s.add_argument("--pretrained", default=None)
    s.add_argument("--json", default=None, help="write the rows here")
    s.add_argument("--markdown", action="store_true", help="also print a markdown table")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("phenomena", help="measure what fine-tuning does to robustness on the world")
    s.add_argument("--model", default="rftlab-world")
    s.add_argument("--pretrained", default=None)
    s.add_argument("--seeds", type=int, default=3)
    s.add_argument("--json", default=None, help="write the full result here")
    s.set_defaults(func=cmd_phenomena)
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"rftlab {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
