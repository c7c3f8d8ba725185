"""The NeurIPS 2023 unlearning challenge's forgetting score, checked by hand."""

import math

import numpy as np
import pytest

from medunlearn.metrics.attacks.forgetting_quality import (
    EPSILON_CAP,
    bucket_points,
    example_epsilon,
    final_score,
    forgetting_score,
    max_epsilon,
    rule_epsilons,
)


def test_rule_epsilons_by_hand():
    eps = rule_epsilons([0.1, 0.0, 0.0, 0.5, 1.0, 0.5], [0.2, 0.0, 0.5, 0.0, 0.5, 0.5])
    delta = 1e-5
    assert eps[0] == pytest.approx(
        max(math.log(0.9 - delta) - math.log(0.2), math.log(0.8 - delta) - math.log(0.1))
    )
    assert eps[1] == np.inf  # perfect separation
    assert np.isnan(eps[2]) and np.isnan(eps[3])  # exactly one of FPR, FNR is 0: dropped
    assert eps[4] == 0.0  # log(1 - delta - 1) undefined, the other term negative: clipped
    assert eps[5] == 0.0  # a coin flip


def test_buckets_by_hand():
    assert max_epsilon(16) == 3.0  # ceil(ln 15 = 2.71)
    assert max_epsilon(512) == 7.0  # ceil(ln 511 = 6.24), the challenge's
    points = bucket_points([0.0, 0.49, 0.5, 1.2, 2.99, 3.0, 50.0], 16)
    np.testing.assert_allclose(points, [1, 1, 0.5, 0.25, 1 / 32, 0, 0])
    assert bucket_points([0.0], 2)[0] == 0.0  # ln 1 = 0: no bucket


def test_identical_banks_give_full_points():
    bank = np.random.default_rng(0).normal(size=(16, 4))
    score = forgetting_score(bank, bank.copy())
    np.testing.assert_array_equal(score.epsilons, 0.0)
    assert score.f == 1.0 and score.n_models == 16 and score.max_epsilon == 3.0


def test_separable_banks_give_no_points():
    rng = np.random.default_rng(0)
    score = forgetting_score(rng.normal(0, 1, (16, 3)), rng.normal(20, 1, (16, 3)))
    np.testing.assert_array_equal(score.epsilons, EPSILON_CAP)
    assert score.f == 0.0


def test_an_interval_separates_what_no_single_threshold_can():
    """Unlearned phi inside a gap of the retrained ones (same median 0): one interval
    separates them perfectly (epsilon capped at 50), no single threshold does."""
    unlearned = np.linspace(-0.5, 0.5, 16)
    retrained = np.r_[np.linspace(-5, -4, 8), np.linspace(4, 5, 8)]
    assert example_epsilon(unlearned, retrained) == EPSILON_CAP


def test_a_peaky_bank_gets_the_cap_and_a_single_point_mass_zero():
    """Unlearned phi within 1e-4 of 0 (range < 1% of the retrained range 2), where two retrained
    values also lie: the 0.01 threshold grid cannot isolate them (epsilon 2.6 without the rule)."""
    retrained = np.r_[np.linspace(-1, 1, 15), 0.0]
    assert example_epsilon(1e-4 * np.linspace(-1, 1, 16), retrained) == EPSILON_CAP
    assert example_epsilon(np.zeros(16), np.zeros(16)) == 0.0


def test_mixed_banks_score_between_the_extremes():
    rng = np.random.default_rng(0)
    unlearned = rng.normal(0, 1, (64, 6))
    retrained = rng.normal(np.array([0, 0, 0, 10, 10, 10]), 1, (64, 6))
    score = forgetting_score(unlearned, retrained)
    np.testing.assert_array_equal(score.epsilons[3:], EPSILON_CAP)
    assert (score.epsilons[:3] < score.max_epsilon).all()
    assert score.f == pytest.approx(bucket_points(score.epsilons, 64).mean())
    assert 0.0 < score.f <= 0.5


def test_banks_must_match():
    with pytest.raises(ValueError, match="same shape"):
        forgetting_score(np.zeros((4, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="same shape"):
        forgetting_score(np.zeros((1, 2)), np.zeros((1, 2)))


def test_final_score_by_hand():
    assert final_score(0.5, 90.0, 100.0, 80.0, 100.0) == pytest.approx(0.36)
