"""Forgetting, utility, privacy and clinical-safety metrics, from one inference pass per split."""

from __future__ import annotations

from medunlearn.metrics.evaluation import (
    Predictions,
    evaluate_model,
    evaluate_row,
    metrics_before_mia,
    mia_inputs,
    predict,
)

__all__ = [
    "Predictions",
    "evaluate_model",
    "evaluate_row",
    "metrics_before_mia",
    "mia_inputs",
    "predict",
]
