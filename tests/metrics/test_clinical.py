"""Clinical metrics against hand computations, degenerate cases and the threshold rule."""

import math
import warnings

import numpy as np
import pytest

from medunlearn.metrics.clinical import SCENARIOS, Costs, clinical_metrics


def binary_confusion(prob, labels, threshold=0.5):
    """(tp, fp, tn, fn) as clinical_metrics counts them."""
    metrics = clinical_metrics(prob, labels, threshold)
    return metrics["tp"], metrics["fp"], metrics["tn"], metrics["fn"]


# Ten samples, 4 positives and 6 negatives, threshold 0.5:
#   positives 0.9 0.8 0.6 | 0.3      -> TP = 3, FN = 1
#   negatives 0.7 0.55 | 0.4 0.2 0.1 0.0 -> FP = 2, TN = 4
PROB = np.array([0.9, 0.8, 0.6, 0.3, 0.7, 0.55, 0.4, 0.2, 0.1, 0.0])
LABEL = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])


def _no_nan(metrics: dict) -> None:
    """Every value is None or a finite number."""
    for key, value in metrics.items():
        assert value is None or math.isfinite(value), (key, value)


@pytest.fixture(autouse=True)
def _warnings_are_errors():
    """sklearn must not warn: undefined cases are guarded before it is called."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_confusion_counts_by_hand():
    assert binary_confusion(PROB, LABEL) == (3, 2, 4, 1)


def test_rates_by_hand():
    m = clinical_metrics(PROB, LABEL)
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (3, 2, 4, 1)
    assert (m["n_positive"], m["n_negative"]) == (4, 6)
    assert m["sensitivity"] == pytest.approx(75.0)
    assert m["fnr"] == pytest.approx(25.0)
    assert m["specificity"] == pytest.approx(100 * 4 / 6)
    assert m["bac"] == pytest.approx((75.0 + 100 * 4 / 6) / 2)
    assert m["ppv"] == pytest.approx(60.0)
    assert m["npv"] == pytest.approx(80.0)


def test_ranking_metrics_by_hand():
    m = clinical_metrics(PROB, LABEL)
    # positive-over-negative pairs: 6 + 6 + 5 + 3 of 24
    assert m["auc"] == pytest.approx(100 * 20 / 24)
    # positives at ranks 1, 2, 4, 7: mean precision (1 + 1 + 3/4 + 4/7) / 4
    assert m["auprc"] == pytest.approx(100 * (1 + 1 + 3 / 4 + 4 / 7) / 4)


def test_risks_of_both_scenarios_by_hand():
    m = clinical_metrics(PROB, LABEL)
    assert m["risk_1"] == pytest.approx((1 * 2 + 1 * 1) / 10)
    assert m["risk_benign_1"] == pytest.approx(1 * 2 / 6)
    assert m["risk_malignant_1"] == pytest.approx(1 * 1 / 4)
    assert m["risk_2"] == pytest.approx((1 * 2 + 20 * 1) / 10)
    assert m["risk_benign_2"] == pytest.approx(1 * 2 / 6)
    assert m["risk_malignant_2"] == pytest.approx(20 * 1 / 4)


def test_custom_scenarios_name_the_keys():
    m = clinical_metrics(PROB, LABEL, scenarios={"x": Costs(fn=5, fp=2)})
    assert m["risk_x"] == pytest.approx((2 * 2 + 5 * 1) / 10)
    assert "risk_1" not in m
    assert set(SCENARIOS) == {"1", "2"}


def test_bool_labels_equal_integer_labels():
    assert clinical_metrics(PROB, LABEL.astype(bool)) == clinical_metrics(PROB, LABEL)


def test_perfect_separation_gives_auc_100():
    m = clinical_metrics(np.array([0.1, 0.2, 0.8, 0.9]), np.array([0, 0, 1, 1]))
    assert m["auc"] == pytest.approx(100.0)
    assert m["auprc"] == pytest.approx(100.0)
    assert m["bac"] == pytest.approx(100.0)
    assert m["risk_2"] == 0.0


def test_probability_at_threshold_counts_as_positive():
    prob = np.array([0.5, np.nextafter(0.5, 0.0)])
    assert binary_confusion(prob, np.array([1, 1])) == (1, 0, 0, 1)
    assert binary_confusion(np.array([0.3]), np.array([0]), threshold=0.3) == (0, 1, 0, 0)


def test_threshold_moves_the_decision():
    assert binary_confusion(PROB, LABEL, threshold=0.65) == (2, 1, 5, 2)
    assert binary_confusion(PROB, LABEL, threshold=0.0) == (4, 6, 0, 0)
    assert binary_confusion(PROB, LABEL, threshold=1.01) == (0, 0, 6, 4)


def test_no_positives():
    m = clinical_metrics(np.array([0.1, 0.7, 0.2]), np.array([0, 0, 0]))
    _no_nan(m)
    for key in ("sensitivity", "fnr", "auc", "auprc", "risk_malignant_1", "risk_malignant_2"):
        assert m[key] is None, key
    assert m["specificity"] == pytest.approx(200 / 3)
    assert m["bac"] == pytest.approx(m["specificity"])
    assert m["ppv"] == 0.0
    assert m["npv"] == 100.0
    assert m["risk_1"] == pytest.approx(1 / 3)
    assert m["risk_benign_2"] == pytest.approx(1 / 3)


def test_no_negatives():
    m = clinical_metrics(np.array([0.9, 0.4, 0.6, 0.8]), np.array([1, 1, 1, 1]))
    _no_nan(m)
    for key in ("specificity", "auc", "risk_benign_1", "risk_benign_2"):
        assert m[key] is None, key
    assert m["sensitivity"] == 75.0
    assert m["bac"] == m["sensitivity"]
    assert m["auprc"] == pytest.approx(100.0)
    assert m["ppv"] == 100.0
    assert m["npv"] == 0.0
    assert m["risk_2"] == pytest.approx(20 / 4)
    assert m["risk_malignant_2"] == pytest.approx(20 / 4)


def test_no_predicted_positives():
    m = clinical_metrics(np.array([0.1, 0.2, 0.3, 0.4]), np.array([0, 1, 0, 1]))
    _no_nan(m)
    assert m["ppv"] is None
    assert m["npv"] == 50.0
    assert m["sensitivity"] == 0.0
    assert m["fnr"] == 100.0
    assert m["bac"] == 50.0
    assert m["auc"] == pytest.approx(75.0)


def test_all_predicted_positive():
    m = clinical_metrics(np.array([0.6, 0.7, 0.8, 0.9]), np.array([0, 1, 0, 1]))
    _no_nan(m)
    assert m["npv"] is None
    assert m["ppv"] == 50.0
    assert m["specificity"] == 0.0
    assert m["sensitivity"] == 100.0
    assert m["risk_benign_1"] == 1.0


def test_empty_input():
    m = clinical_metrics(np.array([]), np.array([]))
    _no_nan(m)
    counts = ("tp", "fp", "tn", "fn", "n_positive", "n_negative")
    assert all(m[key] == 0 for key in counts)
    assert all(value is None for key, value in m.items() if key not in counts)
    assert binary_confusion([], []) == (0, 0, 0, 0)


def test_column_labels_are_flattened():
    assert binary_confusion(PROB, LABEL.reshape(-1, 1)) == (3, 2, 4, 1)


@pytest.mark.parametrize(
    ("prob", "label", "match"),
    [
        ([0.2, 0.3], [0], "one label per sample"),
        ([1.5, 0.3], [0, 1], r"\[0, 1\]"),
        ([np.nan, 0.3], [0, 1], "NaN"),
        ([0.2, 0.3], [0, 2], "0/1"),
    ],
)
def test_invalid_inputs_are_rejected(prob, label, match):
    with pytest.raises(ValueError, match=match):
        clinical_metrics(np.array(prob), np.array(label))


def test_nan_threshold_is_rejected():
    with pytest.raises(ValueError, match="threshold"):
        binary_confusion(PROB, LABEL, threshold=float("nan"))
