"""U-LiRA and the NeurIPS 2023 unlearning challenge's forgetting score, checked by hand."""

import math

import numpy as np
import pytest

from medunlearn.metrics.unlearning_tests import (
    EPSILON_CAP,
    bucket_points,
    example_epsilon,
    final_score,
    forgetting_score,
    max_epsilon,
    rule_epsilons,
    ulira,
    ulira_held_out,
)


def test_ulira_by_hand():
    """Banks N(2, 1) (unlearned) and N(-2, 1) (retrained): log LR = ((x + 2)^2 - (x - 2)^2) / 2 = 4x."""
    unlearned, retrained = np.array([[1.0], [3.0]]), np.array([[-1.0], [-3.0]])
    target = np.array([[1.5], [-0.5], [0.25], [-2.5]])
    result = ulira(unlearned, retrained, target, [True, True, False, False])
    np.testing.assert_allclose(result.log_lr, [[6.0], [-2.0], [1.0], [-10.0]])
    assert result.balanced_accuracy == pytest.approx(0.5)  # one right of each truth
    assert result.auc == pytest.approx(0.75)  # 3 of the 4 pairs ordered right
    assert (result.n_unlearned, result.n_retrained) == (2, 2)


def test_ulira_truth_per_model_is_the_truth_of_each_of_its_examples():
    rng = np.random.default_rng(0)
    banks = rng.normal(1, 1, (4, 5)), rng.normal(0, 1, (4, 5))
    target = rng.normal(0.5, 1, (6, 5))
    per_model = ulira(*banks, target, [True, False] * 3)
    per_pair = ulira(*banks, target, np.repeat([[True], [False]] * 3, 5, axis=1))
    np.testing.assert_allclose(per_model.log_lr, per_pair.log_lr)
    assert (
        per_model.auc == per_pair.auc and per_model.balanced_accuracy == per_pair.balanced_accuracy
    )


def test_ulira_tells_separable_pipelines_apart_and_not_identical_ones():
    rng = np.random.default_rng(0)
    n, shadows, targets = 50, 16, 40
    level = rng.normal(0, 3, n)
    truth = np.arange(targets) % 2 == 0
    shift = np.where(truth[:, None], 4.0, 0.0)
    apart = ulira(
        rng.normal(level + 4, 1, (shadows, n)),
        rng.normal(level, 1, (shadows, n)),
        rng.normal(level + shift, 1),
        truth,
    )
    assert apart.balanced_accuracy > 0.95 and apart.auc > 0.99
    same = ulira(
        rng.normal(level, 1, (shadows, n)),
        rng.normal(level, 1, (shadows, n)),
        rng.normal(level, 1, (targets, n)),
        truth,
    )
    assert same.balanced_accuracy == pytest.approx(0.5, abs=0.05)
    assert same.auc == pytest.approx(0.5, abs=0.05)


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


def test_held_out_ulira_tells_separate_banks_apart_and_not_identical_ones():
    """Each model is scored only by Gaussians fitted without it: banks drawn from one
    distribution give about 0.5, banks two standard deviations apart nearly 1."""
    rng = np.random.default_rng(0)
    same = ulira_held_out(rng.normal(0, 1, (6, 400)), rng.normal(0, 1, (6, 400)))
    assert abs(same.balanced_accuracy - 0.5) < 0.05 and abs(same.auc - 0.5) < 0.05
    apart = ulira_held_out(rng.normal(2, 1, (6, 400)), rng.normal(0, 1, (6, 400)))
    assert apart.balanced_accuracy > 0.8 and apart.auc > 0.9
    assert apart.n_unlearned == apart.n_retrained == 6 * 400


def test_held_out_ulira_never_scores_a_model_with_a_fit_it_took_part_in():
    """One unlearned model far off the others: scored against the rest it looks retrained
    (log LR < 0 against a bank it is not in), which a fit including it would hide."""
    unlearned = np.array([[0.0], [0.1], [-0.1], [5.0]])
    retrained = np.array([[5.0], [5.1], [4.9], [5.05]])
    result = ulira_held_out(unlearned, retrained)
    assert result.log_lr[6, 0] < 0  # the fourth unlearned model, held out
    with pytest.raises(ValueError, match="at least 3"):
        ulira_held_out(unlearned[:2], retrained[:2])
