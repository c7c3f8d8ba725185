"""Accuracy, balanced accuracy, the validation score, and the registered accuracy metric (UA,
RA, TA, per class) read off logits by the evaluator."""

import numpy as np
import pytest
import torch

from medunlearn.data import Dataset, Split
from medunlearn.forget import ForgetSet
from medunlearn.metrics.accuracy import (
    accuracy,
    balanced_accuracy,
    class_accuracy,
    selection_score,
)
from medunlearn.metrics.attacks.svc import mia_attack, true_class_confidence
from medunlearn.metrics.evaluate import Request, evaluate_logits, predict

UTILITY = ("accuracy", "clinical", "svc")


def all_metrics(logits, dataset, forget_set, seed=0):
    """Accuracy, clinical (binary tasks) and the SVC MIA of one model's logits."""
    request = Request(seed, names=UTILITY)
    return evaluate_logits(logits, dataset, forget_set, request).columns


def predictions(train: torch.Tensor, test: torch.Tensor) -> dict[str, torch.Tensor]:
    """A model's logits on the training and test splits."""
    return {"train": train, "test": test}


def _logits(predicted: list[int], n_classes: int) -> torch.Tensor:
    """Logits whose argmax is `predicted`."""
    logits = torch.zeros(len(predicted), n_classes)
    logits[torch.arange(len(predicted)), torch.tensor(predicted)] = 3.0
    return logits


# 8 samples, 3 classes: class 0 has 4 samples (3 right), class 1 has 3 (1 right), class 2 has 1 (1)
LABELS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 2])
PREDICTED = [0, 0, 0, 1, 1, 2, 0, 2]


def test_accuracy_by_hand():
    assert accuracy(_logits(PREDICTED, 3), LABELS) == pytest.approx(100 * 5 / 8)
    assert accuracy(_logits([1, 1], 3), torch.tensor([1, 1])) == 100.0
    assert accuracy(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long)) == 0.0


def test_balanced_accuracy_by_hand():
    expected = 100 * (3 / 4 + 1 / 3 + 1 / 1) / 3
    assert balanced_accuracy(_logits(PREDICTED, 3), LABELS) == pytest.approx(expected)
    # classes absent from the labels do not count
    assert balanced_accuracy(_logits([0, 1], 5), torch.tensor([0, 0])) == pytest.approx(50.0)


def test_selection_score():
    logits = _logits(PREDICTED, 3)
    assert selection_score(logits, LABELS, "multi-class") == accuracy(logits, LABELS)
    assert selection_score(logits, LABELS, "binary") == balanced_accuracy(logits, LABELS)


def _dataset(train_labels, test_labels, n_classes=3) -> Dataset:
    def split(labels):
        n = len(labels)
        return Split(torch.zeros(n, 1, 2, 2, dtype=torch.uint8), torch.tensor(labels))

    names = [str(c) for c in range(n_classes)]
    return Dataset("hand", 2, n_classes, 1, names, split(train_labels),
                   split(test_labels), split(test_labels))  # fmt: skip


def test_compute_metrics_by_hand():
    train_labels = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
    test_labels = [0, 1, 2, 0, 1]
    dataset = _dataset(train_labels, test_labels)
    forget_set = ForgetSet(np.array([1, 4, 6, 9]), 10, "hand", dataset.fingerprint)
    # forget rows 1, 4, 6, 9: only row 4 right -> UA = 75
    # retain rows 0, 2, 3, 5, 7, 8: all but row 8 right -> RA = 5/6
    # test: 3 of 5 right -> TA = 60
    train_predicted = [0, 0, 2, 0, 1, 2, 1, 1, 0, 2]
    test_predicted = [0, 1, 2, 1, 0]
    logits = predictions(_logits(train_predicted, 3), _logits(test_predicted, 3))
    metrics = all_metrics(logits, dataset, forget_set, seed=0)
    assert metrics["ua"] == pytest.approx(75.0)
    assert metrics["ra"] == pytest.approx(100 * 5 / 6)
    assert metrics["ta"] == pytest.approx(60.0)
    confidence = true_class_confidence(logits["train"], dataset.train.labels)
    test_confidence = true_class_confidence(logits["test"], dataset.test.labels)
    expected_mia = mia_attack(
        confidence[[0, 2, 3, 5, 7, 8]], test_confidence, confidence[[1, 4, 6, 9]], seed=0
    ).efficacy
    assert metrics["mia"] == pytest.approx(expected_mia)
    assert 0.0 <= metrics["mia"] <= 100.0
    assert "tbac" not in metrics  # clinical metrics only on binary tasks


