#!/usr/bin/env python3
"""Set up and run rftlab with nothing but Python 3.10+ and pip.

    python3 run.py lab     # create .venv, install rftlab, open JupyterLab on notebooks/00_start_here
    python3 run.py lab --course   # the same, on the course's instructor guide (tutorials/README.md)
    python3 run.py test    # create .venv, install rftlab[dev], run the whole test suite

Extra arguments go to JupyterLab or pytest. Installation is skipped when .venv already
holds the current pyproject.toml.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / ("python.exe" if os.name == "nt" else "python")
STAMP = VENV / ".rftlab-installed"
# The whole suite, notebooks included (in smoke mode): the command CI runs.
TEST_ARGS = ["-m", "pytest", "tests", "notebooks", "tutorials", "--nbval-lax", "--nbval-current-env",
             "--nbval-sanitize-with", "tests/nbval_sanitize.cfg", "-p", "no:cacheprovider"]


def setup() -> None:
    if sys.version_info < (3, 10):
        sys.exit(f"rftlab needs Python 3.10 or newer; this is {sys.version.split()[0]}")
    if not PY.exists():
        print(f"creating a virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    want = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == want:
        return
    print("installing rftlab and its dependencies (first time: several minutes)", flush=True)
    subprocess.run([str(PY), "-m", "pip", "install", "-q", "-e", f"{ROOT}[dev]"], check=True)
    STAMP.write_text(want)


START = "notebooks/00_start_here.ipynb"   # what `run.py lab` opens
COURSE = "tutorials/README.md"           # what `run.py lab --course` opens


def lab_command(args: list[str], euid: int | None = None) -> list[str]:
    """The JupyterLab command of ``run.py lab``: the file browser rooted at the repository (so
    notebooks/ and tutorials/ are both reachable) with notebooks/00_start_here open, or with
    ``--course`` the course's guide. As root (containers, cloud notebooks) JupyterLab refuses to
    start without --allow-root, so it is added there."""
    if euid is None:
        euid = os.geteuid() if hasattr(os, "geteuid") else -1
    args = list(args)
    first = COURSE if "--course" in args else START
    args = [a for a in args if a != "--course"]
    root = ["--allow-root"] if euid == 0 and "--allow-root" not in args else []
    return [str(BIN / "jupyter"), "lab", f"--ServerApp.root_dir={ROOT}", f"--LabApp.default_url=/lab/tree/{first}",
            *root, *args]


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in ("lab", "test", "setup"):
        print(__doc__)
        return 2
    setup()
    cmd, rest = argv[0], argv[1:]
    env = dict(os.environ)
    if cmd == "setup":
        return 0
    if cmd == "lab":
        return subprocess.call(lab_command(rest), cwd=ROOT, env=env)   # cwd: nbgrader reads its course from it
    env.setdefault("RFTLAB_SMOKE", "1")
    env.setdefault("TQDM_DISABLE", "1")
    return subprocess.call([str(PY), *TEST_ARGS, *rest], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
