"""Packaging promises: a light import, the README's commands, the skip list."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_is_light():
    code = "import sys, rftlab; print('open_clip' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    quick = re.search(r"## Quickstart\s+```\n(.*?)```", readme, re.S).group(1).strip().splitlines()
    assert len(quick) == 2 and quick[1] == "python3 run.py test"
    assert quick[1] in (ROOT / ".ci" / "run").read_text()


def test_every_skip_reason_is_listed():
    listed = (ROOT / "docs" / "skipped-tests.md").read_text()
    for f in (ROOT / "tests").glob("test_*.py"):
        for reason in re.findall(r'skip(?:if)?\([^"]*?reason="([^"]+)"', f.read_text()):
            assert reason in listed, f"{f.name}: skip reason not in docs/skipped-tests.md: {reason}"
