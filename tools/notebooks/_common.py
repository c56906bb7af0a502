"""Cells shared by several notebooks."""

SETUP = '''\
# --- choose the model and data here -------------------------------------------------
import os
SMOKE = os.environ.get("RFTLAB_SMOKE") == "1"  # CI sets RFTLAB_SMOKE=1: shorter runs, same story
MODEL, PRETRAINED = "rftlab-world", None        # a real CLIP: MODEL, PRETRAINED = "ViT-B-32", "openai"
STEPS = 60 if SMOKE else 150                     # fine-tuning steps on the world
# -------------------------------------------------------------------------------------
import torch
import plotly.graph_objects as go
import rftlab
torch.manual_seed(0)
clip = rftlab.load_model(MODEL, PRETRAINED)
print(f"model: {clip.arch} ({sum(p.numel() for p in clip.model.parameters()) / 1e6:.2f}M parameters), smoke mode: {SMOKE}")'''


def setup(task: str, real: str, extra: str = "", name: str = "TASK", steps_smoke: int = 60) -> str:
    """The first cell of an exploration notebook: the smoke switch, the model and the data.

    ``task`` is the world task loaded by default (or, when it starts with ``{``, the expression
    assigned to ``name``); ``real`` the expression for real data, shown in a comment; ``extra``
    lines are appended to the choice block; ``steps_smoke`` is the number of steps per run in smoke mode."""
    value = task if task.startswith("{") else f'rftlab.load_task("{task}")'
    task_line = f"{name} = {value}".ljust(45)
    summary = f"print({name}.summary())" if name == "TASK" else f"for t in {name}.values():\n    print(t.summary())"
    steps_line = f"STEPS = {steps_smoke} if SMOKE else 150".ljust(47)
    return f'''\
# --- choose the model and data here -------------------------------------------------
import os
import rftlab
SMOKE = os.environ.get("RFTLAB_SMOKE") == "1"  # CI sets RFTLAB_SMOKE=1: shorter runs, same story
MODEL, PRETRAINED = "rftlab-world", None        # a real CLIP: MODEL, PRETRAINED = "ViT-B-32", "openai"
{task_line}  # real data: {name} = {real}
{steps_line}  # fine-tuning steps per run (the world default is 150)
SEED = 0                                         # training seed: change it to see the spread between runs{extra}
# -------------------------------------------------------------------------------------
import torch
import plotly.graph_objects as go
from rftlab import analysis, plots
torch.manual_seed(0)
clip = rftlab.load_model(MODEL, PRETRAINED)
CFG = rftlab.TrainConfig(steps=STEPS, seed=SEED, eval_every=0, progress=False)  # no validation: the last step is kept
print(f"model: {{clip.arch}} ({{sum(p.numel() for p in clip.model.parameters()) / 1e6:.2f}}M parameters), "
      f"smoke mode: {{SMOKE}}, {{STEPS}} steps per fine-tuning run")
{summary}'''


COMMITTED = '''\
import json
from pathlib import Path

def committed_results(task_name):
    """The 3-seed comparison recorded in docs/compare_<task>.json (rows of rftlab.compare), or []
    when this is not a world task (the recorded runs are on the world)."""
    path = Path(rftlab.__file__).resolve().parents[1] / "docs" / f"compare_{task_name}.json"
    return json.loads(path.read_text()) if task_name in ("shift", "spurious") and path.exists() else []'''
