"""The clinical release gate: each metric by hand, a model worse beyond one margin fails that
check only, a better model passes, and the bootstrap is seeded and paired."""

from __future__ import annotations

import numpy as np
import pytest

from medunlearn.config import GateConfig
from medunlearn.deletion.gate import (
    GATE_METRICS,
    _accuracy,
    _balanced_accuracy,
    _class_drop,
    _risk_2,
    _sensitivity,
    judge,
)
from medunlearn.metrics.calibration import expected_calibration_error

# six binary test cases: labels, and the model's probability of the positive class
LABELS = np.array([1, 1, 1, 0, 0, 0])
POSITIVE = np.array([0.9, 0.38, 0.65, 0.18, 0.7, 0.56])


def _binary(positive: np.ndarray) -> np.ndarray:
    """n x 2 probabilities from the positive class's."""
    return np.stack([1 - positive, positive], axis=1)


def _confident(predicted: np.ndarray, n_classes: int, confidence: float) -> np.ndarray:
    """n x C probabilities: `confidence` on the predicted class, the rest shared evenly."""
    probabilities = np.full((len(predicted), n_classes), (1 - confidence) / (n_classes - 1))
    probabilities[np.arange(len(predicted)), predicted] = confidence
    return probabilities


def test_binary_metrics_by_hand():
    probabilities = _binary(POSITIVE)
    # predicted 1, 0, 1, 0, 1, 1 against 1, 1, 1, 0, 0, 0: right, missed, right, right, two
    # false alarms
    assert _accuracy(probabilities, LABELS) == pytest.approx(50.0)
    # recall of the negatives 1 / 3, of the positives 2 / 3
    assert _balanced_accuracy(probabilities, LABELS) == pytest.approx((100 / 3 + 200 / 3) / 2)
    assert _sensitivity(probabilities, LABELS) == pytest.approx(200 / 3)
    # Global Risk II: a miss costs 20, a false alarm 1, per case
    assert _risk_2(probabilities, LABELS) == pytest.approx((20 * 1 + 1 * 2) / 6)
    # confidences .9, .62, .65, .82, .7, .56 in bins of width 1/15: {.62, .65} (one right,
    # one wrong), {.56} (wrong), {.7} (wrong), {.82} (right), {.9} (right)
    ece = (2 * abs(0.5 - 0.635) + 0.56 + 0.7 + (1 - 0.82) + (1 - 0.9)) / 6
    assert expected_calibration_error(probabilities, LABELS) == pytest.approx(100 * ece)


def test_sensitivity_without_positives_is_nan():
    assert np.isnan(_sensitivity(_binary(np.array([0.2, 0.7])), np.array([0, 0])))


# eight cases of three classes: four of class 0, two of 1, two of 2
CLASSES = np.array([0, 0, 0, 0, 1, 1, 2, 2])
BEFORE = _confident(np.array([0, 0, 0, 1, 1, 1, 2, 0]), 3, 0.8)  # recalls 75, 100, 50
AFTER = _confident(np.array([0, 0, 0, 0, 1, 0, 2, 2]), 3, 0.8)  # recalls 100, 50, 100


def test_multiclass_metrics_by_hand():
    assert _accuracy(BEFORE, CLASSES) == pytest.approx(75.0)
    assert _accuracy(AFTER, CLASSES) == pytest.approx(87.5)
    assert _balanced_accuracy(BEFORE, CLASSES) == pytest.approx(75.0)
    assert _balanced_accuracy(AFTER, CLASSES) == pytest.approx(250 / 3)
    # class 1 fell from 100 to 50: the worst class's change, whatever the others gained
    assert _class_drop(AFTER, BEFORE, CLASSES) == pytest.approx(-50.0)
    assert _class_drop(BEFORE, AFTER, CLASSES) == pytest.approx(-50.0)  # class 2 the other way
    assert _class_drop(BEFORE, BEFORE, CLASSES) == 0.0
    # every prediction at .8: |accuracy - .8|
    assert expected_calibration_error(AFTER, CLASSES) == pytest.approx(100 * (0.875 - 0.8))


