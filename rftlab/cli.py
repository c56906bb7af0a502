"""The ``rftlab`` command line."""
from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys


def _ints(text: str) -> list[int]:
    return [int(t) for t in text.split(",")]


def _floats(text: str) -> list[float]:
    return [float(t) for t in text.split(",")]


def _bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def cmd_pretrain(a) -> int:
    import torch

    from .pretrain import pretrain
    if a.threads:
        torch.set_num_threads(a.threads)
    if len(a.steps) != 3 or len(a.lr) != 3:
        raise SystemExit("--steps and --lr take three comma-separated values: supervised,align,joint")
    mix = None
    if a.mix:
        from .world.sample import PRETRAIN_MIX, PretrainMix
        try:
            changes = json.loads(a.mix)
        except json.JSONDecodeError as err:
            raise SystemExit(f"--mix takes a JSON object of PretrainMix fields, e.g. "
                             f"'{{\"wide_fraction\": 0.25}}': {err}") from err
        mix = PretrainMix.from_dict({**PRETRAIN_MIX.to_dict(), **changes})
    pretrain(steps=a.steps, batch_size=a.batch_size, lr=a.lr, seed=a.seed, out=a.out,
             eval_every=a.eval_every, command=a.command_line,
             log=lambda m: print(m, flush=True), mix=mix)
    return 0


def cmd_world(a) -> int:
    from .world.grid import sample_grid
    img = sample_grid(seed=a.seed, size=a.size)
    img.save(a.out)
    print(f"wrote {a.out} ({img.width}x{img.height}): rows are styles, columns shapes; "
          f"each tile is labelled with its colour and background")
    return 0


def _metrics_table(rows: list[tuple[str, dict]]) -> str:
    from .metrics import TABLE_COLUMNS as cols
    lines = [f"{'':<14}" + "".join(f"{c:>16}" for c in cols)]
    for name, m in rows:
        cells = "".join(f"{m[c]:>16.4f}" if isinstance(m.get(c), float) else f"{'-':>16}" for c in cols)
        lines.append(f"{name:<14}{cells}")
    return "\n".join(lines)


def _log(a):
    """Progress lines: to stderr when stdout carries JSON."""
    stream = sys.stderr if getattr(a, "json", False) else sys.stdout
    return lambda m: print(m, file=stream, flush=True)


def _assignments(items) -> dict:
    from .run_config import parse_assignment
    return dict(parse_assignment(t) for t in items or ())


def cmd_zeroshot(a) -> int:
    from .classifier import ClipClassifier
    from .evaluation import evaluate
    from .models.loading import load_model
    from .run_config import open_task
    clip = load_model(a.model, a.pretrained)
    task = open_task(a.task, a.root, _assignments(a.task_arg))
    clf = ClipClassifier.zeroshot(clip, task.classnames, task.templates)
    metrics = evaluate(clf, task, clip.preprocess, cache=a.cache)
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


_RESUME_FLAGS = ("device", "cache")   # what may change when a run is resumed


def _finetune_flags(a) -> dict:
    """Config values given as flags (those not given are left out)."""
    from .run_config import train_keys
    flags = {k: getattr(a, k) for k in ("method", "model", "pretrained", "task", "root", "cache", *train_keys())
             if getattr(a, k, None) is not None}
    hp = _assignments(a.hp)
    if a.alpha is not None:
        hp["alpha"] = a.alpha
    if hp:
        flags["hparams"] = hp
    if a.task_arg:
        flags["task_args"] = _assignments(a.task_arg)
    return flags


def cmd_finetune(a) -> int:
    from .run_config import read_config_file
    from .run_folder import finetune_run, resume_run
    flags = _finetune_flags(a)
    if a.resume:
        fixed = sorted(set(flags) - set(_RESUME_FLAGS)) + [n for n, v in (("config", a.config), ("out", a.out),
                                                                         ("overwrite", a.overwrite)) if v]
        names = {"hparams": "hp", "task_args": "task-arg"}
        if fixed:
            raise ValueError(f"--resume continues a run with its saved config: drop "
                             f"{', '.join('--' + names.get(f, f.replace('_', '-')) for f in fixed)} "
                             f"(only --device and --cache may change), or start a new run with --out")
        record = resume_run(a.resume, device=a.device, cache=a.cache, progress=not a.json, log=_log(a))
    else:
        config = read_config_file(a.config) if a.config else {}
        for key in ("hparams", "task_args"):   # flags add to the file's mappings
            if key in flags and isinstance(config.get(key), dict):
                flags[key] = {**config[key], **flags[key]}
        record = finetune_run({**config, **flags}, a.out, overwrite=a.overwrite, progress=not a.json, log=_log(a))
    from .distributed import is_main
    if not is_main():  # under torchrun every rank trains; rank 0 alone reports
        return 0
    if a.json:
        print(json.dumps(record, indent=1))
    if record.get("status") == "interrupted":
        from .errors import EXIT_INTERRUPTED
        return EXIT_INTERRUPTED
    if not a.json:
        print(_metrics_table([(record["method"], record["metrics"])]))
    return 0


