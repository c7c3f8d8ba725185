"""Accuracy-type metrics on logits: accuracy, balanced accuracy and the validation score."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in percent (0 for an empty set)."""
    if labels.numel() == 0:
        return 0.0
    return 100.0 * (logits.argmax(1) == labels).float().mean().item()


def class_accuracy(
    logits: torch.Tensor, labels: torch.Tensor, n_classes: int
) -> list[float | None]:
    """Top-1 accuracy in percent among the samples of each true class (None: no sample of it)."""
    correct = (logits.argmax(1) == labels).double()
    hits = torch.bincount(labels, weights=correct, minlength=n_classes)
    counts = torch.bincount(labels, minlength=n_classes)
    return [100.0 * float(h) / int(n) if n else None for h, n in zip(hits, counts, strict=True)]


def class_key(metric: str, c: int) -> str:
    """The row key of a metric restricted to class c: `ua_c3`, `ta_c0`."""
    return f"{metric}_c{c}"


def balanced_recall(labels: np.ndarray, predicted: np.ndarray) -> float | None:
    """scikit-learn's balanced accuracy in percent: the mean recall over the classes present in
    `labels` (with one class present, its recall); None for no samples."""
    if len(labels) == 0:
        return None
    with warnings.catch_warnings():  # predictions of a class absent from `labels` are expected
        warnings.simplefilter("ignore", UserWarning)
        return 100.0 * float(balanced_accuracy_score(labels, predicted))


def balanced_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Balanced accuracy in percent of logits' top-1 predictions (0 for an empty set)."""
    return balanced_recall(labels.numpy(), logits.argmax(1).numpy()) or 0.0


def selection_score(logits: torch.Tensor, labels: torch.Tensor, task: str) -> float:
    """What model selection maximises: balanced accuracy for binary tasks, else accuracy."""
    if task == "binary":
        return balanced_accuracy(logits, labels)
    return accuracy(logits, labels)
