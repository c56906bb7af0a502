"""The panels in a real browser: JupyterLab + headless Chromium run notebooks/06_panels.ipynb.

Fails when a cell raises, when the page shows "Error displaying widget", or when a panel (or its
figures) is missing from the page. Screenshots go to test-artifacts/ (page.png, one per panel).
"""
import importlib.util
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PANELS = ["TrainPanel", "DriftExplorer", "SpuriosityProbe", "CalibrationView"]


def _browser_check():
    spec = importlib.util.spec_from_file_location("browser_check", ROOT / "tools" / "browser_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed: the real-browser check of the panels notebook needs it (apt-get install chromium)")
def test_panels_render_in_jupyterlab():
    out = ROOT / "test-artifacts"
    report = _browser_check().check_notebook(
        ROOT / "notebooks" / "06_panels.ipynb", PANELS, out, timeout=480, chromium=CHROMIUM,
        env={"RFTLAB_SMOKE": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"})
    assert report["errors"] == [], f"cells failed in the browser: {report['errors']}"
    assert report["widget_errors"] == 0, "the page shows 'Error displaying widget'"
    for name in PANELS:
        boxes = report["panels"][name]
        assert boxes, f"{name} is missing from the page"
        assert boxes[0]["height"] > 100 and boxes[0]["plots"] >= 1, f"{name} shows no figure: {boxes[0]}"
        assert boxes[0]["traces"] >= 1, f"{name}'s figure has no data in the page: {boxes[0]}"
    for name in ["page", *PANELS]:
        shot = out / f"{name}.png"
        assert shot.exists() and shot.read_bytes()[:4] == b"\x89PNG"