def test_compute_metrics_binary_adds_clinical_metrics():
    dataset = _dataset([0, 1, 0, 1, 0, 1], [0, 1, 1, 0], n_classes=2)
    dataset.task, dataset.positive_class = "binary", 1
    forget_set = ForgetSet(np.array([0, 1]), 6, "hand", dataset.fingerprint)
    logits = predictions(_logits([0, 0, 0, 1, 0, 1], 2), _logits([0, 1, 0, 0], 2))
    metrics = all_metrics(logits, dataset, forget_set)
    # forget rows: labels 0, 1 predicted 0, 0 -> BAC 50 -> UBAC 50
    assert metrics["ubac"] == pytest.approx(50.0)
    assert metrics["rbac"] == pytest.approx(100.0)
    # test: class 0 recall 2/2, class 1 recall 1/2
    assert metrics["tbac"] == pytest.approx(75.0)
    assert metrics["fnr"] == pytest.approx(50.0)


def test_native_binary_set_without_a_positive_class_gets_no_clinical_metrics():
    """BreastMNIST's raw label 1 is benign: without `data.binary` no class is known positive."""
    dataset = _dataset([0, 1, 0, 1, 0, 1], [0, 1, 1, 0], n_classes=2)
    dataset.task = "binary"
    forget_set = ForgetSet(np.array([0, 1]), 6, "hand", dataset.fingerprint)
    logits = predictions(_logits([0, 0, 0, 1, 0, 1], 2), _logits([0, 1, 0, 0], 2))
    assert "fnr" not in all_metrics(logits, dataset, forget_set)


def test_predict_gives_logits_of_every_sample_of_the_splits_asked(blood, original, engine):
    logits = predict(original, blood, engine, ["train", "test"])
    assert list(logits) == ["train", "test"]
    assert logits["train"].shape == (len(blood.train), blood.n_classes)
    assert logits["test"].shape == (len(blood.test), blood.n_classes)
    assert torch.equal(logits["test"], engine.logits(original, blood.test.images))


def test_per_class_ua_and_ta_by_hand():
    """The hand example above, per class: forget rows 1, 4, 6, 9 have labels 1, 1, 0, 0, only
    row 4 right; class 2 has no forget sample. Test: class 0 rows 0, 3 (1 right), class 1 rows
    1, 4 (1 right), class 2 row 2 (right)."""
    dataset = _dataset([0, 1, 2, 0, 1, 2, 0, 1, 2, 0], [0, 1, 2, 0, 1])
    forget_set = ForgetSet(np.array([1, 4, 6, 9]), 10, "hand", dataset.fingerprint)
    train_predicted = [0, 0, 2, 0, 1, 2, 1, 1, 0, 2]
    logits = predictions(_logits(train_predicted, 3), _logits([0, 1, 2, 1, 0], 3))
    metrics = evaluate_logits(logits, dataset, forget_set, Request(names=("accuracy",))).columns
    per_class = {k: v for k, v in metrics.items() if "_c" in k}
    assert per_class == {
        "ua_c0": pytest.approx(100.0), "ua_c1": pytest.approx(50.0), "ua_c2": None,
        "ta_c0": pytest.approx(50.0), "ta_c1": pytest.approx(50.0), "ta_c2": pytest.approx(100.0),
    }  # fmt: skip


def test_class_accuracy_by_hand():
    logits = _logits([0, 1, 1, 2, 2, 2], 4)
    labels = torch.tensor([0, 1, 2, 2, 2, 0])
    assert class_accuracy(logits, labels, 4) == [50.0, 100.0, pytest.approx(200 / 3), None]