def cmd_wise_curve(a) -> int:
    from .methods.wiseft import ALPHAS
    from .run_folder import wise_curve_of_run
    out = wise_curve_of_run(a.run, a.alphas or ALPHAS, device=a.device, cache=a.cache, log=_log(a))
    if a.json:
        print(json.dumps(out, indent=1))
    else:
        print(_metrics_table([(f"alpha {r['alpha']:g}", r) for r in out["rows"]]))
    return 0


def cmd_phenomena(a) -> int:
    from pathlib import Path

    from .models.factory import DEFAULT_MODEL
    from .models.loading import load_model
    from .phenomena import markdown, measure, text_table
    clip = load_model(a.model, a.pretrained)
    result = measure(clip, seeds=tuple(range(a.seeds)), log=lambda m: print(m, flush=True))
    result["command"] = a.command_line
    result["model"] = {"name": a.model, "pretrained": a.pretrained}
    print(text_table(result))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    if a.md:
        label = "the shipped world CLIP" if a.model == DEFAULT_MODEL and a.pretrained is None else \
            f"`{a.model}`" + (f" with weights `{a.pretrained}`" if a.pretrained else "")
        Path(a.md).write_text(markdown(result, label))
    return 0


def cmd_compare(a) -> int:
    from .compare import compare, header, markdown_table
    from .methods import METHODS
    from .models.loading import load_model
    from .tasks import load_task
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


def cmd_probe(a) -> int:
    from .probe import load_probed, read_candidates, run_probe, write_report
    from .run_config import train_keys
    log = _log(a)
    trained = [k for k in ("hp", "alpha", *train_keys()) if getattr(a, k, None) not in (None, [])]
    if a.method is None and trained:
        raise ValueError(f"--{trained[0].replace('_', '-')} is a fine-tuning flag: add --method (e.g. --method ft) "
                         f"to fine-tune before probing, or drop it")
    finetune = _finetune_flags(a) if a.method is not None else None
    if finetune is not None and a.base_pretrained is not None:
        raise ValueError("with --method the model fine-tunes from --pretrained, which is then the reference: "
                         "drop --base-pretrained")
    if a.run is None and a.out is None:
        raise ValueError("give --out DIR for probe.json and probe.html (with --run they default to the run folder)")
    candidates = read_candidates(a.candidates) if a.candidates else None
    p = load_probed(a.run, a.model, a.pretrained, a.base_pretrained, a.task, a.root, _assignments(a.task_arg),
                    finetune=finetune, log=log)
    result = run_probe(p, split=a.split, candidates=candidates, alpha=a.alpha_rule, fraction=a.fraction,
                       min_errors=a.min_errors)
    out = a.out or a.run
    paths = write_report(result, out, p.about, top=a.top)
    if a.json:
        from .probe import report_dict
        print(json.dumps(report_dict(result, p.about), indent=1))
    else:
        print(result.summary(top=a.top))
        print(f"wrote {paths[0]} and {paths[1]}")
    return 0


def _add_train_flags(s) -> None:
    """One flag per TrainConfig field a run config may set (--steps, --lr, --seed...)."""
    from .run_config import field_kind, train_keys
    for name, f in train_keys().items():
        default = f.default if f.default is not dataclasses.MISSING else None
        kind = {bool: _bool, int: int, float: float}.get(field_kind(f), str)
        s.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None,
                       help=f"TrainConfig.{name} (default {default})")


def cmd_sweep(a) -> int:
    from .methods import METHODS
    from .models.loading import load_model
    from .run_config import open_task
    from .tuning import sweep
    clip = load_model(a.model, a.pretrained)
    task = open_task(a.task, a.root, _assignments(a.task_arg))
    methods = list(METHODS) if a.methods == "all" else a.methods.split(",")
    settings = {k: getattr(a, k) for k in ("steps", "batch_size", "device") if getattr(a, k) is not None}
    if a.cache is not None:
        settings["feature_cache"] = a.cache
    out = sweep(clip, task, methods, budget=a.budget, seeds=tuple(range(a.seeds)), select=a.select,
                log=lambda m: print(m, flush=True), **settings)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


