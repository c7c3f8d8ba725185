"""The forgetting score of the NeurIPS 2023 unlearning challenge (Triantafillou et al.): can
any threshold rule on phi tell N unlearning runs from N retrained models, example by example?"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from medunlearn.metrics.evidence import Evidence
from medunlearn.metrics.registry import Column, Needs, Output, register_metric

# the challenge's scoring (google-deepmind/unlearning_evaluation, metric.py)
DELTA = 1e-5
EPSILON_CAP = 50.0
THRESHOLDS_PER_UNIT = 100
INTERVAL_BUFFER = 2.0
BUCKET_WIDTH = 0.5
# a bank whose phi range is below 1% of the other's is "peaky": epsilon is set to the cap
PEAKY_RATIO = 0.01


@dataclass(frozen=True)
class ForgettingScore:
    """The challenge's forgetting quality F, each forget example's epsilon, the number N of
    models in each bank, and the epsilon ceil(ln(N - 1)) from which an example earns 0 points."""

    f: float
    epsilons: np.ndarray
    n_models: int
    max_epsilon: float


def rule_epsilons(fpr: np.ndarray, fnr: np.ndarray, delta: float = DELTA) -> np.ndarray:
    """Epsilon of each decision rule from its FPR and FNR, as the challenge's scoring code:
    max(log(1 - delta - FPR) - log FNR, log(1 - delta - FNR) - log FPR) clipped below at 0 (a
    log of a negative number drops its term); inf where FPR = FNR = 0 (perfect separation);
    NaN (rule dropped) where exactly one of them is 0, or where both terms are undefined."""
    fpr, fnr = np.asarray(fpr, dtype=float), np.asarray(fnr, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        eps = np.fmax(np.log(1 - delta - fpr) - np.log(fnr), np.log(1 - delta - fnr) - np.log(fpr))
    eps = np.clip(eps, 0.0, None)  # FPR = FNR = 0: both terms are log(1 - delta) - log 0 = inf
    eps[(fpr == 0) ^ (fnr == 0)] = np.nan
    return eps


def _share_within(sorted_bank: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """Fraction of the bank's values in each [left, right] (0 where left > right)."""
    inside = np.searchsorted(sorted_bank, right, side="right")
    inside -= np.searchsorted(sorted_bank, left, side="left")
    return np.maximum(inside, 0) / len(sorted_bank)


