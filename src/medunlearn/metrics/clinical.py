"""Clinical metrics of a binary classifier: BAC, sensitivity, FNR, PPV, NPV, AUC and cost risks.

Positive means malignant / abnormal. A sample is predicted positive when
``prob_positive >= threshold`` (a probability exactly at the threshold counts as positive).
Rates are returned in percent, risks as plain numbers, counts as ints.

Degenerate cases never raise and never return NaN: a quantity whose denominator is zero, or
that needs a class that is absent, is ``None``:

- no positives: ``sensitivity``, ``fnr``, ``auc``, ``auprc`` and ``risk_malignant_*`` are None;
- no negatives: ``specificity``, ``auc`` and ``risk_benign_*`` are None (``auprc`` is 100,
  since every ranking of positives alone has precision 1);
- no predicted positives: ``ppv`` is None; no predicted negatives: ``npv`` is None;
- empty input: every rate and risk is None, the counts are 0.

Balanced accuracy is the mean of sensitivity and specificity when both classes are present; if
only one class is present it falls back to the rate of that class (sensitivity or specificity).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score

from medunlearn.metrics.accuracy import balanced_recall
from medunlearn.metrics.evidence import Evidence
from medunlearn.metrics.registry import Column, Needs, Output, register_metric


@dataclass(frozen=True)
class Costs:
    """Misclassification costs of one scenario: a missed positive (fn) and a false alarm (fp)."""

    fn: float
    fp: float


SCENARIOS: dict[str, Costs] = {"1": Costs(fn=1, fp=1), "2": Costs(fn=20, fp=1)}
"""Scenario I (equal costs) and scenario II (a missed malignancy costs 20 false alarms)."""


def _as_inputs(prob_positive: np.ndarray, is_positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flatten and validate the inputs: probabilities in [0, 1], labels in {0, 1}, equal length."""
    prob = np.asarray(prob_positive, dtype=np.float64).reshape(-1)
    labels = np.asarray(is_positive).reshape(-1)
    if prob.shape != labels.shape:
        raise ValueError(
            f"prob_positive has {prob.size} values but is_positive has {labels.size}; "
            "pass one P(positive) and one label per sample"
        )
    if not np.all((prob >= 0.0) & (prob <= 1.0)):  # also rejects NaN
        raise ValueError("prob_positive must hold probabilities in [0, 1] (not logits, no NaN)")
    if not np.all((labels == 0) | (labels == 1)):
        raise ValueError("is_positive must be boolean or 0/1 (1 = malignant / abnormal)")
    return prob, labels.astype(np.int64)


def _ratio(numerator: float, denominator: float, scale: float = 1.0) -> float | None:
    """numerator / denominator * scale, or None where the denominator is zero (undefined)."""
    return None if denominator == 0 else scale * float(numerator) / float(denominator)


def _confusion(prob: np.ndarray, labels: np.ndarray, threshold: float) -> tuple[int, int, int, int]:
    """(tp, fp, tn, fn) of validated inputs; sklearn refuses empty input, so that is all zeros."""
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number, got {threshold}")
    if labels.size == 0:
        return 0, 0, 0, 0
    predicted = (prob >= threshold).astype(np.int64)
    tn, fp, fn, tp = confusion_matrix(labels, predicted, labels=[0, 1]).ravel()
    return int(tp), int(fp), int(tn), int(fn)


def _ranking_metrics(prob: np.ndarray, labels: np.ndarray) -> tuple[float | None, float | None]:
    """ROC AUC and average precision in percent, None where sklearn's value is undefined."""
    n_positive = int(labels.sum())
    n_negative = labels.size - n_positive
    auc = float(100.0 * roc_auc_score(labels, prob)) if n_positive and n_negative else None
    auprc = float(100.0 * average_precision_score(labels, prob)) if n_positive else None
    return auc, auprc


def clinical_metrics(
    prob_positive: np.ndarray,
    is_positive: np.ndarray,
    threshold: float = 0.5,
    scenarios: Mapping[str, Costs] = SCENARIOS,
) -> dict[str, float | None]:
    """All clinical metrics of one evaluation, rates in percent, see the module docstring."""
    prob, labels = _as_inputs(prob_positive, is_positive)
    tp, fp, tn, fn = _confusion(prob, labels, threshold)
    n_positive, n_negative = tp + fn, tn + fp
    n_total = n_positive + n_negative
    sensitivity = _ratio(tp, n_positive, 100.0)
    specificity = _ratio(tn, n_negative, 100.0)
    auc, auprc = _ranking_metrics(prob, labels)
    metrics: dict[str, float | None] = {
        "bac": balanced_recall(labels, (prob >= threshold).astype(np.int64)),
        "sensitivity": sensitivity,
        "fnr": _ratio(fn, n_positive, 100.0),
        "specificity": specificity,
        "ppv": _ratio(tp, tp + fp, 100.0),
        "npv": _ratio(tn, tn + fn, 100.0),
        "auc": auc,
        "auprc": auprc,
    }
    for key, costs in scenarios.items():
        metrics[f"risk_{key}"] = _ratio(costs.fp * fp + costs.fn * fn, n_total)
        metrics[f"risk_benign_{key}"] = _ratio(costs.fp * fp, n_negative)
        metrics[f"risk_malignant_{key}"] = _ratio(costs.fn * fn, n_positive)
    metrics.update(tp=tp, fp=fp, tn=tn, fn=fn, n_positive=n_positive, n_negative=n_negative)
    return metrics


def _binary_block(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """Clinical metrics of one set from P(positive)."""
    probability = torch.softmax(logits.float(), 1)[:, 1].numpy()
    return clinical_metrics(probability, labels.numpy() == 1)


def clinical_columns(_n_classes: int) -> tuple[str, ...]:
    """UBAC, RBAC, TBAC, then the test set's clinical metrics (see `clinical_metrics`)."""
    test = clinical_metrics(np.zeros(0), np.zeros(0))
    return ("ubac", "rbac", "tbac", *(key for key in test if key != "bac"))


@register_metric(
    "clinical",
    "clinical safety",
    Needs(binary=True),
    columns=clinical_columns,
    tables={
        "clinical": (
            Column("ubac", "UBAC"),
            Column("rbac", "RBAC"),
            Column("tbac", "TBAC"),
            Column("mia", "MIA"),
            Column("fnr", "FNR"),
            Column("risk_1", "Risk I"),
            Column("risk_2", "Risk II"),
        )
    },
)
def clinical(evidence: Evidence) -> Output:
    """UBAC = 100 - BAC(forget), RBAC, TBAC, and the test set's sensitivity, FNR, specificity,
    PPV, NPV, AUC, AUPRC and Global Risks (binary tasks, positive = label 1)."""
    test = _binary_block(evidence.logits_of("test"), evidence.labels_of("test"))
    ubac = _binary_block(evidence.logits_of("forget"), evidence.labels_of("forget"))["bac"]
    rbac = _binary_block(evidence.logits_of("retain"), evidence.labels_of("retain"))["bac"]
    return Output(
        {
            "ubac": None if ubac is None else 100.0 - ubac,
            "rbac": rbac,
            "tbac": test.pop("bac"),
            **test,
        }
    )