def cmd_claims(a) -> int:
    from pathlib import Path

    from .claims import run_claims, write_report
    from .files import RESULTS_DIR
    out = a.out or ("claims-quick" if a.quick else "docs")
    json_dir = None if a.out or a.quick else RESULTS_DIR   # the default full run records claims.json in the package
    tuned, tuning = None, None
    if a.tuned:
        from .files import read_json
        data = read_json(a.tuned, "tuned settings", "give rftlab/results/claims.json or rftlab/claims_tuned.json of a full run")
        if not isinstance(data, dict) or not isinstance(data.get("tuned"), dict):
            raise ValueError(f"{a.tuned} holds no 'tuned' mapping: give rftlab/results/claims.json or rftlab/claims_tuned.json "
                             f"of a full run")
        tuned = data["tuned"]
        tuning = {"source": data.get("source", str(a.tuned)), "seconds": data.get("tuning_seconds"),
                  "budget": data.get("budget", a.budget)}
    papers = [p.strip() for p in a.papers.split(",") if p.strip()] if a.papers else None
    recorded_file = Path(json_dir or out) / "claims.json"
    if papers and not a.quick:   # a run of some papers goes into the recorded full run
        from .claims import merge_results
        from .files import read_json
        recorded = read_json(recorded_file, "recorded claims", "run `rftlab claims` in full once first")
        if tuned is None:
            tuned, tuning = recorded["tuned"], {"source": f"{recorded_file} (its full run)",
                                                "budget": recorded.get("budget")}
    result = run_claims(quick=a.quick, budget=a.budget, workers=a.workers, tuned=tuned,
                        tuning=tuning if tuned is not None else None, papers=papers,
                        log=lambda m: print(m, flush=True))
    if papers and not a.quick:
        result = merge_results(recorded, result, f"rftlab claims --papers {shlex.quote(a.papers)}")
    paths = write_report(result, out, json_dir)
    print("wrote " + ", ".join(str(p) for p in paths))
    if a.json:
        print(json.dumps(result["rows"], indent=1))
    return 0


