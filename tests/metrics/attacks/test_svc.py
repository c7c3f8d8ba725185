"""MIA-efficacy (SalUn's SVC attack): an SVC on true-class confidence, trained on retain
(members) vs test (non-members), asked about the forget samples."""

import numpy as np
import pytest
import torch
from sklearn.svm import SVC

from medunlearn.data import Dataset, Split
from medunlearn.forget import ForgetSet
from medunlearn.metrics.attacks.svc import fit_attack, mia_attack, svc_inputs, true_class_confidence
from medunlearn.metrics.evaluate import Request, evaluate_logits


def all_metrics(logits, dataset, forget_set, seed=0):
    """Accuracy and the SVC MIA of one model's logits."""
    request = Request(seed, names=("accuracy", "svc"))
    return evaluate_logits(logits, dataset, forget_set, request).columns


def mia_efficacy(retain, test, forget, seed=0) -> float:
    """The attack's MIA-efficacy (percent)."""
    return mia_attack(retain, test, forget, seed).efficacy


def _case(n_retain=200, n_test=200, seed=0):
    rng = np.random.default_rng(seed)
    members = rng.uniform(0.95, 1.0, n_retain)  # confident on training samples
    non_members = rng.uniform(0.25, 0.35, n_test)  # unsure on unseen samples
    return members, non_members


def test_member_like_forget_samples_score_low():
    members, non_members = _case()
    forget = np.full(50, 0.98)
    assert mia_efficacy(members, non_members, forget) == pytest.approx(0.0)


def test_non_member_like_forget_samples_score_high():
    members, non_members = _case()
    forget = np.full(50, 0.3)
    assert mia_efficacy(members, non_members, forget) == pytest.approx(100.0)


def test_mixed_forget_set_gives_the_share_of_non_members():
    members, non_members = _case()
    forget = np.concatenate([np.full(30, 0.99), np.full(10, 0.3)])
    assert mia_efficacy(members, non_members, forget) == pytest.approx(25.0)


@pytest.mark.parametrize(("n_retain", "n_test"), [(10, 300), (300, 10), (1, 1)])
def test_works_with_unequal_sizes(n_retain, n_test):
    members, non_members = _case(n_retain, n_test)
    forget = np.array([0.97, 0.3])
    assert mia_efficacy(members, non_members, forget) == pytest.approx(50.0)
    assert fit_attack(members, non_members).n_features_in_ == 1


def test_attack_is_balanced_and_seeded():
    members, non_members = _case(40, 500)
    a = fit_attack(members, non_members, seed=1)
    b = fit_attack(members, non_members, seed=1)
    assert a.support_vectors_.shape[0] <= 80
    assert np.array_equal(a.support_vectors_, b.support_vectors_)
    assert (a.C, a.gamma, a.kernel) == (3, "auto", "rbf")


def test_empty_inputs():
    members, non_members = _case()
    assert mia_efficacy(members, non_members, np.array([])) == 0.0
    with pytest.raises(ValueError, match="member"):
        fit_attack(np.array([]), non_members)


def test_true_class_confidence():
    logits = torch.tensor([[0.0, 0.0], [0.0, np.log(3.0)]])
    confidence = true_class_confidence(logits, torch.tensor([1, 1]))
    assert confidence == pytest.approx([0.5, 0.75])
    assert confidence.dtype == np.float32


def _confident(labels: torch.Tensor, confidence: float, n_classes: int = 4) -> torch.Tensor:
    """Logits giving each sample's true class the softmax probability `confidence`."""
    rest = (1 - confidence) / (n_classes - 1)
    probabilities = torch.full((len(labels), n_classes), rest)
    probabilities[torch.arange(len(labels)), labels] = confidence
    return probabilities.log()


def test_compute_metrics_uses_retain_as_members_and_test_as_non_members():
    """Retain confident, test unsure; forget: 12 confident, 4 unsure -> MIA = 25%."""
    train_labels, test_labels = torch.arange(60) % 4, torch.arange(30) % 4
    images = torch.zeros(60, 1, 2, 2, dtype=torch.uint8)
    train = Split(images, train_labels)
    test = Split(images[:30], test_labels)
    dataset = Dataset("hand", 2, 4, 1, list("abcd"), train, test, test)
    forget_ids = np.arange(0, 48, 3)  # 16 samples
    train_logits = _confident(train_labels, 0.99)
    unsure = forget_ids[12:]
    train_logits[unsure] = _confident(train_labels[unsure], 0.3)
    logits = {"train": train_logits, "test": _confident(test_labels, 0.3)}
    metrics = all_metrics(logits, dataset, ForgetSet(forget_ids, 60, "hand", "x"))
    assert metrics["mia"] == pytest.approx(25.0)
    assert metrics["ua"] == 0.0 and metrics["ra"] == 100.0


