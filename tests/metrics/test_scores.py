"""Per-sample loss, true-class confidence and phi from logits, checked by hand in float64."""

import math

import numpy as np
import pytest
import torch

from medunlearn.metrics.attacks.svc import true_class_confidence
from medunlearn.metrics.scores import logit_scaled_confidence, per_sample_scores


def test_three_classes_by_hand():
    scores = per_sample_scores(torch.tensor([[10.0, 2.0, 3.0]]), torch.tensor([0]))
    total = math.exp(10) + math.exp(2) + math.exp(3)
    assert scores.phi[0] == pytest.approx(10 - math.log(math.exp(2) + math.exp(3)), rel=1e-14)
    assert scores.loss[0] == pytest.approx(math.log(total) - 10, rel=1e-12)
    assert scores.confidence[0] == pytest.approx(math.exp(10) / total, rel=1e-14)
    assert scores.phi.dtype == scores.loss.dtype == scores.confidence.dtype == np.float64


def test_phi_exact_where_float32_softmax_rounds_p_to_one():
    """p_y = 1 - 1e-12: the float32 softmax says 1 (log(1 - p) = -inf); phi is z_0 - z_1."""
    logits = torch.tensor([[27.631021, 0.0]])  # ln(1e12) = 27.631021...
    assert torch.softmax(logits, 1)[0, 0].item() == 1.0
    scores = per_sample_scores(logits, torch.tensor([0]))
    phi = float(logits[0, 0])  # the float32 logit, exactly
    assert scores.phi[0] == phi
    assert scores.loss[0] == pytest.approx(math.log1p(math.exp(-phi)), rel=1e-12, abs=0)
    assert scores.loss[0] == pytest.approx(1e-12, rel=1e-5, abs=0)


def test_phi_exact_for_a_confident_wrong_prediction():
    scores = per_sample_scores(torch.tensor([[-50.0, 50.0, 0.0]]), torch.tensor([0]))
    other = 50 + math.log1p(math.exp(-50))  # logsumexp(50, 0)
    assert scores.phi[0] == pytest.approx(-50 - other, rel=1e-15)
    assert scores.loss[0] == pytest.approx(50 + math.log1p(math.exp(-50) + math.exp(-100)) + 50)
    assert scores.confidence[0] == pytest.approx(math.exp(-100), rel=1e-12, abs=0)


def test_loss_and_confidence_agree_with_torch_and_the_mia_feature():
    torch.manual_seed(0)
    logits = 5 * torch.randn(64, 7)
    labels = torch.randint(0, 7, (64,))
    scores = per_sample_scores(logits, labels)
    loss = torch.nn.functional.cross_entropy(logits.double(), labels, reduction="none").numpy()
    np.testing.assert_allclose(scores.loss, loss, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(scores.confidence, true_class_confidence(logits, labels), rtol=1e-5)
    p = scores.confidence
    np.testing.assert_allclose(scores.phi, np.log(p) - np.log1p(-p), rtol=1e-9, atol=1e-9)


def test_a_diverged_row_gives_the_limit_of_p_to_zero():
    logits = torch.tensor([[float("nan"), 0.0], [1.0, 0.0]])
    scores = per_sample_scores(logits, torch.tensor([1, 0]))
    assert scores.phi[0] == -np.inf and scores.loss[0] == np.inf and scores.confidence[0] == 0.0
    assert logit_scaled_confidence(logits, torch.tensor([1, 0]))[1] == pytest.approx(1.0)
