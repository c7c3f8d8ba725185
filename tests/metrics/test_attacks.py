"""ROC summaries, population attacks, offline LiRA and offline RMIA, checked by hand."""

import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medunlearn.metrics.attacks import (
    A_GRID,
    GLOBAL_VARIANCE_BELOW,
    gaussian_fit,
    lira_offline,
    loss_attack,
    phi_attack,
    rmia_offline,
    roc_summary,
    tpr_at_fpr,
    tune_offline_a,
)


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


def test_population_attacks_score_low_loss_and_high_phi_as_members():
    assert loss_attack([0.01, 0.02], [1.0, 2.0]).auc == 1.0
    assert phi_attack([5.0, 6.0], [-1.0, 0.0]).auc == 1.0


def test_lira_on_a_two_model_bank_by_hand():
    out_phi = np.array([[1.0, 2.0], [3.0, 6.0]])  # example 0: mean 2, var 1; example 1: 4, 4
    target = np.array([4.0, 4.0])

    def minus_log_sf(z):
        return -math.log(0.5 * math.erfc(z / math.sqrt(2)))

    per_example = lira_offline(target, out_phi, global_variance=False)
    np.testing.assert_allclose(per_example, [minus_log_sf(2.0), math.log(2)], rtol=1e-12)
    pooled = lira_offline(target, out_phi, global_variance=True)  # variance (1 + 4) / 2
    np.testing.assert_allclose(pooled, [minus_log_sf(2 / math.sqrt(2.5)), math.log(2)], rtol=1e-12)
    np.testing.assert_allclose(lira_offline(target, out_phi), pooled)  # 2 models: global


def test_lira_uses_per_example_variances_from_32_out_models():
    rng = np.random.default_rng(0)
    scale = rng.uniform(0.5, 3, 10)
    for k, pooled in [(GLOBAL_VARIANCE_BELOW - 1, True), (GLOBAL_VARIANCE_BELOW, False)]:
        bank = rng.normal(0, scale, (k, 10))
        _, std = gaussian_fit(bank)
        np.testing.assert_allclose(std, gaussian_fit(bank, pooled)[1])
        assert (np.ptp(std) == 0) == pooled
    with pytest.raises(ValueError, match="at least 2"):
        gaussian_fit(np.zeros((1, 3)))


def test_lira_resolves_scores_far_above_the_out_gaussian():
    """1 - P(Z > phi) rounds to 1 for 40 and 41 standard deviations; -log P(Z > phi) does not."""
    scores = lira_offline([40.0, 41.0], np.array([[-1.0, -1.0], [1.0, 1.0]]))
    assert np.isfinite(scores).all() and scores[1] > scores[0] > 800


def test_lira_calibrates_each_example_where_a_population_threshold_cannot():
    rng = np.random.default_rng(0)
    n, k = 400, 8
    hardness = rng.normal(0, 4, n)  # each example's own phi level
    out_phi = rng.normal(hardness, 1, (k, n))
    member = np.arange(n) < n // 2
    target = np.where(member, hardness + 3, rng.normal(hardness, 1))
    lira = lira_offline(target, out_phi)
    lira_auc = roc_summary(lira[member], lira[~member]).auc
    assert lira_auc > 0.95
    assert lira_auc > phi_attack(target[member], target[~member]).auc + 0.1


def test_rmia_with_three_population_samples_by_hand():
    target_x, ref_x = [0.9, 0.3], [[0.6, 0.3]]
    target_z, ref_z = [0.5, 0.8, 0.2], [[0.5, 0.6, 0.4]]
    # a = 0.5: Pr(x) = 0.5 * (1.5 * ref + 0.5): ratio_x = 0.9 / 0.7, 0.3 / 0.475;
    # ratio_z = 0.5 / 0.625 = 0.8, 0.8 / 0.7 = 1.143, 0.2 / 0.55 = 0.364
    # LR(x0, z) = 1.61, 1.125, 3.54; LR(x1, z) = 0.79, 0.55, 1.74
    np.testing.assert_allclose(rmia_offline(target_x, ref_x, target_z, ref_z, 0.5), [1, 1 / 3])
    np.testing.assert_allclose(
        rmia_offline(target_x, ref_x, target_z, ref_z, 0.5, gamma=1.2), [2 / 3, 1 / 3]
    )


def test_rmia_counts_a_tie_and_matches_the_pairwise_definition():
    # z0 is x0 again: LR(x0, z0) = 1 exactly, counted (>= gamma)
    assert rmia_offline([0.9], [0.6], [0.9, 0.95], [0.6, 0.6], 0.3)[0] == pytest.approx(0.5)
    rng = np.random.default_rng(0)
    tx, rx = rng.uniform(0.01, 1, 50), rng.uniform(0.01, 1, (3, 50))
    tz, rz = rng.uniform(0.01, 1, 70), rng.uniform(0.01, 1, (3, 70))
    a, gamma = 0.4, 1.3
    ratio_x = tx / (0.5 * ((1 + a) * rx.mean(0) + 1 - a))
    ratio_z = tz / (0.5 * ((1 + a) * rz.mean(0) + 1 - a))
    pairwise = (ratio_x[:, None] / ratio_z[None, :] >= gamma).mean(axis=1)
    np.testing.assert_allclose(rmia_offline(tx, rx, tz, rz, a, gamma), pairwise)


def test_tuning_a_keeps_the_best_auc_by_hand():
    """Member x0 (0.9 under the target, 0.8 under the reference), non-member x1 (0.5, 0.3), one
    z (0.68, 0.6): ratio_z / ratio_x0 / ratio_x1 = 0.85 / 1.0 / 0.77 at a = 0 (AUC 1),
    0.97 / 1.06 / 1.05 at a = 0.5 (both count: 0.5), 1.13 / 1.125 / 1.67 at a = 1 (AUC 0)."""
    a, aucs = tune_offline_a(
        [0.9, 0.5], [True, False], [0.8, 0.3], [0.68], [0.6], np.array([0, 0.5, 1])
    )
    assert a == 0.0
    np.testing.assert_allclose(aucs, [1.0, 0.5, 0.0])
    np.testing.assert_allclose(A_GRID, np.arange(11) / 10)


def test_tuning_a_reports_the_auc_of_each_grid_value():
    rng = np.random.default_rng(1)
    tx, rx = rng.uniform(0.05, 1, 40), rng.uniform(0.05, 1, (2, 40))
    tz, rz = rng.uniform(0.05, 1, 30), rng.uniform(0.05, 1, (2, 30))
    member = np.arange(40) % 2 == 0
    a, aucs = tune_offline_a(tx, member, rx, tz, rz)
    expected = [roc_auc_score(member, rmia_offline(tx, rx, tz, rz, g)) for g in A_GRID]
    np.testing.assert_allclose(aucs, expected)
    assert a == A_GRID[int(np.argmax(expected))]
