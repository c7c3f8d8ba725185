"""ROC summaries of attack scores, their thinned curves and histograms, checked by hand."""

import numpy as np
import pytest

from medunlearn.metrics.attacks.roc import histogram, roc_summary, tpr_at_fpr


def test_roc_of_six_scores_by_hand():
    result = roc_summary([0.9, 0.8, 0.4], [0.7, 0.3, 0.2])
    assert result.auc == pytest.approx(8 / 9)  # 3 + 3 + 2 of the 9 pairs ordered right
    np.testing.assert_allclose(result.fpr, [0, 0, 0, 1 / 3, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(result.tpr, [0, 1 / 3, 2 / 3, 2 / 3, 1, 1, 1])
    assert result.tpr_at_1pct_fpr == pytest.approx(2 / 3)
    assert result.tpr_at_01pct_fpr == pytest.approx(2 / 3)
    assert result.balanced_accuracy == pytest.approx(5 / 6)  # threshold 0.8 or 0.4
    assert (result.n_members, result.n_nonmembers) == (3, 3)


def test_tpr_at_low_fpr_takes_the_largest_tpr_with_fpr_at_most_the_target():
    nonmembers = np.arange(1000.0)
    # above 0, 4 and 10 of the 1000 non-members, and a typical one
    members = [999.5, 995.5, 989.5, 500.0]
    result = roc_summary(members, nonmembers)
    assert result.tpr_at_01pct_fpr == pytest.approx(1 / 4)
    assert result.tpr_at_1pct_fpr == pytest.approx(3 / 4)  # FPR exactly 1% counts
    assert tpr_at_fpr(np.array([0, 0.5, 1]), np.array([0.2, 0.6, 1]), 0.4) == pytest.approx(0.2)


def test_collinear_roc_points_are_kept():
    """Tied scores give a diagonal ROC: its inner points must stay for TPR at an FPR."""
    result = roc_summary([3, 2, 1], [3, 2, 1])
    assert result.auc == pytest.approx(0.5)
    assert tpr_at_fpr(result.fpr, result.tpr, 0.5) == pytest.approx(1 / 3)


def test_group_sizes_do_not_weigh():
    rng = np.random.default_rng(0)
    members, nonmembers = rng.normal(1, 1, 50), rng.normal(0, 1, 40)
    once = roc_summary(members, nonmembers)
    five_times = roc_summary(members, np.repeat(nonmembers, 5))
    assert five_times.auc == pytest.approx(once.auc)
    assert five_times.tpr_at_1pct_fpr == pytest.approx(once.tpr_at_1pct_fpr)
    assert five_times.balanced_accuracy == pytest.approx(once.balanced_accuracy)


def test_infinite_scores_are_ranked_and_nan_or_empty_refused():
    assert roc_summary([np.inf, 1.0], [0.0, -np.inf]).auc == 1.0
    assert roc_summary([2.0, -np.inf], [1.0, 0.0]).auc == pytest.approx(0.5)
    with pytest.raises(ValueError, match="NaN"):
        roc_summary([np.nan, 1.0], [0.0])
    with pytest.raises(ValueError, match="at least one"):
        roc_summary([], [0.0])


def test_separable_gives_auc_one_and_identical_distributions_one_half():
    rng = np.random.default_rng(0)
    separable = roc_summary(rng.uniform(2, 3, 500), rng.uniform(0, 1, 500))
    assert separable.auc == 1.0 and separable.tpr_at_01pct_fpr == 1.0
    same = roc_summary(rng.normal(size=2000), rng.normal(size=2000))
    assert same.auc == pytest.approx(0.5, abs=0.05)
    assert same.tpr_at_1pct_fpr < 0.05


def test_histogram_clips_infinite_scores_into_the_outer_bins():
    counts = histogram(np.array([0.0, 1.0, np.inf]), np.array([-np.inf, 0.5]))
    assert counts["edges"][0] == 0.0 and counts["edges"][-1] == 1.0
    assert sum(counts["forget"]) == 3 and counts["forget"][-1] == 2
    assert sum(counts["test"]) == 2 and counts["test"][0] == 1
    assert len(counts["edges"]) == len(counts["forget"]) + 1
