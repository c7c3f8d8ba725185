"""Offline LiRA (Carlini et al., S&P 2022) against a bank of reference Retrains: per example, a
Gaussian of phi under the models that never trained on it, and how far the model under test
lies above it."""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from medunlearn.metrics.evidence import Evidence
from medunlearn.metrics.registry import Column, Needs, Output, register_metric

# Carlini et al.: with fewer than 64 shadow models a global variance beats per-example ones; each
# example is OUT in about half of them, so per-example variances need at least 32 OUT models
GLOBAL_VARIANCE_BELOW = 32
# added to standard deviations, as in Carlini et al.'s code, so that a constant bank divides
STD_FLOOR = 1e-30


def gaussian_fit(
    bank: np.ndarray, global_variance: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-example mean and standard deviation of a bank of phi (models x examples).

    The standard deviation is np.std's (ddof 0, as in Carlini et al.'s code). A global variance
    gives every example the pooled within-example variance (the mean of the per-example
    variances), not the variance of the whole bank's values pooled together, which would add
    the spread between examples; None chooses it when the bank has fewer than
    GLOBAL_VARIANCE_BELOW models.
    """
    bank = np.asarray(bank, dtype=float)
    if bank.ndim != 2 or bank.shape[0] < 2:
        raise ValueError("a bank of phi needs shape (models, examples) with at least 2 models")
    if global_variance is None:
        global_variance = bank.shape[0] < GLOBAL_VARIANCE_BELOW
    variance = bank.var(axis=0)
    if global_variance:
        variance = np.full_like(variance, variance.mean())
    return bank.mean(axis=0), np.sqrt(variance)


def lira_offline(
    target_phi: np.ndarray, out_phi: np.ndarray, global_variance: bool | None = None
) -> np.ndarray:
    """Offline LiRA score of each example: how far the target model's phi lies above the
    Gaussian N(mu_out, sigma_out^2) fitted to its phi under K OUT models (`out_phi`, K x n).

    Carlini et al.'s offline one-sided test, Lambda = 1 - P(Z > phi): we return
    -log P(Z > phi) (norm.logsf), increasing in the same standardized value, so the ROC is the
    same, but it does not round to 1 far above the OUT Gaussian, where low FPRs are decided.
    mu_out is the mean (the paper's; the authors' plot.py takes the median, equal for K = 2).
    K >= 2 OUT models are needed; below 32 a global variance is used (see `gaussian_fit`).
    """
    mean, std = gaussian_fit(out_phi, global_variance)
    standardized = (np.asarray(target_phi, dtype=float) - mean) / (std + STD_FLOOR)
    return -norm.logsf(standardized)


@register_metric(
    "lira",
    "offline LiRA",
    Needs(splits=frozenset({"forget", "test"}), bank=True),
    roc=True,
    curve=True,
    checked=True,
    strength=3,
    tables={
        "privacy": (
            Column("lira_auc", "LiRA AUC", digits=3, paired=True),
            Column("lira_tpr1", "LiRA TPR@1%", digits=3),
            Column("lira_tpr01", "LiRA TPR@0.1%", digits=3),
        )
    },
)
def lira(evidence: Evidence) -> Output:
    """Offline LiRA of the model against the bank, forget vs test samples."""
    bank = evidence.bank()
    forget, test = evidence.scores_of("forget"), evidence.scores_of("test")
    scores = lira_offline(np.concatenate([forget.phi, test.phi]), bank.phi)
    return Output({}, scores[: len(forget.phi)], scores[len(forget.phi) :])
