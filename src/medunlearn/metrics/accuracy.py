"""Accuracy-type metrics on logits (accuracy, balanced accuracy, the validation score), and the
registered accuracy metric: UA, RA, TA, and UA and TA within each class."""

from __future__ import annotations

import warnings

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score

from medunlearn.metrics.evidence import Evidence
from medunlearn.metrics.registry import Column, Output, register_metric

# the metrics given per class too: a method that forgets one class's patients worse shows there
CLASS_METRICS = ("ua", "ta")


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


def class_columns(n_classes: int) -> tuple[str, ...]:
    """UA, RA, TA, then UA and TA of each class."""
    per_class = tuple(class_key(metric, c) for metric in CLASS_METRICS for c in range(n_classes))
    return ("ua", "ra", "ta", *per_class)


@register_metric(
    "accuracy",
    "accuracy",
    columns=class_columns,
    tables={
        "core": (
            Column("ua", "UA", paired=True),
            Column("ra", "RA", paired=True),
            Column("ta", "TA", paired=True),
        )
    },
)
def unlearning_accuracy(evidence: Evidence) -> Output:
    """UA = 100 - accuracy on the forget set, RA and TA on retain and test (percent); UA and TA
    within each class (None where a class has no forget or test sample)."""
    forget, test = evidence.logits_of("forget"), evidence.logits_of("test")
    forget_labels, test_labels = evidence.labels_of("forget"), evidence.labels_of("test")
    n = evidence.dataset.n_classes
    columns = {
        "ua": 100.0 - accuracy(forget, forget_labels),
        "ra": accuracy(evidence.logits_of("retain"), evidence.labels_of("retain")),
        "ta": accuracy(test, test_labels),
    }
    for c, value in enumerate(class_accuracy(forget, forget_labels, n)):
        columns[class_key("ua", c)] = None if value is None else 100.0 - value
    for c, value in enumerate(class_accuracy(test, test_labels, n)):
        columns[class_key("ta", c)] = value
    return Output(columns)
