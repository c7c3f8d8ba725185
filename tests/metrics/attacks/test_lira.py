"""Offline LiRA against a bank of OUT models, checked by hand."""

import math

import numpy as np
import pytest

from medunlearn.metrics.attacks.lira import GLOBAL_VARIANCE_BELOW, gaussian_fit, lira_offline
from medunlearn.metrics.attacks.roc import roc_summary


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
    assert lira_auc > roc_summary(target[member], target[~member]).auc + 0.1
