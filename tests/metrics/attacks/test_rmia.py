"""Offline RMIA and the tuning of its a, checked by hand."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medunlearn.metrics.attacks.rmia import A_GRID, rmia_offline, tune_offline_a


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
