"""Population attacks: one threshold for every sample on its loss or on LiRA's logit-scaled
confidence phi, with no reference model.

The loss (-log p_y) and phi (log p_y - log(1 - p_y)) are both increasing functions of p_y, so a
threshold on either ranks the samples alike and their ROCs coincide (any monotone classifier
of the loss alone, a logistic regression on it included, has this ROC); only per-example
calibration (LiRA) tells them apart. Reported on forget vs test samples (what the model still
leaks about the forgotten images; the target is Retrain's value, not 0.5), phi also on retain
vs test (what it leaks about its training data). Population attacks overestimate forgetting
(Hayes et al. 2024): the bank attacks are the ones to trust.
"""

from __future__ import annotations

import numpy as np

from medunlearn.metrics.evidence import Evidence
from medunlearn.metrics.registry import Column, Needs, Output, register_metric

FORGET_VS_TEST = Needs(splits=frozenset({"forget", "test"}))


@register_metric("pop_loss", "loss threshold", FORGET_VS_TEST, roc=True)
def loss_threshold(evidence: Evidence) -> Output:
    """Score = -loss: a lower loss looks more like a member."""
    forget, test = evidence.scores_of("forget"), evidence.scores_of("test")
    return Output({}, -forget.loss, -test.loss)


@register_metric(
    "pop_phi",
    "the phi threshold attack",
    FORGET_VS_TEST,
    roc=True,
    curve=True,
    checked=True,
    strength=1,
    tables={
        "privacy": (
            Column("pop_phi_auc", "phi AUC", digits=3),
            Column("pop_phi_tpr1", "phi TPR@1%", digits=3),
        )
    },
)
def phi_threshold(evidence: Evidence) -> Output:
    """Score = phi, forget vs test samples."""
    return Output({}, evidence.scores_of("forget").phi, evidence.scores_of("test").phi)


@register_metric(
    "pop_phi_retain",
    "phi threshold, retain vs test",
    Needs(splits=frozenset({"retain", "test"})),
    roc=True,
)
def phi_threshold_retain(evidence: Evidence) -> Output:
    """Score = phi, retain vs test samples: what the model leaks about its training data."""
    return Output({}, evidence.scores_of("retain").phi, evidence.scores_of("test").phi)


def class_matched(forget_labels: np.ndarray, test_labels: np.ndarray, seed: int) -> np.ndarray:
    """Test rows drawn (with replacement, seeded) so that their classes follow the forget set's:
    as many as the test split has, each class's share the forget set's."""
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(forget_labels, return_counts=True)
    shares = counts / counts.sum()
    rows = [
        rng.choice(np.flatnonzero(test_labels == c), round(share * len(test_labels)))
        for c, share in zip(classes, shares, strict=True)
        if (test_labels == c).any()
    ]
    return np.concatenate(rows) if rows else np.arange(len(test_labels))


@register_metric(
    "pop_phi_matched",
    "the phi threshold attack, test images of the forget set's classes",
    Needs(splits=frozenset({"forget", "test"}), option="matched"),
    roc=True,
    checked=True,
    tables={"privacy": (Column("pop_phi_matched_auc", "phi AUC, class-matched", digits=3),)},
)
def phi_threshold_matched(evidence: Evidence) -> Output:
    """Score = phi, forget samples against test samples of the same classes in the same shares:
    a small request (one patient, one class) is not told from unseen images by its class alone,
    the deletion service's per-request evidence."""
    forget, test = evidence.scores_of("forget"), evidence.scores_of("test")
    rows = class_matched(evidence.labels_of("forget").numpy(), evidence.labels_of("test").numpy(),
                         evidence.seed)  # fmt: skip
    return Output({}, forget.phi, test.phi[rows])
