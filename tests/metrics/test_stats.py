"""Student-t intervals, paired differences over seeds and the AUC bootstrap, checked by hand."""

import math

import numpy as np
import pytest

from medunlearn.metrics.stats import auc_interval, paired_difference, summarise

# Student-t quantiles from a printed table: t_{0.975, 2}, t_{0.975, 3}, t_{0.95, 3}
T975_2, T975_3, T95_3 = 4.302653, 3.182446, 2.353363


def test_t_interval_by_hand():
    summary = summarise([1.0, 2.0, 3.0, 4.0])
    std = math.sqrt(5 / 3)  # squared deviations 2.25 + 0.25 + 0.25 + 2.25 = 5, over n - 1 = 3
    assert (summary.mean, summary.n) == (2.5, 4)
    assert summary.std == pytest.approx(std)
    assert summary.ci_low == pytest.approx(2.5 - T975_3 * std / 2, rel=1e-6)
    assert summary.ci_high == pytest.approx(2.5 + T975_3 * std / 2, rel=1e-6)
    ninety = summarise([1.0, 2.0, 3.0, 4.0], confidence=0.90)
    assert ninety.ci_high == pytest.approx(2.5 + T95_3 * std / 2, rel=1e-6)


def test_one_value_has_no_spread_nor_interval():
    summary = summarise([3.0])
    assert (summary.mean, summary.std, summary.n, summary.ci_low, summary.ci_high) == (
        3.0,
        None,
        1,
        None,
        None,
    )
    with pytest.raises(ValueError):
        summarise([])


def test_paired_difference_by_hand():
    b = np.array([10.0, 20.0, 30.0])
    shifted = paired_difference(b + np.array([1.0, 1.1, 0.9]), b)  # differences: mean 1, std 0.1
    half = T975_2 * 0.1 / math.sqrt(3)
    assert shifted.difference.mean == pytest.approx(1.0)
    assert shifted.difference.ci_low == pytest.approx(1.0 - half, rel=1e-6)
    assert not shifted.within_noise
    assert paired_difference(b + np.array([0.1, -0.1, 0.05]), b).within_noise  # interval covers 0
    assert paired_difference([5.0], [1.0]).within_noise  # one seed: no interval
    with pytest.raises(ValueError):
        paired_difference([1.0, 2.0], [1.0])


def test_paired_difference_sees_what_unpaired_spread_hides():
    """A small, steady gain on seed-to-seed noise: the seeds' spread covers it, the pairs do not."""
    base = np.array([60.0, 75.0, 90.0, 70.0, 80.0])
    gain = paired_difference(base + 0.5 + 0.01 * np.arange(5), base)
    a, b = summarise(base + 0.5), summarise(base)
    assert a.ci_low < b.mean < a.ci_high and not gain.within_noise


def test_auc_point_estimate_by_hand_with_ties():
    assert auc_interval([0.9, 0.8, 0.4], [0.7, 0.3, 0.2]).auc == pytest.approx(8 / 9)
    assert auc_interval([1.0, 1.0], [1.0, 1.0]).auc == pytest.approx(0.5)  # a tie counts 1/2
    assert auc_interval([np.inf, 2.0], [1.0, -np.inf]).auc == 1.0
    with pytest.raises(ValueError, match="NaN"):
        auc_interval([np.nan, 1.0], [1.0, 0.0])
    with pytest.raises(ValueError, match="two"):
        auc_interval([2.0], [1.0, 0.0])


def test_auc_interval_covers_chance_only_when_the_groups_match():
    rng = np.random.default_rng(0)
    same = auc_interval(rng.normal(size=300), rng.normal(size=300))
    # about +- 1.96 * sqrt((n + m + 1) / (12 n m)) = +- 0.046 for identical groups of 300
    assert same.covers_chance and 0.07 < same.ci_high - same.ci_low < 0.115
    assert same.ci_low <= same.auc <= same.ci_high
    apart = auc_interval(rng.normal(1, 1, 300), rng.normal(size=300))
    assert not apart.covers_chance and apart.ci_low > 0.7


def test_auc_interval_is_seeded():
    rng = np.random.default_rng(0)
    members, nonmembers = rng.normal(0.2, 1, 100), rng.normal(size=80)
    first, again = auc_interval(members, nonmembers), auc_interval(members, nonmembers)
    assert (first.ci_low, first.ci_high) == (again.ci_low, again.ci_high)
    other = auc_interval(members, nonmembers, seed=1)
    assert (other.ci_low, other.ci_high) != (first.ci_low, first.ci_high)


def test_auc_interval_stays_among_auc_values():
    """Near separation the bootstrap is skewed: percentiles stay in [0, 1] (a basic interval,
    2 * AUC - percentile, would pass 1 here)."""
    rng = np.random.default_rng(0)
    near = auc_interval(rng.normal(3, 1, 30), rng.normal(0, 1, 30))
    assert near.auc == pytest.approx(0.984, abs=1e-3)
    assert near.ci_low < near.auc and near.ci_high <= 1.0
