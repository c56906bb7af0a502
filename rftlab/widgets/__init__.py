"""Interactive panels for JupyterLab (ipywidgets and plotly FigureWidget; no custom JavaScript).

- :class:`TrainPanel`: train any method with live curves, stop, compare runs, save.
- :class:`DriftExplorer`: image embeddings before and after fine-tuning, WiSE-FT slider.
- :class:`SpuriosityProbe`: how strongly a description pulls each group, before and after.
- :class:`CalibrationView`: reliability diagrams and confidence histograms, temperature slider.

Every widget action calls a plain public method (``run``, ``stop``, ``set_alpha``, ``probe``,
``set_temperature``...), so code, tests and buttons take the same path. Without the
``anywidget`` package the figures are static and redrawn on each update (a warning says so once).
"""
from .calibration import CalibrationView
from .drift import DriftExplorer
from .spuriosity import SpuriosityProbe
from .train_panel import TrainPanel

__all__ = ["CalibrationView", "DriftExplorer", "SpuriosityProbe", "TrainPanel"]