def _binary_study(n: int = 400, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Labels (half positive) and a reference model right on exactly 80% of each class."""
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2)
    wrong = np.zeros(n, dtype=bool)
    for c in (0, 1):
        rows = np.flatnonzero(labels == c)
        wrong[rng.choice(rows, len(rows) // 5, replace=False)] = True
    predicted = np.where(wrong, 1 - labels, labels)
    return labels, predicted


def _names(checks) -> list[str]:
    return [check.metric for check in checks]


def test_the_gate_checks_every_metric_with_its_margin():
    labels, predicted = _binary_study()
    reference = _confident(predicted, 2, 0.8)
    result = judge(reference, reference, labels, GateConfig(resamples=50), binary=True)
    assert _names(result.checks) == [m.name for m in GATE_METRICS] + ["class_drop"]
    multi = judge(BEFORE, BEFORE, CLASSES, GateConfig(resamples=50), binary=False)
    assert _names(multi.checks) == ["accuracy", "balanced_accuracy", "ece", "class_drop"]
    gate = GateConfig()
    assert [check.margin for check in result.checks] == [
        gate.accuracy, gate.balanced_accuracy, gate.sensitivity, gate.risk_2, gate.ece,
        gate.class_drop,
    ]  # fmt: skip


def test_overconfidence_fails_the_calibration_check_only():
    labels, predicted = _binary_study()
    reference = _confident(predicted, 2, 0.8)  # right 80% of the time at 80%: calibrated
    after = _confident(predicted, 2, 0.99)  # the same answers, overconfident
    result = judge(after, reference, labels, GateConfig(resamples=300), binary=True)
    assert not result.released
    assert _names(result.failed) == ["ece"]
    ece = result.checks[_names(result.checks).index("ece")]
    assert ece.reference == pytest.approx(0.0, abs=1e-9)
    assert ece.after == pytest.approx(19.0)
    assert ece.change == pytest.approx(-19.0)
    assert ece.low < -GateConfig().ece and ece.high < 0


def test_a_class_losing_recall_fails_the_class_check_only():
    # three equal classes, 80% right each; after: class 0 loses 10 points, class 1 gains 10,
    # so accuracy, balanced accuracy and calibration stay put
    rng = np.random.default_rng(1)
    labels = np.repeat([0, 1, 2], 1000)
    right = np.ones(3000, dtype=bool)
    right[np.concatenate([rng.choice(np.arange(c * 1000, (c + 1) * 1000), 200, False)
                          for c in (0, 1, 2)])] = False  # fmt: skip
    reference_predicted = np.where(right, labels, (labels + 1) % 3)
    after_right = right.copy()
    after_right[rng.choice(np.flatnonzero(right[:1000]), 100, False)] = False
    after_right[1000 + rng.choice(np.flatnonzero(~right[1000:2000]), 100, False)] = True
    after_predicted = np.where(after_right, labels, (labels + 1) % 3)
    result = judge(_confident(after_predicted, 3, 0.8), _confident(reference_predicted, 3, 0.8),
                   labels, GateConfig(resamples=300), binary=False)  # fmt: skip
    assert _names(result.failed) == ["class_drop"]
    drop = result.failed[0]
    assert drop.change == pytest.approx(-10.0)
    assert drop.low < -GateConfig().class_drop


LOOSE = dict(accuracy=100.0, balanced_accuracy=100.0, sensitivity=100.0, risk_2=100.0,
             ece=100.0, class_drop=100.0)  # fmt: skip


@pytest.mark.parametrize("metric", list(LOOSE))
def test_a_worse_model_fails_exactly_the_check_whose_margin_it_passes(metric):
    labels, predicted = _binary_study()
    # after: 40 more answers wrong (20 per class), and overconfident
    rng = np.random.default_rng(2)
    flipped = predicted.copy()
    for c in (0, 1):
        right = np.flatnonzero((labels == c) & (predicted == labels))
        flipped[rng.choice(right, 20, replace=False)] = 1 - c
    gate = GateConfig(**{**LOOSE, metric: 0.01}, resamples=300)
    result = judge(_confident(flipped, 2, 0.95), _confident(predicted, 2, 0.8), labels, gate,
                   binary=True)  # fmt: skip
    assert _names(result.failed) == [metric]
    assert not result.released
    assert all(check.change < 0 for check in result.checks)  # worse on every measure


def test_a_better_model_passes():
    labels, predicted = _binary_study()
    better = predicted.copy()
    better[np.flatnonzero(predicted != labels)[::2]] = labels[predicted != labels][::2]
    reference = _confident(predicted, 2, 0.95)  # right 80% of the time at 95%
    after = _confident(better, 2, 0.9)  # right 90% of the time at 90%
    result = judge(after, reference, labels, GateConfig(resamples=300), binary=True)
    assert result.released and result.failed == []
    assert all(check.change > 0 for check in result.checks if check.metric != "class_drop")
    assert result.to_dict()["released"] is True


def test_the_bootstrap_is_seeded():
    labels, predicted = _binary_study()
    after = _binary(np.clip(predicted + np.random.default_rng(3).normal(0, 0.3, 400), 0, 1))
    reference = _confident(predicted, 2, 0.8)
    gate = GateConfig(resamples=200)
    first = judge(after, reference, labels, gate, binary=True, seed=7)
    assert judge(after, reference, labels, gate, binary=True, seed=7) == first
    other = judge(after, reference, labels, gate, binary=True, seed=8)
    assert [(c.low, c.high) for c in other.checks] != [(c.low, c.high) for c in first.checks]
    assert [c.change for c in other.checks] == [c.change for c in first.checks]


def test_the_bootstrap_is_paired():
    # the same model on both sides: each resample's difference is 0, so is the interval
    labels, predicted = _binary_study()
    model = _binary(np.clip(predicted + np.random.default_rng(4).normal(0, 0.3, 400), 0, 1))
    result = judge(model, model.copy(), labels, GateConfig(resamples=200), binary=True)
    assert result.released
    for check in result.checks:
        assert (check.change, check.low, check.high) == (0.0, 0.0, 0.0), check.metric


def test_the_worse_end_of_the_interval_is_judged_not_the_change():
    # 1.5 points worse on 400 cases: within the 2-point margin, but not surely so
    labels, predicted = _binary_study()
    worse = predicted.copy()
    right = np.flatnonzero(predicted == labels)
    worse[right[:6]] = 1 - labels[right[:6]]
    result = judge(_confident(worse, 2, 0.8), _confident(predicted, 2, 0.8), labels,
                   GateConfig(resamples=300), binary=True)  # fmt: skip
    accuracy = result.checks[0]
    assert accuracy.change == pytest.approx(-1.5) and accuracy.margin == 2.0
    assert accuracy.low < -2.0 and not accuracy.passed