def _single_threshold_rates(
    positive: np.ndarray, negative: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """FPR and FNR of "positive iff phi >= t", t on a grid of 100 per unit of phi spanning both."""
    low = min(positive[0], negative[0])
    high = max(positive[-1], negative[-1])
    thresholds = np.linspace(low, high, int(np.ceil((high - low) * THRESHOLDS_PER_UNIT)))
    fpr = 1.0 - np.searchsorted(negative, thresholds, side="left") / len(negative)
    return fpr, np.searchsorted(positive, thresholds, side="left") / len(positive)


def _interval_rates(positive: np.ndarray, negative: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """FPR and FNR of "positive iff l <= phi <= r", the peakier bank (smaller range) positive:
    r on a grid of 100 per unit over [max - 2, max + 2] of that bank, and for each r, 400
    values of l over r - width +- 2, width = that bank's range (the challenge's double threshold)."""
    if np.ptp(positive) >= np.ptp(negative):
        positive, negative = negative, positive
    width = np.ptp(positive)
    low = positive[0] + width - INTERVAL_BUFFER
    high = positive[-1] + INTERVAL_BUFFER
    right = np.linspace(low, high, int(np.ceil((high - low) * THRESHOLDS_PER_UNIT)))
    offsets = np.linspace(
        -INTERVAL_BUFFER, INTERVAL_BUFFER, int(np.ceil(2 * INTERVAL_BUFFER * THRESHOLDS_PER_UNIT))
    )
    left = (right[:, None] - width + offsets[None, :]).ravel()
    right = np.repeat(right, len(offsets))
    fpr = _share_within(negative, left, right)
    return fpr, 1.0 - _share_within(positive, left, right)


def example_epsilon(unlearned: np.ndarray, retrained: np.ndarray, delta: float = DELTA) -> float:
    """One forget example's epsilon from its phi under N unlearned and N retrained models.

    As the challenge's scoring: the bank with the larger median is "positive" (the unlearned one
    on a tie); a peaky bank (range < 1% of the other's) gets the cap; otherwise the max over the
    single-threshold and interval rules of `rule_epsilons`, capped at 50. Where no rule is left
    (both banks one and the same point; the official code stops there) epsilon is 0.
    """
    unlearned, retrained = np.sort(unlearned), np.sort(retrained)
    if np.median(retrained) > np.median(unlearned):
        positive, negative = retrained, unlearned
    else:
        positive, negative = unlearned, retrained
    ranges = sorted([np.ptp(positive), np.ptp(negative)])
    if ranges[0] < PEAKY_RATIO * ranges[1]:
        return EPSILON_CAP
    single = _single_threshold_rates(positive, negative)
    interval = _interval_rates(positive, negative)
    eps = rule_epsilons(np.r_[single[0], interval[0]], np.r_[single[1], interval[1]], delta)
    kept = eps[~np.isnan(eps)]
    return float(min(kept.max(), EPSILON_CAP)) if len(kept) else 0.0


def max_epsilon(n_models: int) -> float:
    """ceil(ln(N - 1)): the challenge's largest epsilon N models per bank can resolve."""
    return float(np.ceil(np.log(n_models - 1)))


def bucket_points(epsilons: np.ndarray, n_models: int) -> np.ndarray:
    """Points of each example: buckets of width 0.5 from 0, bucket k worth 2^-k, up to
    ceil(ln(N - 1)); an epsilon at or beyond it earns 0."""
    epsilons = np.asarray(epsilons, dtype=float)
    points = 2.0 ** -np.floor(epsilons / BUCKET_WIDTH)
    return np.where(epsilons < max_epsilon(n_models), points, 0.0)


def forgetting_score(
    unlearned_phi: np.ndarray, retrained_phi: np.ndarray, delta: float = DELTA
) -> ForgettingScore:
    """The challenge's forgetting quality F from phi of each forget example under N unlearned
    and N retrained models (both N x n_forget, N >= 2): the mean points of the examples'
    epsilons (1 = unlearned indistinguishable from retrained everywhere, 0 = everywhere told apart)."""
    unlearned = np.asarray(unlearned_phi, dtype=float)
    retrained = np.asarray(retrained_phi, dtype=float)
    if unlearned.shape != retrained.shape or unlearned.ndim != 2 or len(unlearned) < 2:
        raise ValueError("both banks need the same shape (models, forget examples), >= 2 models")
    n_models = len(unlearned)
    epsilons = np.array(
        [
            example_epsilon(unlearned[:, i], retrained[:, i], delta)
            for i in range(unlearned.shape[1])
        ]
    )
    return ForgettingScore(
        f=float(bucket_points(epsilons, n_models).mean()),
        epsilons=epsilons,
        n_models=n_models,
        max_epsilon=max_epsilon(n_models),
    )


def final_score(
    f: float, ra_unlearned: float, ra_retrained: float, ta_unlearned: float, ta_retrained: float
) -> float:
    """The challenge's final score F * (RA_u / RA_r) * (TA_u / TA_r), accuracies averaged over
    each bank's models (any unit, the ratios cancel it)."""
    return f * (ra_unlearned / ra_retrained) * (ta_unlearned / ta_retrained)


@register_metric(
    "forget_quality",
    "the NeurIPS 2023 forgetting score",
    Needs(splits=frozenset(), repeats=True),
    columns=("forget_quality", "forget_score", "forget_score_n"),
    tables={
        "privacy": (
            Column("forget_quality", "F", digits=3, gap=False),
            Column("forget_score", "F x utility", digits=3, gap=False),
        )
    },
    separation=lambda columns: 1.0 - columns["forget_quality"] / 2.0,
)
def forget_quality(evidence: Evidence) -> Output:
    """F between the method's repeated runs and as many bank Retrains, and the challenge's
    final score F x (RA_u / RA_r) x (TA_u / TA_r); None where fewer than 2 runs did not diverge."""
    repeats = evidence.repeated()
    unlearned, retrained = repeats.finite_banks()
    if len(unlearned) < 2:
        return Output(dict.fromkeys(("forget_quality", "forget_score", "forget_score_n")))
    score = forgetting_score(unlearned, retrained)
    final = final_score(score.f, repeats.ra_unlearned, repeats.ra_retrained,
                        repeats.ta_unlearned, repeats.ta_retrained)  # fmt: skip
    return Output(
        {"forget_quality": score.f, "forget_score": final, "forget_score_n": score.n_models}
    )
