"""Write the notebooks and tutorials from their source cells (so diffs stay readable), then execute them.

Each module ``tools/notebooks/<name>.py`` defines ``PATH`` (where the .ipynb goes, relative to the
repository root) and ``CELLS`` (nbformat cells).

    .venv/bin/python tools/build_notebooks.py                    # write + execute all, full mode
    .venv/bin/python tools/build_notebooks.py nb02_spuriosity    # only the named module(s)
    RFTLAB_SMOKE=1 .venv/bin/python tools/build_notebooks.py --no-execute
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import nbformat
from nbformat.v4 import new_notebook

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def sources(names: list[str] | None = None) -> list:
    """The notebook source modules, all of them or the named ones."""
    found = sorted(p.stem for p in (ROOT / "tools" / "notebooks").glob("*.py") if not p.stem.startswith("_"))
    unknown = set(names or ()) - set(found)
    if unknown:
        raise SystemExit(f"unknown notebook source(s) {sorted(unknown)}; known: {', '.join(found)}")
    return [importlib.import_module(f"tools.notebooks.{n}") for n in (names or found)]


def build(module, execute: bool = True) -> Path:
    nb = new_notebook(cells=module.CELLS, metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                   "language": "python"}})
    path = ROOT / module.PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    if execute:
        from nbclient import NotebookClient
        NotebookClient(nb, timeout=900, kernel_name="python3", store_widget_state=False,  # plotly.js per widget: MBs
                       resources={"metadata": {"path": str(path.parent)}}).execute()
    nbformat.write(nb, path)
    return path


def main(argv: list[str]) -> None:
    unknown = [a for a in argv if a.startswith("-") and a != "--no-execute"]
    if unknown:  # never rebuild everything on a mistyped flag (or --help): it rewrites every notebook
        sys.exit(f"unknown option(s) {' '.join(unknown)}\n{__doc__}")
    execute = "--no-execute" not in argv
    for module in sources([a for a in argv if not a.startswith("--")] or None):
        print("wrote", build(module, execute), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
