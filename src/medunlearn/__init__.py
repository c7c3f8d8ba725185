"""medunlearn: machine unlearning for medical image classifiers.

The public API follows the data flow: load_dataset -> select_forget -> build_model -> train ->
unlearn -> evaluate -> run (the whole experiment).
"""

from __future__ import annotations

from medunlearn.config import ExperimentConfig, load_config
from medunlearn.data import load_dataset
from medunlearn.deletion.oneoff import serve_deletion
from medunlearn.experiment import run
from medunlearn.forget import select_forget
from medunlearn.methods import unlearn
from medunlearn.metrics.evaluate import evaluate
from medunlearn.models import build_model
from medunlearn.training import train_model as train

__all__ = [
    "ExperimentConfig",
    "build_model",
    "evaluate",
    "load_config",
    "load_dataset",
    "run",
    "select_forget",
    "serve_deletion",
    "train",
    "unlearn",
]
