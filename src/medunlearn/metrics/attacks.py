"""Membership-inference attacks scored as ROC curves: population thresholds on the loss or phi,
offline LiRA (Carlini et al., S&P 2022) and offline RMIA (Zarifzadeh et al., ICML 2024).

Every attack gives each sample a score, higher meaning "more likely a member"; `roc_summary`
turns the scores of known members and non-members into AUC and TPR at low FPR.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata
from sklearn.metrics import roc_auc_score, roc_curve

# Carlini et al.: with fewer than 64 shadow models a global variance beats per-example ones; each
# example is OUT in about half of them, so per-example variances need at least 32 OUT models
GLOBAL_VARIANCE_BELOW = 32
# added to standard deviations, as in Carlini et al.'s code, so that a constant bank divides
STD_FLOOR = 1e-30
# the offsets `a` of offline RMIA tried when tuning it (Zarifzadeh et al.'s code: 0, 0.1, ..., 1)
A_GRID = np.linspace(0.0, 1.0, 11)


@dataclass(frozen=True)
class AttackResult:
    """An attack's ROC: AUC, TPR at 1% and 0.1% FPR, best balanced accuracy, the group sizes,
    and the curve's points (for log-log plots)."""

    auc: float
    tpr_at_1pct_fpr: float
    tpr_at_01pct_fpr: float
    balanced_accuracy: float
    n_members: int
    n_nonmembers: int
    fpr: np.ndarray
    tpr: np.ndarray


def tpr_at_fpr(fpr: np.ndarray, tpr: np.ndarray, target: float) -> float:
    """The largest TPR whose FPR is at most `target` (Carlini et al.'s TPR at low FPR).

    Below 1 / n_nonmembers only FPR = 0 qualifies: with fewer than 1000 non-members the TPR at
    0.1% FPR is the TPR at 0 FPR.
    """
    return float(tpr[fpr <= target].max())


def roc_summary(member_scores: np.ndarray, nonmember_scores: np.ndarray) -> AttackResult:
    """ROC of an attack from the scores of known members and non-members (higher = member).

    Balanced without subsampling: TPR and FPR are rates within each group, so the curve, its
    AUC and TPR at FPR are those of two groups of equal weight, and no sample is discarded.
    The scores are replaced by their ranks (same order, same curve) so that +-inf (a diverged
    model's phi) is allowed; NaN is not. The balanced accuracy, (TPR + TNR) / 2 at the best
    threshold, picks that threshold on the same samples: an optimistic, Carlini-style summary.
    """
    members = np.asarray(member_scores, dtype=float).ravel()
    nonmembers = np.asarray(nonmember_scores, dtype=float).ravel()
    if len(members) == 0 or len(nonmembers) == 0:
        raise ValueError("an attack needs at least one member and one non-member score")
    scores = np.concatenate([members, nonmembers])
    if np.isnan(scores).any():
        raise ValueError("attack scores contain NaN")
    ranks = rankdata(scores)
    truth = np.arange(len(scores)) < len(members)
    # every threshold kept: dropping collinear points could lose the last point below an FPR
    fpr, tpr, _ = roc_curve(truth, ranks, drop_intermediate=False)
    return AttackResult(
        auc=float(roc_auc_score(truth, ranks)),
        tpr_at_1pct_fpr=tpr_at_fpr(fpr, tpr, 0.01),
        tpr_at_01pct_fpr=tpr_at_fpr(fpr, tpr, 0.001),
        balanced_accuracy=float(np.max((tpr + 1.0 - fpr) / 2.0)),
        n_members=len(members),
        n_nonmembers=len(nonmembers),
        fpr=fpr,
        tpr=tpr,
    )


def loss_attack(member_loss: np.ndarray, nonmember_loss: np.ndarray) -> AttackResult:
    """Population attack on the loss: one threshold for all samples, score = -loss.

    Any monotone classifier of the loss alone (a logistic regression on it included) has this ROC.
    """
    return roc_summary(-np.asarray(member_loss, float), -np.asarray(nonmember_loss, float))


def phi_attack(member_phi: np.ndarray, nonmember_phi: np.ndarray) -> AttackResult:
    """Population attack on the logit-scaled confidence: one threshold for all, score = phi."""
    return roc_summary(member_phi, nonmember_phi)


def gaussian_fit(
    bank: np.ndarray, global_variance: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Per-example mean and standard deviation of a bank of phi (models x examples).

    The standard deviation is np.std's (ddof 0, as in Carlini et al.'s code). With a global
    variance every example gets the pooled within-example variance (the mean of the per-example
    ones); None chooses it when the bank has fewer than GLOBAL_VARIANCE_BELOW models.
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


def _offline_marginal(ref_prob: np.ndarray, a: float) -> np.ndarray:
    """Offline RMIA's Pr(x) = 0.5 * ((1 + a) * mean over OUT models of Pr(x | theta') + (1 - a))."""
    out_mean = np.atleast_2d(np.asarray(ref_prob, dtype=float)).mean(axis=0)
    return 0.5 * ((1.0 + a) * out_mean + (1.0 - a))


def rmia_offline(
    target_prob_x: np.ndarray,
    ref_prob_x: np.ndarray,
    target_prob_z: np.ndarray,
    ref_prob_z: np.ndarray,
    a: float,
    gamma: float = 1.0,
) -> np.ndarray:
    """Offline RMIA score of each example x: the fraction of population samples z with
    LR(x, z) = (Pr(x|theta) / Pr(x)) / (Pr(z|theta) / Pr(z)) >= gamma.

    Pr(.|theta) is the target model's true-class probability (`target_prob_*`), Pr(.) the
    offline marginal from OUT reference models (`ref_prob_*`, K x n and K x m, or one model's
    row). LR >= gamma is counted as ratio_z <= ratio_x / gamma over the sorted z ratios, in
    O((n + m) log m); a tie counts (the paper's >=; the authors' code counts > 1 only).
    """
    if gamma <= 0:
        raise ValueError("gamma must be positive")
    ratio_x = np.asarray(target_prob_x, dtype=float) / _offline_marginal(ref_prob_x, a)
    ratio_z = np.sort(np.asarray(target_prob_z, dtype=float) / _offline_marginal(ref_prob_z, a))
    return np.searchsorted(ratio_z, ratio_x / gamma, side="right") / len(ratio_z)


def tune_offline_a(
    target_prob_x: np.ndarray,
    is_member: np.ndarray,
    ref_prob_x: np.ndarray,
    target_prob_z: np.ndarray,
    ref_prob_z: np.ndarray,
    grid: np.ndarray = A_GRID,
) -> tuple[float, np.ndarray]:
    """The offset `a` of offline RMIA and the AUC of every `a` in `grid`, on a reference model.

    As Zarifzadeh et al. (ml_privacy_meter's tune_offline_a): one reference model plays the
    target (`target_prob_*`, its members and non-members `is_member` known), the other
    reference models (`ref_prob_*`, which must not have trained on x) give Pr(x), and the `a`
    with the highest AUC is kept (the first of equals, in grid order).
    """
    truth = np.asarray(is_member, dtype=bool)
    aucs = np.array(
        [
            roc_auc_score(
                truth, rmia_offline(target_prob_x, ref_prob_x, target_prob_z, ref_prob_z, a)
            )
            for a in grid
        ]
    )
    return float(grid[np.argmax(aucs)]), aucs
