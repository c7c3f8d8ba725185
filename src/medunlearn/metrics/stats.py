"""Uncertainty of results over seeds and samples: Student-t intervals of means, paired
differences over matched seeds, and a bootstrap interval of an attack's AUC."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import bootstrap, rankdata
from scipy.stats import t as student_t

CONFIDENCE = 0.95
# resamples of the AUC bootstrap: enough for stable 2.5% / 97.5% percentiles
AUC_RESAMPLES = 2000
# most scores ranked at once by the bootstrap (bounds its memory to some 100 MB)
BOOTSTRAP_BATCH_SCORES = 2_000_000


@dataclass(frozen=True)
class Summary:
    """Mean, sample standard deviation (ddof 1), count, and the mean's t interval of n values;
    with one value the standard deviation and the interval are undefined (None)."""

    mean: float
    std: float | None
    n: int
    ci_low: float | None
    ci_high: float | None


def summarise(values: np.ndarray, confidence: float = CONFIDENCE) -> Summary:
    """Mean +- t_{(1 + confidence) / 2, n - 1} * std / sqrt(n): the Student-t interval of a mean."""
    x = np.asarray(values, dtype=float).ravel()
    if len(x) == 0:
        raise ValueError("nothing to summarise")
    mean = float(x.mean())
    if len(x) == 1:
        return Summary(mean, None, 1, None, None)
    std = float(x.std(ddof=1))
    half = float(student_t.ppf((1 + confidence) / 2, len(x) - 1)) * std / np.sqrt(len(x))
    return Summary(mean, std, len(x), mean - half, mean + half)


@dataclass(frozen=True)
class PairedDifference:
    """Summary of a - b over matched seeds, and whether its interval covers 0 (within noise);
    a single pair has no interval, so it cannot be told from noise either."""

    difference: Summary
    within_noise: bool


def paired_difference(
    a: np.ndarray, b: np.ndarray, confidence: float = CONFIDENCE
) -> PairedDifference:
    """The t interval of the mean of a - b, a[i] and b[i] from the same seed (a paired test)."""
    a, b = np.asarray(a, dtype=float).ravel(), np.asarray(b, dtype=float).ravel()
    if a.shape != b.shape:
        raise ValueError("a paired difference needs one b per a")
    summary = summarise(a - b, confidence)
    within = summary.ci_low is None or summary.ci_low <= 0.0 <= summary.ci_high
    return PairedDifference(summary, within)


@dataclass(frozen=True)
class AucInterval:
    """An attack's AUC, its bootstrap interval, and whether the interval covers chance (0.5)."""

    auc: float
    ci_low: float
    ci_high: float
    covers_chance: bool


def _mann_whitney_auc(members: np.ndarray, nonmembers: np.ndarray, axis: int = -1) -> np.ndarray:
    """AUC = P(member score > non-member score) + P(tie) / 2, from mid-ranks along `axis`."""
    n_members, n_nonmembers = members.shape[axis], nonmembers.shape[axis]
    ranks = rankdata(np.concatenate([members, nonmembers], axis=axis), axis=axis)
    member_ranks = np.take(ranks, np.arange(n_members), axis=axis).sum(axis=axis)
    return (member_ranks - n_members * (n_members + 1) / 2) / (n_members * n_nonmembers)


def auc_interval(
    member_scores: np.ndarray,
    nonmember_scores: np.ndarray,
    confidence: float = CONFIDENCE,
    n_resamples: int = AUC_RESAMPLES,
    seed: int = 0,
) -> AucInterval:
    """AUC of member vs non-member scores with a seeded, stratified percentile bootstrap
    interval (scipy.stats.bootstrap; members and non-members resampled apart, each group keeping
    its size; `n_resamples` resamples). Distribution-free, unlike Hanley-McNeil's standard error.
    Ties count one half, +-inf is allowed, NaN is not; each group needs 2 scores or more.
    """
    members = np.asarray(member_scores, dtype=float).ravel()
    nonmembers = np.asarray(nonmember_scores, dtype=float).ravel()
    if len(members) < 2 or len(nonmembers) < 2:
        raise ValueError("an AUC interval needs at least two member and two non-member scores")
    if np.isnan(members).any() or np.isnan(nonmembers).any():
        raise ValueError("attack scores contain NaN")
    result = bootstrap(
        (members, nonmembers),
        _mann_whitney_auc,
        n_resamples=n_resamples,
        batch=max(1, BOOTSTRAP_BATCH_SCORES // (len(members) + len(nonmembers))),
        vectorized=True,
        paired=False,
        confidence_level=confidence,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    auc = float(_mann_whitney_auc(members, nonmembers))
    return AucInterval(auc, low, high, covers_chance=low <= 0.5 <= high)
