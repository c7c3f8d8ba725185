"""Accuracy-type metrics on logits: accuracy, balanced accuracy and the validation score."""

from __future__ import annotations

import torch


def accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in percent (0 for an empty set)."""
    if labels.numel() == 0:
        return 0.0
    return 100.0 * (logits.argmax(1) == labels).float().mean().item()


def balanced_accuracy(logits: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean per-class recall in percent, over the classes present in `labels`."""
    predictions = logits.argmax(1)
    recalls = [(predictions[labels == c] == c).float().mean().item() for c in torch.unique(labels)]
    return 100.0 * sum(recalls) / len(recalls) if recalls else 0.0


def selection_score(logits: torch.Tensor, labels: torch.Tensor, task: str) -> float:
    """What model selection maximises: balanced accuracy for binary tasks, else accuracy."""
    if task == "binary":
        return balanced_accuracy(logits, labels)
    return accuracy(logits, labels)
