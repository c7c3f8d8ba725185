"""Every membership attack on one model, read off its per-sample scores: population thresholds
(no reference models) and, against a bank of reference Retrains, offline LiRA and RMIA.

Each attack is reported on forget vs test samples (what the model still leaks about the
forgotten images; the target is Retrain's value, not 0.5), the phi threshold also on retain vs
test (what the model leaks about its training data). Columns are fractions (AUC, TPR at 1% and
0.1% FPR); each attack's ROC is also kept, thinned, for the figures.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from medunlearn.data import Dataset
from medunlearn.metrics.attacks import (
    AttackResult,
    lira_offline,
    loss_attack,
    phi_attack,
    rmia_offline,
    roc_summary,
    tpr_at_fpr,
    tune_offline_a,
)
from medunlearn.metrics.scores import SampleScores, per_sample_scores
from medunlearn.metrics.stats import auc_interval

# the FPRs at which an ROC is kept for the figures (log-spaced: the low-FPR end matters)
CURVE_FPR = np.unique(np.concatenate([[0.0], np.logspace(-4, 0, 49)]))
HISTOGRAM_BINS = 30
# the attacks whose AUC gets an interval where asked (the report checks their sanity)
INTERVAL_ATTACKS = ("pop_phi", "lira")
# the attacks against a reference bank, and their table columns
BANK_ATTACKS = ("lira", "rmia")
BANK_COLUMNS = tuple(f"{a}_{m}" for a in BANK_ATTACKS for m in ("auc", "tpr1", "tpr01"))


@dataclass(frozen=True)
class ModelScores:
    """Per-sample scores of one model on the training and test splits, and on the validation
    split (RMIA's population samples) where a bank attack needs it."""

    train: SampleScores
    test: SampleScores
    val: SampleScores | None = None

    def forget(self, rows: torch.Tensor) -> SampleScores:
        """The scores of the given training rows."""
        index = rows.numpy()
        train = self.train
        return SampleScores(train.loss[index], train.confidence[index], train.phi[index])


def model_scores(
    train: torch.Tensor, test: torch.Tensor, val: torch.Tensor | None, dataset: Dataset
) -> ModelScores:
    """Per-sample scores from the logits of each split."""
    return ModelScores(
        per_sample_scores(train, dataset.train.labels),
        per_sample_scores(test, dataset.test.labels),
        None if val is None else per_sample_scores(val, dataset.val.labels),
    )


def _columns(name: str, result: AttackResult) -> dict[str, float]:
    """An attack's table columns: AUC and TPR at 1% and 0.1% FPR."""
    return {
        f"{name}_auc": result.auc,
        f"{name}_tpr1": result.tpr_at_1pct_fpr,
        f"{name}_tpr01": result.tpr_at_01pct_fpr,
    }


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


@dataclass
class PrivacyResult:
    """Table columns, thinned ROCs and score histograms of one model's attacks.

    With `intervals`, the AUCs of the checked attacks also get their bootstrap interval
    (`<attack>_auc_low` / `_high`, seeded with `seed`): the report's sanity checks read them
    on the original model and Retrain."""

    seed: int = 0
    intervals: bool = False
    columns: dict[str, float] = field(default_factory=dict)
    curves: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    histograms: dict[str, dict[str, list[float]]] = field(default_factory=dict)

    def add(self, name: str, members: np.ndarray, nonmembers: np.ndarray, result: AttackResult):
        """Record one forget-vs-test attack: its columns, ROC and score histogram."""
        self.columns.update(_columns(name, result))
        self.curves[name] = curve(result)
        self.histograms[name] = histogram(members, nonmembers)
        if self.intervals and name in INTERVAL_ATTACKS:
            interval = auc_interval(members, nonmembers, seed=self.seed)
            self.columns.update({f"{name}_auc_low": interval.ci_low,
                                 f"{name}_auc_high": interval.ci_high})  # fmt: skip


def population_attacks(
    scores: ModelScores, forget: torch.Tensor, retain: torch.Tensor, result: PrivacyResult
) -> PrivacyResult:
    """Threshold attacks on the loss and on phi, forget vs test; phi also retain vs test."""
    forgotten, test = scores.forget(forget), scores.test
    result.add("pop_loss", -forgotten.loss, -test.loss, loss_attack(forgotten.loss, test.loss))
    result.add("pop_phi", forgotten.phi, test.phi, phi_attack(forgotten.phi, test.phi))
    retained = scores.forget(retain)
    result.columns.update(_columns("pop_phi_retain", phi_attack(retained.phi, test.phi)))
    return result


@dataclass(frozen=True)
class Reference:
    """A bank's scores as the attacks read them, stacked once per forget set: phi and
    true-class confidence on the forget rows then the test split (K x n), and confidence on
    the validation split, RMIA's population (K x m)."""

    phi: np.ndarray
    confidence: np.ndarray
    val_confidence: np.ndarray


def reference(bank: Sequence[ModelScores], forget: torch.Tensor) -> Reference:
    """The bank's stacked scores (every bank model is OUT for the forget and test samples)."""
    scores = [_forget_and_test(model, forget) for model in bank]
    return Reference(
        np.stack([model.phi for model in scores]),
        np.stack([model.confidence for model in scores]),
        np.stack([_val(model).confidence for model in bank]),
    )


def bank_attacks(
    target: ModelScores,
    bank: Reference,
    forget: torch.Tensor,
    rmia_a: float,
    result: PrivacyResult,
) -> PrivacyResult:
    """Offline LiRA and offline RMIA of one model against the bank, forget vs test; RMIA's
    population samples are the validation split."""
    n_forget = len(forget)
    target_x = _forget_and_test(target, forget)
    lira = lira_offline(target_x.phi, bank.phi)
    result.add(
        "lira", lira[:n_forget], lira[n_forget:], roc_summary(lira[:n_forget], lira[n_forget:])
    )
    rmia = rmia_offline(
        target_x.confidence, bank.confidence, _val(target).confidence, bank.val_confidence, rmia_a
    )
    result.add(
        "rmia", rmia[:n_forget], rmia[n_forget:], roc_summary(rmia[:n_forget], rmia[n_forget:])
    )
    return result


def tuned_rmia_a(original: ModelScores, bank: Reference, forget: torch.Tensor) -> float:
    """Offline RMIA's `a`, tuned as Zarifzadeh et al. tune it on a model whose members are
    known and whose references never trained on them: here the original model (its forget
    samples members, test samples not) against the bank, which trained on neither."""
    target_x = _forget_and_test(original, forget)
    is_member = np.arange(len(target_x.phi)) < len(forget)
    a, _ = tune_offline_a(
        target_x.confidence,
        is_member,
        bank.confidence,
        _val(original).confidence,
        bank.val_confidence,
    )
    return a


def _forget_and_test(scores: ModelScores, forget: torch.Tensor) -> SampleScores:
    """The scores of the forget rows followed by those of the test split."""
    forgotten, test = scores.forget(forget), scores.test
    return SampleScores(
        np.concatenate([forgotten.loss, test.loss]),
        np.concatenate([forgotten.confidence, test.confidence]),
        np.concatenate([forgotten.phi, test.phi]),
    )


def _val(scores: ModelScores) -> SampleScores:
    """The validation scores a bank attack needs."""
    if scores.val is None:
        raise ValueError("a bank attack needs the validation split's scores")
    return scores.val
