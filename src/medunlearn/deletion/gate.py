"""The clinical release gate, fixed in advance: the model after a deletion against the last
exactly retrained model, metric by metric, on the bootstrap interval of their paired difference
over the test split (the same resampled test images for both models). A request is released
only where, for every metric, the interval's worse end stays within its margin."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass

import numpy as np

from medunlearn.config import GateConfig
from medunlearn.metrics.calibration import expected_calibration_error
from medunlearn.metrics.clinical import SCENARIOS

# a metric of one model's test predictions: (probabilities n x C, labels n) -> value
Score = Callable[[np.ndarray, np.ndarray], float]


def _accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return 100.0 * float((probabilities.argmax(1) == labels).mean())


def _class_recalls(probabilities: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each class's recall in percent (NaN for a class absent from the labels)."""
    n_classes = probabilities.shape[1]
    hits = np.bincount(labels, probabilities.argmax(1) == labels, minlength=n_classes)
    counts = np.bincount(labels, minlength=n_classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 100.0 * hits / counts


def _balanced_accuracy(probabilities: np.ndarray, labels: np.ndarray) -> float:
    return float(np.nanmean(_class_recalls(probabilities, labels)))


def _sensitivity(probabilities: np.ndarray, labels: np.ndarray) -> float:
    positive = labels == 1
    return 100.0 * float((probabilities[positive, 1] >= 0.5).mean()) if positive.any() else np.nan


def _risk_2(probabilities: np.ndarray, labels: np.ndarray) -> float:
    predicted = probabilities[:, 1] >= 0.5
    costs = SCENARIOS["2"]
    misses, alarms = (~predicted & (labels == 1)).sum(), (predicted & (labels == 0)).sum()
    return float(costs.fn * misses + costs.fp * alarms) / len(labels)


@dataclass(frozen=True)
class GateMetric:
    """One metric of the gate: its score, whether higher is better, its margin's config field,
    whether it needs a binary task, and whether it compares each class (the worst class)."""

    name: str
    label: str
    score: Score
    higher_is_better: bool
    binary: bool = False


GATE_METRICS = (
    GateMetric("accuracy", "test accuracy", _accuracy, True),
    GateMetric("balanced_accuracy", "balanced accuracy", _balanced_accuracy, True),
    GateMetric("sensitivity", "sensitivity (missed positives)", _sensitivity, True, binary=True),
    GateMetric("risk_2", "Global Risk II (a miss costs 20 false alarms)", _risk_2, False, True),
    GateMetric("ece", "calibration error", expected_calibration_error, False),
)


@dataclass(frozen=True)
class Check:
    """One metric's verdict: the values before (reference) and after, the change (positive:
    better), its interval, the margin and whether the interval's worse end stays within it."""

    metric: str
    label: str
    reference: float
    after: float
    change: float
    low: float
    high: float
    margin: float
    passed: bool


@dataclass(frozen=True)
class GateResult:
    """The gate's decision and its checks."""

    released: bool
    checks: list[Check]

    def to_dict(self) -> dict:
        """A plain form for the ledger and the audit."""
        return {"released": self.released, "checks": [asdict(check) for check in self.checks]}

    @property
    def failed(self) -> list[Check]:
        """The checks that failed."""
        return [check for check in self.checks if not check.passed]


def _improvement(metric: GateMetric, after: float, reference: float) -> float:
    """after - reference where higher is better, reference - after otherwise."""
    return after - reference if metric.higher_is_better else reference - after


def _class_drop(after: np.ndarray, reference: np.ndarray, labels: np.ndarray) -> float:
    """The worst per-class change of recall (points; negative: a class lost accuracy)."""
    return float(np.nanmin(_class_recalls(after, labels) - _class_recalls(reference, labels)))


def judge(
    after: np.ndarray,
    reference: np.ndarray,
    labels: np.ndarray,
    gate: GateConfig,
    binary: bool,
    seed: int = 0,
) -> GateResult:
    """The gate's verdict on test-set probabilities after the deletion and of the reference
    model (both n x C), with a seeded paired percentile bootstrap."""
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, len(labels), (gate.resamples, len(labels)))
    alpha = (1 - gate.confidence) / 2
    metrics = [m for m in GATE_METRICS if binary or not m.binary]
    checks = []
    for metric in metrics:
        point = _improvement(metric, metric.score(after, labels), metric.score(reference, labels))
        boot = np.array([_improvement(metric, metric.score(after[s], labels[s]),
                                      metric.score(reference[s], labels[s])) for s in samples])  # fmt: skip
        checks.append(_check(metric.name, metric.label, metric.score(reference, labels),
                             metric.score(after, labels), point, boot, alpha,
                             getattr(gate, metric.name)))  # fmt: skip
    drop = _class_drop(after, reference, labels)
    boot = np.array([_class_drop(after[s], reference[s], labels[s]) for s in samples])
    checks.append(_check("class_drop", "the accuracy of the class that lost most", 0.0, drop, drop, boot,
                         alpha, gate.class_drop))  # fmt: skip
    return GateResult(all(check.passed for check in checks), checks)


def _check(name: str, label: str, reference: float, after: float, change: float,
           boot: np.ndarray, alpha: float, margin: float) -> Check:  # fmt: skip
    """A check from its bootstrap: passed when the interval's lower end (the worse change)
    is at least -margin."""
    low, high = (float(np.nanquantile(boot, q)) for q in (alpha, 1 - alpha))
    return Check(name, label, reference, after, change, low, high, margin, low >= -margin)
