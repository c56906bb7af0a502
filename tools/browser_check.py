"""Open a notebook in a real JupyterLab with headless Chromium, run every cell, check the widgets.

JupyterLab runs as a subprocess on 127.0.0.1 (a throw-away copy of the notebooks folder, its own
settings and workspace folders, so nothing of yours is read or overwritten). Chromium is driven by
the Chrome DevTools Protocol over a websocket (``websocket-client``, which jupyter_server already
depends on): no Selenium, no Playwright, no browser download.

    .venv/bin/python tools/browser_check.py notebooks/06_panels.ipynb --panels TrainPanel DriftExplorer

Screenshots of the page and of each panel go to ``test-artifacts/`` (override with --out).
"""
from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ERROR_TEXT = "Error displaying widget"


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str, timeout: float = 5.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.read()


def _wait_until(fn, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            tail = log.read_text()[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what}: the process exited with code {proc.returncode}\n{tail}")
        with contextlib.suppress(Exception):
            value = fn()
            if value:
                return value
        time.sleep(0.25)
    tail = log.read_text()[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{what}: not ready after {timeout:.0f} s\n{tail}")


class DevTools:
    """A minimal Chrome DevTools Protocol client for one page."""

    def __init__(self, ws_url: str):
        import websocket
        self.ws = websocket.create_connection(ws_url, timeout=120, suppress_origin=True)
        self.next_id = 0

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"DevTools {method}: {msg['error']}")
                return msg.get("result", {})

    def js(self, expression: str, timeout: float = 60):
        """Evaluate JavaScript (promises awaited) and return its JSON value."""
        r = self.call("Runtime.evaluate", expression=expression, awaitPromise=True, returnByValue=True,
                      timeout=int(timeout * 1000))
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            raise RuntimeError(f"JavaScript failed: {d.get('exception', {}).get('description') or d.get('text')}")
        return r["result"].get("value")

    def screenshot(self, path: Path, clip: dict | None = None) -> Path:
        params = {"format": "png", "captureBeyondViewport": True}
        if clip:
            params["clip"] = {**clip, "scale": 1}
        data = self.call("Page.captureScreenshot", **params)["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self):
        with contextlib.suppress(Exception):
            self.ws.close()


_RUN_ALL = """
(async () => {
  const app = window.jupyterapp;
  await app.restored;
  const nb = await app.commands.execute('docmanager:open', {path: %s, factory: 'Notebook'});
  app.shell.activateById(nb.id);
  await nb.context.ready;
  await nb.sessionContext.ready;
  window.__rftlabNotebook = nb;
  window.__rftlabRun = app.commands.execute('notebook:run-all-cells');
  return nb.title.label;
})()
"""

_STATE = """
(() => {
  const nb = window.__rftlabNotebook;
  const cells = nb.content.widgets.filter(c => c.model.type === 'code');
  const kernel = nb.sessionContext.session && nb.sessionContext.session.kernel;
  const errors = [];
  for (const c of cells) {
    const outs = c.model.outputs;
    for (let i = 0; i < outs.length; i++) {
      const o = outs.get(i).toJSON();
      if (o.output_type === 'error') errors.push(o.ename + ': ' + o.evalue);
    }
  }
  return {done: cells.filter(c => c.model.executionCount !== null).length, total: cells.length,
          status: kernel ? kernel.status : 'none', errors: errors,
          widget_errors: document.body.innerText.split(%(err)s).length - 1};
})()
""" % {"err": json.dumps(ERROR_TEXT)}

_PANELS = """
((names) => {
  const out = {};
  for (const n of names) {
    out[n] = Array.from(document.querySelectorAll('.rftlab-' + n.toLowerCase())).map(e => {
      const r = e.getBoundingClientRect();
      const plots = Array.from(e.querySelectorAll('.js-plotly-plot'));
      return {width: r.width, height: r.height, plots: plots.length,
              traces: plots.reduce((n, p) => n + ((p.data && p.data.length) || 0), 0)};
    });
  }
  return out;
})(%s)
"""

_RENDERED = """
((name, i) => {
  const e = document.querySelectorAll('.rftlab-' + name.toLowerCase())[i];
  const plots = Array.from(e.querySelectorAll('.js-plotly-plot'));
  return plots.length > 0 && plots.every(p => p._fullLayout && p._fullData && p.data &&
                                              p._fullData.length === p.data.length);
})(%s, %d)
"""

_SCROLL_TO = """
((name, i) => {
  const e = document.querySelectorAll('.rftlab-' + name.toLowerCase())[i];
  e.scrollIntoView({block: 'start'});
  const r = e.getBoundingClientRect();
  return {x: r.x, y: r.y, width: r.width, height: Math.min(r.height, window.innerHeight - r.y)};
})(%s, %d)
"""


def check_notebook(notebook: Path, panels: list[str], out_dir: Path, timeout: float = 420,
                   chromium: str | None = None, env: dict | None = None, log=print) -> dict:
    """Run ``notebook`` in JupyterLab in headless Chromium. Returns a report dict
    (``errors``, ``widget_errors``, ``panels``: name -> boxes found, ``screenshots``);
    raises RuntimeError/TimeoutError when the page or the kernel never gets there."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError("chromium is not installed (apt-get install chromium)")
    notebook = Path(notebook).resolve()
    jupyter = Path(sys.executable).with_name("jupyter")
    tmp = Path(tempfile.mkdtemp(prefix="rftlab-browser-"))
    work = tmp / "notebooks"
    shutil.copytree(notebook.parent, work, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    settings = tmp / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # render every cell (no virtual scrolling) so each panel is in the page to find and photograph
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    news = tmp / "settings" / "@jupyterlab" / "apputils-extension"
    news.mkdir(parents=True)
    (news / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    token, port = secrets.token_hex(16), free_port()
    run_env = {**os.environ, **(env or {}), "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
               "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime")}
    lab_log = tmp / "lab.log"
    lab = chrome = cdp = None
    report = {"errors": [], "widget_errors": 0, "panels": {}, "screenshots": []}
    try:
        with open(lab_log, "w") as fh:
            lab = subprocess.Popen([str(jupyter), "lab", "--no-browser", f"--IdentityProvider.token={token}",
                                    "--ip", "127.0.0.1", "--port", str(port), f"--ServerApp.root_dir={work}",
                                    "--LabApp.expose_app_in_browser=True", "--ServerApp.port_retries=0",
                                    *(["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else [])],
                                   stdout=fh, stderr=subprocess.STDOUT, env=run_env, cwd=work)
        base = f"http://127.0.0.1:{port}"
        _wait_until(lambda: _get(f"{base}/api/status?token={token}"), 90, "JupyterLab", lab, lab_log)
        log(f"JupyterLab up on port {port}")
        profile = tmp / "chrome"
        chrome = subprocess.Popen([chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
                                   "--disable-dev-shm-usage", "--no-first-run", "--remote-debugging-port=0",
                                   f"--user-data-dir={profile}", "--window-size=1400,1600", "about:blank"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        dport = _wait_until(lambda: (profile / "DevToolsActivePort").read_text().split()[0], 60, "Chromium", chrome)
        pages = _wait_until(lambda: [t for t in json.loads(_get(f"http://127.0.0.1:{dport}/json/list"))
                                     if t["type"] == "page"], 30, "a Chromium page", chrome)
        cdp = DevTools(pages[0]["webSocketDebuggerUrl"])
        cdp.call("Page.enable")
        cdp.call("Page.navigate", url=f"{base}/lab?token={token}&reset")
        _wait_until(lambda: cdp.js("!!(window.jupyterapp)"), 120, "JupyterLab in the page", lab, lab_log)
        log("notebook:", cdp.js(_RUN_ALL % json.dumps(notebook.name), timeout=180), "- running every cell")
        t0 = time.monotonic()
        state = {}
        while time.monotonic() - t0 < timeout:
            state = cdp.js(_STATE)
            if state["errors"] or (state["done"] == state["total"] and state["status"] == "idle"):
                break
            time.sleep(1.0)
        else:
            raise TimeoutError(f"the notebook did not finish in {timeout:.0f} s: {state}")
        time.sleep(3.0)  # let the widget views and plots render
        state = cdp.js(_STATE)
        log(f"executed {state['done']}/{state['total']} code cells in {time.monotonic() - t0:.0f} s")
        report["errors"], report["widget_errors"] = state["errors"], state["widget_errors"]
        for name in panels:  # give each panel's figures time to draw
            n = len(cdp.js(_PANELS % json.dumps([name]))[name])
            for i in range(n):
                with contextlib.suppress(TimeoutError):
                    _wait_until(lambda: cdp.js(_RENDERED % (json.dumps(name), i)), 20, f"{name}'s figures")
        boxes = cdp.js(_PANELS % json.dumps(panels))
        report["panels"] = boxes
        out_dir.mkdir(parents=True, exist_ok=True)
        report["screenshots"].append(str(cdp.screenshot(out_dir / "page.png")))
        for name, found in boxes.items():
            for i, b in enumerate(found):
                if b["width"] > 0 and b["height"] > 0:
                    clip = cdp.js(_SCROLL_TO % (json.dumps(name), i))  # the notebook scrolls, not the window
                    with contextlib.suppress(TimeoutError):
                        _wait_until(lambda: cdp.js(_RENDERED % (json.dumps(name), i)), 20, f"{name}'s figures")
                    time.sleep(1.0)
                    report["screenshots"].append(str(cdp.screenshot(out_dir / f"{name}{'' if i == 0 else i}.png", clip)))
        return report
    finally:
        if cdp is not None:
            cdp.close()
        for proc in (chrome, lab):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("notebook", type=Path)
    ap.add_argument("--panels", nargs="*", default=[])
    ap.add_argument("--out", type=Path, default=ROOT / "test-artifacts")
    ap.add_argument("--timeout", type=float, default=420)
    args = ap.parse_args(argv)
    rep = check_notebook(args.notebook, args.panels, args.out, args.timeout, env={"RFTLAB_SMOKE": "1"})
    print(json.dumps(rep, indent=1))
    bad = rep["errors"] or rep["widget_errors"] or any(not v for v in rep["panels"].values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