def _logits(labels: torch.Tensor, true_p: float, wrong_p: float, n_classes: int = 4):
    """Logits whose softmax gives `true_p` to the true class, `wrong_p` to the next class and
    shares the rest equally: with wrong_p > true_p the true class is not the argmax."""
    rest = (1.0 - true_p - wrong_p) / (n_classes - 2)
    probabilities = torch.full((len(labels), n_classes), rest)
    rows = torch.arange(len(labels))
    probabilities[rows, labels] = true_p
    probabilities[rows, (labels + 1) % n_classes] = wrong_p
    return probabilities.log()


def _hand_dataset(n_train: int, n_test: int, n_classes: int = 4) -> Dataset:
    images = torch.zeros(max(n_train, n_test), 1, 2, 2, dtype=torch.uint8)
    train = Split(images[:n_train], torch.arange(n_train) % n_classes)
    test = Split(images[:n_test], torch.arange(n_test) % n_classes)
    return Dataset("hand", 2, n_classes, 1, list("abcd"), train, test, test)


def test_the_feature_is_the_true_class_confidence_not_the_top_one():
    """Test and forget samples are predicted confidently, but as a wrong class: the attack sees
    their low true-class confidence (non-members); the top confidence would call the forget
    samples members like the retain ones."""
    dataset = _hand_dataset(60, 40)
    forget_ids = np.arange(40, 60)
    train_logits = _logits(dataset.train.labels, 0.97, 0.01)
    train_logits[forget_ids] = _logits(dataset.train.labels[forget_ids], 0.02, 0.96)
    logits = {"train": train_logits, "test": _logits(dataset.test.labels, 0.02, 0.6)}
    confidence = true_class_confidence(train_logits, dataset.train.labels)
    assert confidence[forget_ids] == pytest.approx(np.full(20, 0.02))
    metrics = all_metrics(logits, dataset, ForgetSet(forget_ids, 60, "hand", "x"))
    assert metrics["mia"] == pytest.approx(100.0)


def test_members_are_the_retain_samples_only():
    """Forgotten samples (confidence 0.5) lie nearer the test samples (0.2) than the retain
    ones (0.99): non-members. Were the forget samples counted as members, the attack would
    learn 0.5 as a member's confidence and give 0."""
    dataset = _hand_dataset(200, 200)
    forget_ids = np.arange(50, 200)
    train_logits = _logits(dataset.train.labels, 0.99, 0.0)
    train_logits[forget_ids] = _logits(dataset.train.labels[forget_ids], 0.5, 0.0)
    logits = {"train": train_logits, "test": _logits(dataset.test.labels, 0.2, 0.0)}
    forget_set = ForgetSet(forget_ids, 200, "hand", "x")
    evidence = evaluate_logits(logits, dataset, forget_set, Request(names=())).evidence
    inputs = svc_inputs(evidence)
    assert len(inputs["retain"]) == 50 and len(inputs["forget"]) == 150
    assert len(inputs["test"]) == 200
    assert all_metrics(logits, dataset, forget_set)["mia"] == pytest.approx(100.0)


def test_the_attack_is_trained_on_equal_numbers_of_members_and_non_members(monkeypatch):
    """Retain: 100 at 0.7 and 300 at 0.99; test: 60 at 0.7 and 40 at 0.1. Balanced (100 of
    each) the attack sees about 25 members against 60 non-members at 0.7, so forget samples at
    0.7 are non-members; trained on all 400 members it would call them members."""
    retain = np.concatenate([np.full(100, 0.7), np.full(300, 0.99)])
    test = np.concatenate([np.full(60, 0.7), np.full(40, 0.1)])
    fitted = []
    real_fit = SVC.fit

    def record(svc, features, targets):
        fitted.append(targets)
        return real_fit(svc, features, targets)

    monkeypatch.setattr(SVC, "fit", record)
    for seed in range(3):
        assert mia_efficacy(retain, test, np.full(20, 0.7), seed) == pytest.approx(100.0)
    assert all(((t == 1).sum(), (t == 0).sum()) == (100, 100) for t in fitted)
