"""Notebooks and lessons as files: jupytext pairs in sync, lessons in nbgrader's format, student
versions made by nbgrader's preprocessors (and equal to what `nbgrader generate_assignment` releases).
Nothing here executes a notebook: nbval does that (the README's test command)."""
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jupytext
import nbformat
import pytest

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = sorted((ROOT / "tutorials" / "solutions").glob("*.ipynb"))
NO_NBGRADER = "nbgrader (in rftlab's dev extra) is not installed: pip install -e .[dev]"


def _tool():
    spec = importlib.util.spec_from_file_location("notebooks_tool", ROOT / "tools" / "notebooks.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


tool = _tool()
FIX = f"\nfix: {tool.FIX}"


def _grader_cells(nb):
    return [c for c in nb.cells if "nbgrader" in c.metadata]


def test_every_notebook_and_lesson_is_paired():
    stems = {p.stem: p.parent.name for pair in tool.pairs() for p in pair}
    assert len(stems) == 13 and len(SOLUTIONS) == 6, sorted(stems)
    assert {n for n, folder in stems.items() if folder == "notebooks"} == {p.stem for p in (ROOT / "notebooks").glob("*.ipynb")}
    assert not list((ROOT / "tutorials").glob("*.py")), "student notebooks are written from their solution, never paired"


@pytest.mark.parametrize("pair", tool.pairs(), ids=lambda p: tool.rel(p[0]))
def test_pair_in_sync(pair):
    problem = tool.pair_problem(*pair)
    assert problem is None, problem + FIX


def test_pair_check_names_the_cell(tmp_path):
    notebook, script = (ROOT / "notebooks" / "00_start_here.ipynb"), (ROOT / "notebooks" / "00_start_here.py")
    shutil.copy(ROOT / "notebooks" / "jupytext.toml", tmp_path)
    nb = jupytext.read(script)
    nb.cells[3].source += "\nprint('edited in the .py only')"
    jupytext.write(nb, tmp_path / script.name, fmt="py:percent")
    shutil.copy(notebook, tmp_path)
    problem = tool.pair_problem(tmp_path / notebook.name, tmp_path / script.name)
    assert problem and "cell 3 (code)" in problem and "edited in the .py only" in problem, problem
    (tmp_path / script.name).unlink()
    assert tool.pair_problem(tmp_path / notebook.name, tmp_path / script.name).endswith("00_start_here.py missing")


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_lesson_in_nbgrader_format(solution):
    nb = nbformat.read(solution, as_version=4)
    cells = _grader_cells(nb)
    answers = [c for c in cells if c.metadata.nbgrader["solution"]]
    tests = [c for c in cells if c.metadata.nbgrader["grade"]]
    assert answers and tests, f"{solution.name}: needs a solution cell and an autograded test cell"
    ids = [c.metadata.nbgrader["grade_id"] for c in cells]
    assert len(ids) == len(set(ids)), f"{solution.name}: grade_ids repeat: {ids}"
    for c in answers:
        assert c.cell_type == "code" and not c.metadata.nbgrader["grade"] and not c.metadata.nbgrader["locked"]
        assert re.search(r"### BEGIN SOLUTION\n(.+\n)+\s*### END SOLUTION", c.source), c.source
    for c in tests:
        meta = c.metadata.nbgrader
        assert meta["locked"] and meta["points"] > 0 and not meta["solution"], meta
        visible, hidden = c.source.split("### BEGIN HIDDEN TESTS\n")
        assert re.match(r"assert \w+", hidden) and hidden.rstrip().endswith("### END HIDDEN TESTS"), c.source
        if "06_" not in solution.name:  # lesson 6's exercise is open: no checker
            assert re.search(r"= exercises\.check_\w+\(", visible), f"the checker call must stay visible: {c.source}"
    for c in nb.cells:
        if "nbgrader" not in c.metadata:
            assert "### BEGIN" not in c.source, f"{solution.name}: a marked region outside an nbgrader cell"


@pytest.mark.parametrize("solution", SOLUTIONS, ids=lambda p: p.stem)
def test_student_notebook_is_what_nbgrader_makes(solution):
    pytest.importorskip("nbgrader", reason=NO_NBGRADER)
    from nbgrader.nbgraderformat import MetadataValidator

    MetadataValidator().validate_nb(nbformat.read(solution, as_version=4))
    problem = tool.student_problem(solution)
    assert problem is None, problem + FIX
    student = nbformat.read(tool.student_path(solution), as_version=4)
    text = "\n".join(c.source for c in student.cells)
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text and "Solution notes" not in text
    answers = [c for c in _grader_cells(student) if c.metadata.nbgrader["solution"]]
    assert answers and all(c.source.endswith("raise NotImplementedError()") for c in answers)


def test_student_check_sees_a_stale_student_notebook():
    pytest.importorskip("nbgrader", reason=NO_NBGRADER)
    solution = nbformat.read(SOLUTIONS[0], as_version=4)
    student = tool.student_notebook(solution)
    assert tool.first_difference(student, tool.student_notebook(solution)) is None
    cell = next(i for i, c in enumerate(solution.cells) if c.cell_type == "markdown" and i > 0)
    solution.cells[cell].source += "\nA new sentence."
    assert tool.first_difference(student, tool.student_notebook(solution)).startswith(f"cell {cell} (markdown)")


def test_nbgrader_generate_assignment_releases_our_student_notebook(tmp_path):
    """The real `nbgrader generate_assignment`, as tutorials/README.md tells a teacher to run it."""
    pytest.importorskip("nbgrader", reason=NO_NBGRADER)
    solution = next(p for p in SOLUTIONS if p.name.startswith("03_"))
    (tmp_path / "source" / "lesson3").mkdir(parents=True)
    shutil.copy(solution, tmp_path / "source" / "lesson3")
    (tmp_path / "nbgrader_config.py").write_text(
        'c = get_config()\nc.CourseDirectory.course_id = "rftlab"\nc.Execute.timeout = None\n')
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}  # alembic
    done = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", "lesson3"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    released = nbformat.read(tmp_path / "release" / "lesson3" / solution.name, as_version=4)
    ours = nbformat.read(tool.student_path(solution), as_version=4)
    assert "BEGIN SOLUTION" not in "".join(c.source for c in released.cells)
    assert "return (log_p0.exp() * (log_p0 - log_p)).sum(-1).mean()" not in "".join(c.source for c in released.cells)
    assert [(c.cell_type, c.source) for c in released.cells] == [(c.cell_type, c.source) for c in ours.cells]
    assert [c.metadata.get("nbgrader") for c in released.cells] == [c.metadata.get("nbgrader") for c in ours.cells]