def _add_task_flags(s, required: bool, names: str) -> None:
    """--task (world task ``names``, or a real dataset with --root), --root and --task-arg."""
    s.add_argument("--task", required=required, default=None, help=f"{names}, or a real dataset name (with --root)")
    s.add_argument("--root", default=None, help="the folder a real dataset is read from")
    s.add_argument("--task-arg", action="append", metavar="NAME=VALUE", help="a task loader argument (repeatable)")


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
    s.add_argument("--mix", default=None, metavar="JSON", help="changes to the pretraining stream "
                   "(rftlab.world.sample.PretrainMix fields), e.g. '{\"wide_fraction\": 0.25}'")
    s.set_defaults(func=cmd_pretrain)

    s = sub.add_parser("world", help="save a labelled grid of world samples")
    s.add_argument("--out", default="world.png")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--size", type=int, default=32)
    s.set_defaults(func=cmd_world)

    s = sub.add_parser("zeroshot", help="zero-shot evaluation of a model on a task")
    _add_task_flags(s, required=True, names="spurious, shift")
    s.add_argument("--model", default="rftlab-world", help="rftlab-world, an open_clip name, or local-dir:DIR")
    s.add_argument("--pretrained", default=None, help="an open_clip tag or a weights file")
    s.add_argument("--cache", nargs="?", const=True, default=None, metavar="DIR",
                   help="keep image features on disk (default folder: $RFTLAB_CACHE_DIR or ~/.cache/rftlab/features)")
    s.add_argument("--json", action="store_true", help="print one JSON object")
    s.set_defaults(func=cmd_zeroshot)

    s = sub.add_parser("finetune", help="fine-tune a model on a task; with --out, a run folder that resumes",
                       description="Settings come from --config (JSON or YAML), then flags, which win. "
                                   "See docs/real-path.md.")
    s.add_argument("--config", default=None, help="a .json, .yaml or .yml file of settings")
    s.add_argument("--out", default=None, help="the run folder (config, checkpoints, metrics, history, figures)")
    s.add_argument("--resume", default=None, metavar="RUN", help="continue the run in this folder")
    s.add_argument("--overwrite", action="store_true", help="replace the run already in --out")
    _add_task_flags(s, required=False, names="spurious, shift")
    s.add_argument("--method", default=None, help="a registered method (ft, wise-ft, lipsum-ft, ...); default ft")
    s.add_argument("--hp", action="append", metavar="NAME=VALUE", help="a method hyperparameter (repeatable)")
    s.add_argument("--alpha", type=float, default=None, help="WiSE-FT mixing weight (same as --hp alpha=...)")
    s.add_argument("--model", default=None, help="rftlab-world (default), an open_clip name, or local-dir:DIR")
    s.add_argument("--pretrained", default=None, help="an open_clip tag or a weights file")
    s.add_argument("--cache", nargs="?", const=True, default=None, metavar="DIR",
                   help="keep image features on disk (LP features, evaluation)")
    _add_train_flags(s)
    s.add_argument("--json", action="store_true", help="print the metrics record as JSON")
    s.set_defaults(func=cmd_finetune)

    s = sub.add_parser("wise-curve", help="WiSE-FT curve of a finished run folder: zero-shot to fine-tuned")
    s.add_argument("run", help="a run folder written by `rftlab finetune --out`")
    s.add_argument("--alphas", type=_floats, default=None, help="comma-separated, in [0, 1] (default 0,0.1,...,1)")
    s.add_argument("--device", default=None)
    s.add_argument("--cache", nargs="?", const=True, default=None, metavar="DIR", help="keep image features on disk")
    s.add_argument("--json", action="store_true", help="print the curve as JSON")
    s.set_defaults(func=cmd_wise_curve)

    s = sub.add_parser("compare", help="train and evaluate methods over seeds; a table and JSON rows")
    s.add_argument("--task", required=True, help="spurious or shift")
    s.add_argument("--methods", default="all", help="all, or a comma-separated list")
    s.add_argument("--seeds", type=int, default=3)
    s.add_argument("--model", default="rftlab-world")
    s.add_argument("--pretrained", default=None)
    s.add_argument("--json", default=None, help="write the rows here")
    s.add_argument("--markdown", action="store_true", help="also print a markdown table")
    s.set_defaults(func=cmd_compare)

    s = sub.add_parser("sweep", help="tune each method on val with the same budget, then seeds on test",
                       description="A grid over lr and each method's key hyperparameters (Method.search), "
                                   "selected on val only, the selection retrained over seeds and scored on "
                                   "test. See docs/methods.md, Tuning.")
    _add_task_flags(s, required=True, names="spurious, shift")
    s.add_argument("--methods", default="all", help="all, or a comma-separated list")
    s.add_argument("--budget", type=int, default=6, help="configurations per method (a multiple of 3)")
    s.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 for the selected configuration")
    s.add_argument("--select", default="auto", choices=("auto", "val_acc", "val_worst_group_acc"),
                   help="the val metric that selects (auto: worst-group on group tasks, else accuracy)")
    s.add_argument("--steps", type=int, default=None, help="steps of every run (default: the recipe's)")
    s.add_argument("--batch-size", type=int, default=None, help="batch size of every run (default: the recipe's)")
    s.add_argument("--device", default=None)
    s.add_argument("--model", default="rftlab-world")
    s.add_argument("--pretrained", default=None)
    s.add_argument("--cache", nargs="?", const=True, default=None, metavar="DIR",
                   help="keep the probe's image features on disk (LP, LP-FT)")
    s.add_argument("--json", default=None, help="write the result here")
    s.set_defaults(func=cmd_sweep)

    s = sub.add_parser("claims", help="test every paper's claim under its protocol: docs/claims.md and .json",
                       description="Tune every method on val with the same budget (rftlab sweep), retrain over "
                                   "seeds, score each claim as its paper does and decide it by the rule in "
                                   "docs/claims.md. --quick: the recorded tuned values, 2 seeds, no sweep.")
    s.add_argument("--quick", action="store_true", help="no sweep: the tuned values of the last full run, 2 seeds")
    s.add_argument("--budget", type=int, default=6, help="configurations per method in the sweep (a multiple of 3)")
    s.add_argument("--out", default=None, help="folder for claims.md and claims.json (default: claims.md in docs "
                                                "and claims.json in rftlab/results; claims-quick with --quick)")
    s.add_argument("--tuned", default=None, metavar="FILE", help="reuse the tuned settings of a full run "
                                                                 "(rftlab/results/claims.json) instead of sweeping")
    s.add_argument("--workers", type=int, default=None, help="processes training side by side (default: one "
                                                                  "per core, at most 2)")
    s.add_argument("--papers", default=None, metavar="NAMES",
                   help="only these papers' claims, comma-separated name prefixes (e.g. 'SPD,LiNeS'); a full run "
                        "of them reuses the recorded run's tuned settings, tunes only what it lacks and puts its "
                        "rows into the recorded claims.json and claims.md")
    s.add_argument("--json", action="store_true", help="also print the rows as JSON")
    s.set_defaults(func=cmd_claims)

    s = sub.add_parser("phenomena", help="measure what fine-tuning does to robustness on the world")
    s.add_argument("--model", default="rftlab-world")
    s.add_argument("--pretrained", default=None)
    s.add_argument("--seeds", type=int, default=3)
    s.add_argument("--json", default=None, help="write the full result here (rftlab/results/phenomena.json)")
    s.add_argument("--md", default=None, help="write the table as markdown here (docs/phenomena.md)")
    s.set_defaults(func=cmd_phenomena)
    s = sub.add_parser("probe", help="find the shortcuts a model relies on; probe.json and probe.html",
                       description="Probe a run (--run), a checkpoint (--model/--pretrained, judged by "
                                   "--base-pretrained), or fine-tune first (--method and finetune's flags). "
                                   "See docs/analyses.md (shortcut discovery).")
    s.add_argument("--run", default=None, help="a finished run folder (`rftlab finetune --out`)")
    s.add_argument("--model", default=None, help="rftlab-world (default), an open_clip name, or local-dir:DIR")
    s.add_argument("--pretrained", default=None, help="the checkpoint probed (with --method: fine-tuned from)")
    s.add_argument("--base-pretrained", default=None,
                   help="the reference checkpoint (theta0) whose towers judge the images; default: the shipped "
                        "weights for rftlab-world, none for other models (the probed model judges itself)")
    _add_task_flags(s, required=False, names="spurious, shift, mystery")
    s.add_argument("--method", default=None, help="fine-tune with this method first (ft, lp-ft, ...), then probe")
    s.add_argument("--hp", action="append", metavar="NAME=VALUE", help="a method hyperparameter (with --method)")
    s.add_argument("--alpha", type=float, default=None, help="WiSE-FT mixing weight (with --method wise-ft)")
    s.add_argument("--cache", nargs="?", const=True, default=None, metavar="DIR", help=argparse.SUPPRESS)
    _add_train_flags(s)
    s.add_argument("--out", default=None, help="the folder for probe.json and probe.html (default with --run: the run)")
    s.add_argument("--split", default="val", help="the images probed (default val; never select on test)")
    s.add_argument("--candidates", default=None, metavar="FILE", help="descriptions to rank, one a line "
                   "(default: the world's factor phrases and rftlab's phrase pools)")
    s.add_argument("--fraction", type=float, default=0.5, help="share of each class's images a description fits")
    s.add_argument("--significance", dest="alpha_rule", type=float, default=0.05,
                   help="family-wise false-positive rate of the rule (Bonferroni)")
    s.add_argument("--min-errors", type=int, default=5, help="misclassified images needed to probe")
    s.add_argument("--top", type=int, default=10, help="rows shown")
    s.add_argument("--json", action="store_true", help="print probe.json")
    s.set_defaults(func=cmd_probe)
    return p


