"""Analyses of robust fine-tuning: plain functions over models, tasks/splits and features.

Models are :class:`~rftlab.ClipClassifier` (theta0 = the zero-shot classifier, theta = a
fine-tuned one; a :class:`~rftlab.ClipModel` works where only features are needed). Data is a
:class:`~rftlab.Task` (with ``split=`` naming train, val, test, an OOD set or ``all``) or a
:class:`~rftlab.Split`. Every function that encodes images takes ``transform`` (``clip.preprocess``)
and accepts precomputed features instead (``features=`` / ``features0=``). Tables come back as
lists of dict rows, ready for ``pandas.DataFrame`` or :mod:`rftlab.plots`.
"""
from .inputs import concat_splits, image_features, resolve_split, subsample
from .calibration import (apply_temperature, calibration_report, calibration_vs_ood, confidence_histogram,
                          covariance_sigma_min, covariance_spectrum, fit_temperature, reliability,
                          with_temperature)
from .context import (ContextShift, context_distribution, context_kl_per_image, context_recognition,
                      context_recognition_table, context_shift)
from .distortion import (ALPHAS, default_layers, effective_robustness, energy_gap, feature_distortion,
                         layer_drift, layer_features, layer_source, linear_cka, robustness_line,
                         wise_classifier, wise_curve)
from .embedding import EmbeddingDrift, Projector, embedding_drift, points_table
from .shortcuts import Shortcuts, discover_shortcuts
from .spuriosity import (candidate_descriptions, description_alignment, description_shift, group_accuracy,
                         group_table, rank_descriptions, zeroshot_group_accuracy)

__all__ = [
    # shared
    "image_features", "resolve_split", "subsample", "concat_splits",
    # distortion
    "layer_features", "layer_source", "default_layers", "layer_drift", "feature_distortion", "linear_cka",
    "energy_gap", "wise_classifier", "wise_curve", "ALPHAS", "effective_robustness", "robustness_line",
    # spuriosity
    "group_accuracy", "group_table", "zeroshot_group_accuracy", "description_alignment", "description_shift",
    "candidate_descriptions", "rank_descriptions",
    # shortcut discovery
    "discover_shortcuts", "Shortcuts",
    # context
    "context_distribution", "context_kl_per_image", "context_shift", "ContextShift", "context_recognition",
    "context_recognition_table",
    # calibration
    "reliability", "confidence_histogram", "fit_temperature", "apply_temperature", "with_temperature",
    "covariance_sigma_min", "covariance_spectrum", "calibration_report", "calibration_vs_ood",
    # embedding
    "Projector", "embedding_drift", "EmbeddingDrift", "points_table",
]
