"""Attacks scored as ROC curves: every attack gives each sample a score, higher meaning "more
likely a member"; `roc_summary` turns the scores of known members and non-members into AUC and
TPR at low FPR, `curve` thins the ROC for log-log figures and `histogram` bins the scores."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import roc_auc_score, roc_curve

# the FPRs at which an ROC is kept for the figures (log-spaced: the low-FPR end matters)
CURVE_FPR = np.unique(np.concatenate([[0.0], np.logspace(-4, 0, 49)]))
HISTOGRAM_BINS = 30


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

    At most, where tensorflow-privacy's LiRA code takes the points with FPR strictly below the
    target: the two differ only when n_nonmembers x target is a whole number, so that the ROC
    has a point exactly at the target; a rule with exactly 1% false positives operates at 1% FPR,
    so it counts here. Below 1 / n_nonmembers only FPR = 0 qualifies: with fewer than 1000
    non-members the TPR at 0.1% FPR is the TPR at 0 FPR.
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


def curve(result: AttackResult) -> dict[str, list[float]]:
    """The ROC thinned to `CURVE_FPR` (the largest TPR at each FPR), for a log-log figure."""
    tpr = [tpr_at_fpr(result.fpr, result.tpr, float(f)) for f in CURVE_FPR]
    return {"fpr": CURVE_FPR.tolist(), "tpr": tpr}


def histogram(members: np.ndarray, nonmembers: np.ndarray) -> dict[str, list[float]]:
    """Counts of both groups' scores over shared bins spanning the finite ones; an infinite
    score (a diverged model's phi) falls into the outer bin on its side."""
    pooled = np.concatenate([members, nonmembers])
    finite = pooled[np.isfinite(pooled)]
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    edges = np.linspace(low, high if high > low else low + 1.0, HISTOGRAM_BINS + 1)
    counts = [
        np.histogram(np.clip(values, edges[0], edges[-1]), edges)[0].tolist()
        for values in (members, nonmembers)
    ]
    return {"edges": edges.tolist(), "forget": counts[0], "test": counts[1]}
