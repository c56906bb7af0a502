"""Pieces every tutorial lesson shares; each lesson builds a student and a solution notebook
from one definition (``cells(solution)``)."""
from nbformat.v4 import new_code_cell, new_markdown_cell


def setup(steps_smoke: int, steps_full: int, n_test_smoke: int = 200, extra: str = "") -> str:
    """The first code cell: the model and data choice, and the smoke switch CI sets."""
    return f'''\
# --- choose the model and data here -------------------------------------------------
import os
SMOKE = os.environ.get("RFTLAB_SMOKE") == "1"  # CI sets RFTLAB_SMOKE=1: shorter runs, same story
MODEL, PRETRAINED = "rftlab-world", None        # a real CLIP: MODEL, PRETRAINED = "ViT-B-32", "openai"
STEPS = {steps_smoke} if SMOKE else {steps_full}                     # fine-tuning steps per method
N_TEST = {n_test_smoke} if SMOKE else 800                  # test images per domain
# -------------------------------------------------------------------------------------
import torch
import plotly.graph_objects as go
import rftlab
from rftlab import exercises
torch.manual_seed(0)
clip = rftlab.load_model(MODEL, PRETRAINED)
CFG = rftlab.TrainConfig(steps=STEPS, eval_every=0, progress=False)  # no validation: keep the last step{extra}
print(f"model: {{clip.arch}} ({{sum(p.numel() for p in clip.model.parameters()) / 1e6:.2f}}M parameters), "
      f"smoke mode: {{SMOKE}}, {{STEPS}} steps per fine-tuning run")'''


HOW_TO = """\
**How the exercises work.** An exercise cell holds a function whose body is `raise NotImplementedError`.
Replace that line with your code and run the cell: the checker below it runs your function on several
generated cases against rftlab's own implementation and answers *passed*, *not answered yet*, a
diagnosis of a classic mistake, or the first case where your function disagrees. Until your answer passes,
the cells after it use rftlab's reference implementation (they say so), so the notebook always runs top
to bottom. The solutions are in `tutorials/solutions/`."""


def exercise(solution: bool, signature: str, docstring: str, answer: str, hint: str = "") -> str:
    """An exercise function: ``raise NotImplementedError`` for students, ``answer`` in the solution."""
    doc = '    """' + docstring.replace("\n", "\n    ") + '"""\n'
    if solution:
        body = "\n".join("    " + line if line else "" for line in answer.splitlines())
    else:
        body = (f"    # YOUR CODE HERE{f' ({hint})' if hint else ''}\n"
                "    raise NotImplementedError")
    return f"def {signature}:\n{doc}{body}"


def check(solution: bool, name: str, call: str) -> str:
    """The checker call; the solution version also asserts that it passed."""
    code = f"{name} = {call}"
    if solution:
        code += f"\nassert {name}.passed, {name}.message  # the solution must pass its checker"
    return code


def solution_note(solution: bool, text: str) -> list:
    """A markdown note shown only in the solution notebook."""
    return [new_markdown_cell("**Solution notes.** " + text)] if solution else []


def title(number: int, name: str, solution: bool, intro: str) -> list:
    badge = ("*Solution notebook: the exercises are answered and every checker must pass.*" if solution
             else "*Student notebook: answer the exercises in place; `tutorials/solutions/` holds the answers.*")
    return [new_markdown_cell(f"# Lesson {number}: {name}\n\n{badge}\n\n{intro}"), new_markdown_cell(HOW_TO)]


def code(src: str):
    return new_code_cell(src)


def md(src: str):
    return new_markdown_cell(src)


IMAGE_ROW = '''\
from PIL import Image
from torchvision.utils import make_grid

def image_row(images, zoom=3):
    """A row of uint8 images (N, 3, H, W) as one PIL image."""
    grid = make_grid(images, nrow=len(images), padding=2, pad_value=255)
    return Image.fromarray(grid.permute(1, 2, 0).numpy()).resize((grid.shape[2] * zoom, grid.shape[1] * zoom), Image.NEAREST)'''