def _interrupted(a) -> str:
    """What Ctrl-C outside the training loop leaves, and how to go on."""
    folder = getattr(a, "resume", None) or getattr(a, "out", None)
    if getattr(a, "command", "") == "finetune" and folder:
        from .run_folder import has_run
        if has_run(folder):
            return f"; the run folder keeps its last checkpoint: continue with `rftlab finetune --resume {folder}`"
    return ""


def main(argv=None) -> int:
    """Exit codes: 0 done; 2 bad input (a bad flag value, name, file or setting: one line on
    stderr, no traceback); 130 interrupted (Ctrl-C; a run folder keeps its last checkpoint);
    1 with a traceback: a bug in rftlab. ``RFTLAB_TRACEBACK=1`` shows tracebacks of bad input too."""
    import os

    from .errors import EXIT_INTERRUPTED, EXIT_USER_ERROR, TRACEBACK_ENV, is_user_error
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args.command_line = "rftlab " + " ".join(argv)   # what the records say was run
    try:
        return args.func(args)
    except KeyboardInterrupt:
        print(f"rftlab {args.command}: interrupted{_interrupted(args)}", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as err:
        if not is_user_error(err) or os.environ.get(TRACEBACK_ENV):
            raise
        print(f"rftlab {args.command}: error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR


if __name__ == "__main__":
    sys.exit(main())
