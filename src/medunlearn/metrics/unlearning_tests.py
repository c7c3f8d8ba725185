"""Tests of unlearning against retraining from banks of models: U-LiRA (Hayes et al., SaTML
2025) and the forgetting score of the NeurIPS 2023 unlearning challenge (Triantafillou et al.)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm
from sklearn.metrics import balanced_accuracy_score

from medunlearn.metrics.attacks import STD_FLOOR, gaussian_fit, roc_summary

# the challenge's scoring (google-deepmind/unlearning_evaluation, metric.py)
DELTA = 1e-5
EPSILON_CAP = 50.0
THRESHOLDS_PER_UNIT = 100
INTERVAL_BUFFER = 2.0
BUCKET_WIDTH = 0.5
# a bank whose phi range is below 1% of the other's is "peaky": epsilon is set to the cap
PEAKY_RATIO = 0.01


@dataclass(frozen=True)
class ULiraResult:
    """U-LiRA over (target model, example) pairs: balanced accuracy of "unlearned" iff log LR > 0,
    AUC of the log LR, the log LRs (targets x examples), and the number of pairs of each truth."""

    balanced_accuracy: float
    auc: float
    log_lr: np.ndarray
    n_unlearned: int
    n_retrained: int


def ulira(
    unlearned_phi: np.ndarray,
    retrained_phi: np.ndarray,
    target_phi: np.ndarray,
    target_unlearned: np.ndarray,
    global_variance: bool | None = None,
) -> ULiraResult:
    """U-LiRA: can a per-example likelihood-ratio test tell "trained with x, then unlearned"
    from "retrained without x"? 0.5 (balanced accuracy and AUC) = indistinguishable.

    Shadow banks: phi of each of n examples under S_u shadow pipelines that trained on it and
    unlearned it (`unlearned_phi`, S_u x n) and under S_r models that never trained on it
    (`retrained_phi`, S_r x n). A Gaussian is fitted per example to each bank (`gaussian_fit`,
    global variance below 32 models unless told); a held-out target model's phi (`target_phi`,
    T x n) scores log N(phi; unlearned) - log N(phi; retrained). `target_unlearned` is the
    truth, per target model (T,) or per pair (T x n); both truths must occur.
    """
    mean_u, std_u = gaussian_fit(unlearned_phi, global_variance)
    mean_r, std_r = gaussian_fit(retrained_phi, global_variance)
    target = np.atleast_2d(np.asarray(target_phi, dtype=float))
    truth = np.asarray(target_unlearned, dtype=bool).reshape(len(target), -1)
    truth = np.broadcast_to(truth, target.shape)
    log_lr = norm.logpdf(target, mean_u, std_u + STD_FLOOR) - norm.logpdf(
        target, mean_r, std_r + STD_FLOOR
    )
    return _ulira_result(log_lr, truth)


def _ulira_result(log_lr: np.ndarray, truth: np.ndarray) -> ULiraResult:
    """Balanced accuracy of "unlearned" iff log LR > 0 and AUC of the log LR, over all pairs."""
    return ULiraResult(
        balanced_accuracy=float(balanced_accuracy_score(truth.ravel(), log_lr.ravel() > 0)),
        auc=roc_summary(log_lr[truth], log_lr[~truth]).auc,
        log_lr=log_lr,
        n_unlearned=int(truth.sum()),
        n_retrained=int((~truth).sum()),
    )


def ulira_held_out(unlearned_phi: np.ndarray, retrained_phi: np.ndarray) -> ULiraResult:
    """U-LiRA on two banks alone: model i of each bank is held out in turn as the two targets
    (one unlearned, one retrained) and tested against Gaussians fitted on the others, so no
    model is scored by a fit it took part in. Each bank needs 3 models or more."""
    unlearned = np.asarray(unlearned_phi, dtype=float)
    retrained = np.asarray(retrained_phi, dtype=float)
    n = min(len(unlearned), len(retrained))
    if n < 3:
        raise ValueError("held-out U-LiRA needs at least 3 models in each bank")
    log_lrs, truths = [], []
    for i in range(n):
        targets = np.stack([unlearned[i], retrained[i]])
        held = ulira(np.delete(unlearned, i, 0), np.delete(retrained, i, 0), targets, [1, 0])
        log_lrs.append(held.log_lr)
        truths.append(np.broadcast_to(np.array([[True], [False]]), targets.shape))
    return _ulira_result(np.concatenate(log_lrs), np.concatenate(truths))


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
