"""Keep every notebook and its .py twin in sync, and write the student tutorials.

Each notebook in ``notebooks/`` and each lesson in ``tutorials/solutions/`` is a jupytext pair:
``NN_name.ipynb`` (cells and the outputs of a full run) and ``NN_name.py`` (the same cells as a
percent-format script), paired by the ``jupytext.toml`` of its folder. Edit either one: JupyterLab's
jupytext extension saves both; after editing a ``.py`` in an editor, run this tool.

A lesson's solution notebook is its only source, in nbgrader's format (solution regions, autograded test
cells with hidden asserts). The student notebook ``tutorials/NN_name.ipynb`` is what nbgrader's
``generate_assignment`` makes of it (its preprocessors, minus the gradebook): solutions replaced by a stub,
hidden tests and outputs removed. It is written here, never edited by hand.

    python tools/notebooks.py                    # sync every pair, then write the student tutorials
    python tools/notebooks.py --check            # report what is out of date (exit status 1), change nothing
    python tools/notebooks.py --execute PATH...  # first execute these paired notebooks in full mode
"""
from __future__ import annotations

import argparse
import copy
import os
import sys
from itertools import zip_longest
from pathlib import Path

import jupytext
import nbformat
from jupytext.cli import jupytext as jupytext_cli

ROOT = Path(__file__).resolve().parent.parent
PAIRED = (ROOT / "notebooks", ROOT / "tutorials" / "solutions")  # folders whose jupytext.toml pairs .ipynb and .py
SOLUTIONS = ROOT / "tutorials" / "solutions"
STUDENTS = ROOT / "tutorials"
FIX = "python tools/notebooks.py"


def pairs() -> list[tuple[Path, Path]]:
    """(notebook, script) of every pair in the paired folders, also where one side does not exist yet."""
    stems = sorted({p.with_suffix("") for folder in PAIRED for p in [*folder.glob("*.ipynb"), *folder.glob("*.py")]})
    return [(s.with_suffix(".ipynb"), s.with_suffix(".py")) for s in stems]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def first_difference(a: nbformat.NotebookNode, b: nbformat.NotebookNode) -> str | None:
    """Where two notebooks' cells differ (type, source, nbgrader metadata), or None if they do not."""
    for i, (x, y) in enumerate(zip(a.cells, b.cells)):
        if x.cell_type != y.cell_type:
            return f"cell {i} is {x.cell_type} vs {y.cell_type}"
        if x.source != y.source:
            lines = zip_longest(x.source.splitlines(), y.source.splitlines())
            first = next(((n, uv) for n, uv in enumerate(lines) if uv[0] != uv[1]), None)
            if first is None:
                return f"cell {i} ({x.cell_type}): the line endings differ"
            n, (u, v) = first
            return f"cell {i} ({x.cell_type}), line {n + 1}: {u!r} vs {v!r}"
        if x.metadata.get("nbgrader") != y.metadata.get("nbgrader"):
            return f"cell {i}: nbgrader metadata {x.metadata.get('nbgrader')} vs {y.metadata.get('nbgrader')}"
    if len(a.cells) != len(b.cells):
        return f"{len(a.cells)} cells vs {len(b.cells)}"
    return None


def pair_problem(notebook: Path, script: Path) -> str | None:
    """Why a pair is out of sync (a side missing, or the first cell that differs), or None."""
    missing = [rel(p) for p in (notebook, script) if not p.exists()]
    if missing:
        return f"{', '.join(missing)} missing"
    diff = first_difference(nbformat.read(notebook, as_version=4), jupytext.read(script))
    return f"{rel(notebook)} and {rel(script)}: {diff}" if diff else None


def student_notebook(solution: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """The student version of a lesson: the solution through nbgrader's generate_assignment preprocessors.

    SaveCells is left out: it records the cells in a course's gradebook, and there is no course here."""
    from nbgrader.converters import GenerateAssignment
    from nbgrader.preprocessors import SaveCells

    nb, resources = copy.deepcopy(solution), {}
    for preprocessor in GenerateAssignment.class_traits()["preprocessors"].default():
        if preprocessor is not SaveCells:
            nb, resources = preprocessor().preprocess(nb, resources)
    return nb


def student_path(solution: Path) -> Path:
    return STUDENTS / solution.name


def student_problem(solution: Path) -> str | None:
    """Why tutorials/<lesson>.ipynb is not what nbgrader makes of its solution, or None."""
    path = student_path(solution)
    if not path.exists():
        return f"{rel(path)} missing"
    diff = first_difference(nbformat.read(path, as_version=4), student_notebook(nbformat.read(solution, as_version=4)))
    if diff:
        return f"{rel(path)} is not the student version of {rel(solution)}: {diff}"
    if any(c.get("outputs") for c in nbformat.read(path, as_version=4).cells):
        return f"{rel(path)} has outputs (student notebooks carry none)"
    return None


def problems() -> list[str]:
    """Everything out of date: pairs out of sync, student notebooks not made from their solution."""
    found = [pair_problem(*p) for p in pairs()]
    found += [student_problem(s) for s in sorted(SOLUTIONS.glob("*.ipynb"))]
    return [p for p in found if p]


def sync(notebook: Path, script: Path) -> None:
    """jupytext --sync: the newer side is the source; the .ipynb keeps the outputs of unchanged cells."""
    jupytext_cli(["--sync", "--quiet", str(notebook if notebook.exists() else script)])


def write_student(solution: Path) -> Path:
    path = student_path(solution)
    nbformat.write(student_notebook(nbformat.read(solution, as_version=4)), path)
    return path


def execute(notebook: Path) -> None:
    """Run a paired notebook top to bottom in full mode and store its outputs (the committed ones are full runs)."""
    from nbclient import NotebookClient

    if os.environ.get("RFTLAB_SMOKE") == "1":
        sys.exit("RFTLAB_SMOKE=1 is set: the committed outputs are full runs; unset it to execute notebooks")
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, timeout=1800, kernel_name="python3", record_timing=False,
                   store_widget_state=False,  # plotly.js per widget: megabytes
                   resources={"metadata": {"path": str(notebook.parent)}}).execute()
    nbformat.write(nb, notebook)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="report what is out of date, change nothing")
    mode.add_argument("--execute", nargs="+", type=Path, metavar="PATH",
                      help="notebooks in notebooks/ or tutorials/solutions/ to execute in full mode first")
    args = parser.parse_args(argv)
    if args.check:
        found = problems()
        print("\n".join(found) + f"\nfix: {FIX}" if found else "every pair in sync, every student notebook up to date")
        return 1 if found else 0
    for path in args.execute or ():
        notebook = path.resolve().with_suffix(".ipynb")
        if notebook.parent not in PAIRED or not notebook.exists():
            parser.error(f"{path}: not a notebook in notebooks/ or tutorials/solutions/ (student notebooks are "
                         "written from their solution and carry no outputs)")
        sync(notebook, notebook.with_suffix(".py"))  # an edited .py first, so the run sees the edit
        print("executing", rel(notebook), flush=True)
        execute(notebook)
    for pair in pairs():
        sync(*pair)
    for solution in sorted(SOLUTIONS.glob("*.ipynb")):
        print("wrote", rel(write_student(solution)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
