"""rftlab: robust fine-tuning of zero-shot CLIP models, hands on.

The public API is flat; submodules load on first use so ``import rftlab`` stays fast.
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    # recorded results (package data)
    "recorded": "rftlab.files",
    "recorded_path": "rftlab.files",
    # models
    "load_model": "rftlab.models.loading",
    "ClipModel": "rftlab.models.factory",
    "save_checkpoint": "rftlab.models.factory",
    "create_world_model": "rftlab.models.factory",
    "save_local_dir": "rftlab.models.loading",
    "WeightsNotFoundError": "rftlab.errors",
    # data and tasks
    "Task": "rftlab.data",
    "Split": "rftlab.data",
    "load_task": "rftlab.tasks",
    "make_task": "rftlab.world.tasks",
    "spurious_task": "rftlab.world.tasks",
    "shift_task": "rftlab.world.tasks",
    "load_dataset": "rftlab.datasets",
    "DATASETS": "rftlab.datasets",
    "imagenet_task": "rftlab.datasets",
    "natural_spurious_phrases": "rftlab.datasets",
    "DatasetLayoutError": "rftlab.errors",
    # heads, training, methods
    "zeroshot_head": "rftlab.zeroshot",
    "ClipClassifier": "rftlab.classifier",
    "Trainer": "rftlab.train",
    "TrainConfig": "rftlab.recipes",
    "TrainResult": "rftlab.methods",
    "finetune": "rftlab.train",
    "recipe_config": "rftlab.recipes",
    "sweep": "rftlab.tuning",
    "METHODS": "rftlab.methods",
    "get_method": "rftlab.methods",
    "wise_ft": "rftlab.methods",
    # long runs and the feature cache
    "FeatureCache": "rftlab.cache",
    "cached_encode_split": "rftlab.cache",
    "finetune_run": "rftlab.run_folder",
    "resume_run": "rftlab.run_folder",
    "wise_curve_of_run": "rftlab.run_folder",
    "Ranks": "rftlab.distributed",
    # analyses
    "layer_drift": "rftlab.analysis",
    "feature_distortion": "rftlab.analysis",
    "energy_gap": "rftlab.analysis",
    "effective_robustness": "rftlab.analysis",
    "wise_classifier": "rftlab.analysis",
    "wise_curve": "rftlab.analysis",
    "rank_descriptions": "rftlab.analysis",
    "discover_shortcuts": "rftlab.analysis",
    "context_shift": "rftlab.analysis",
    "calibration_report": "rftlab.analysis",
    "embedding_drift": "rftlab.analysis",
    "Projector": "rftlab.analysis",
    # widgets
    "TrainPanel": "rftlab.widgets.train_panel",
    "DriftExplorer": "rftlab.widgets.drift",
    "SpuriosityProbe": "rftlab.widgets.spuriosity",
    "CalibrationView": "rftlab.widgets.calibration",
    # evaluation
    "evaluate": "rftlab.evaluation",
    "encode_split": "rftlab.encode",
}

__all__ = sorted(_EXPORTS) + ["world", "tasks", "losses", "metrics", "datasets", "analysis", "plots", "phrases",
                               "exercises"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    if name in ("world", "tasks", "losses", "metrics", "methods", "data", "models", "datasets", "cache", "encode",
                "run_config", "run_folder", "analysis", "plots", "phrases", "distributed", "exercises"):
        return importlib.import_module(f"rftlab.{name}")
    raise AttributeError(f"module 'rftlab' has no attribute {name!r}")


def __dir__():
    return __all__
