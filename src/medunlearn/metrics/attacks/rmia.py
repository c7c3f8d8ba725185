"""Offline RMIA (Zarifzadeh et al., ICML 2024): the model's true-class probability of an example
against the offline marginal Pr(x) from reference models, compared with population samples."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

from medunlearn.metrics.evidence import Evidence, ModelScores, Reference, forget_and_test
from medunlearn.metrics.registry import Column, Needs, Output, register_metric

# the offsets `a` of offline RMIA tried when tuning it (Zarifzadeh et al.'s code: 0, 0.1, ..., 1)
A_GRID = np.linspace(0.0, 1.0, 11)


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
    """The offset `a` of offline RMIA and the AUC of every `a` in `grid`: a model whose members
    (`is_member`) are known plays the target (`target_prob_*`), reference models that never
    trained on x give Pr(x) (`ref_prob_*`), and the `a` of the highest AUC is kept (the first
    of equals, in grid order). Zarifzadeh et al. tune it so (ml_privacy_meter's
    tune_offline_a), there with one reference model as the target and one other as the
    reference; `tuned_a` plays the original model against all K bank models.
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


def tuned_a(original: ModelScores, bank: Reference, forget) -> float:
    """RMIA's `a` of a forget set, tuned on the original model (its forget samples members, its
    test samples not) against the K bank Retrains, which trained on neither: our one-model
    version of the tuning Zarifzadeh et al. do with reference models (see `tune_offline_a`)."""
    if original.val is None:
        raise ValueError("tuning RMIA's a needs the validation split's scores")
    target = forget_and_test(original, forget)
    is_member = np.arange(len(target.phi)) < len(forget)
    a, _ = tune_offline_a(
        target.confidence, is_member, bank.confidence, original.val.confidence,
        bank.val_confidence,
    )  # fmt: skip
    return a


@register_metric(
    "rmia",
    "offline RMIA",
    Needs(splits=frozenset({"forget", "test", "val"}), bank=True),
    columns=("rmia_a",),
    roc=True,
    curve=True,
    strength=2,
    tables={
        "privacy": (
            Column("rmia_auc", "RMIA AUC", digits=3),
            Column("rmia_tpr1", "RMIA TPR@1%", digits=3),
        )
    },
)
def rmia(evidence: Evidence) -> Output:
    """Offline RMIA of the model against the bank, forget vs test samples; the population
    samples z are the validation split; `a` is the study's (tuned on the original model)."""
    bank, a = evidence.bank(), evidence.rmia_a
    if a is None:
        raise ValueError("offline RMIA needs its a: evaluation.rmia_a, or one tuned on the bank")
    forget, test = evidence.scores_of("forget"), evidence.scores_of("test")
    target = np.concatenate([forget.confidence, test.confidence])
    val = evidence.scores_of("val").confidence
    scores = rmia_offline(target, bank.confidence, val, bank.val_confidence, a)
    return Output({"rmia_a": a}, scores[: len(forget.phi)], scores[len(forget.phi) :])
