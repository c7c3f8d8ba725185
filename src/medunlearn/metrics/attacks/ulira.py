"""U-LiRA (Hayes et al., "Inexact unlearning needs more careful evaluations", SaTML 2025): a
per-example likelihood-ratio test between "trained with x, then unlearned" and "retrained
without x" models; 0.5 means unlearning is indistinguishable from retraining."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import norm
from sklearn.metrics import balanced_accuracy_score

from medunlearn.metrics.attacks.lira import STD_FLOOR, gaussian_fit
from medunlearn.metrics.attacks.roc import roc_summary
from medunlearn.metrics.evidence import Evidence
from medunlearn.metrics.registry import Column, Needs, Output, register_metric


@dataclass(frozen=True)
class ULiraResult:
    """U-LiRA over (target model, example) pairs: balanced accuracy of "unlearned" iff log LR > 0,
    AUC of the log LR, the log LRs and truths (targets x examples, True: unlearned), and the
    number of pairs of each truth."""

    balanced_accuracy: float
    auc: float
    log_lr: np.ndarray
    truth: np.ndarray
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
    (`retrained_phi`, S_r x n). A Gaussian is fitted per example to each bank (`gaussian_fit`);
    below 32 models unless told, its "global variance" is the pooled within-example variance
    (the mean over examples of each example's variance across the bank), not the variance of
    all the bank's values together. A held-out target model's phi (`target_phi`, T x n) scores
    log N(phi; unlearned) - log N(phi; retrained). `target_unlearned` is the
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
        truth=truth,
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


@register_metric(
    "ulira",
    "U-LiRA",
    Needs(splits=frozenset(), repeats=True),
    columns=("ulira_acc", "ulira_auc"),
    scores=True,
    tables={"privacy": (Column("ulira_acc", "U-LiRA acc", digits=3, gap=False),)},
)
def ulira_test(evidence: Evidence) -> Output:
    """Held-out U-LiRA between the method's repeated runs and as many bank Retrains; as scores,
    the log LRs of the unlearned targets (members) and of the retrained ones. None where fewer
    than 3 runs did not diverge."""
    unlearned, retrained = evidence.repeated().finite_banks()
    if len(unlearned) < 3:
        return Output({"ulira_acc": None, "ulira_auc": None})
    held_out = ulira_held_out(unlearned, retrained)
    log_lr, truth = held_out.log_lr, held_out.truth
    columns = {"ulira_acc": held_out.balanced_accuracy, "ulira_auc": held_out.auc}
    return Output(columns, log_lr[truth], log_lr[~truth])
