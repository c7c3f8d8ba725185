"""U-LiRA, per example and held out, checked by hand."""

import numpy as np
import pytest

from medunlearn.metrics.attacks.ulira import ulira, ulira_held_out


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
