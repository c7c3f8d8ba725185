"""Every metric of one model, from one inference pass over the training and test splits."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from medunlearn.data import Dataset
from medunlearn.engine import Engine
from medunlearn.forget import ForgetSet
from medunlearn.metrics.accuracy import accuracy, class_accuracy, class_key
from medunlearn.metrics.clinical import clinical_metrics
from medunlearn.metrics.mia import MiaInputs, timed_attack, true_class_confidence
from medunlearn.metrics.privacy import (
    ModelScores,
    PrivacyResult,
    model_scores,
    population_attacks,
)


@dataclass
class Predictions:
    """Logits of every training and test sample (and validation sample, for the bank attacks'
    population): all metrics are read off these."""

    train: torch.Tensor
    test: torch.Tensor
    val: torch.Tensor | None = None

    def scores(self, dataset: Dataset) -> ModelScores:
        """Per-sample loss, confidence and phi of every split predicted."""
        return model_scores(self.train, self.test, self.val, dataset)


def predict(
    model: nn.Module, dataset: Dataset, engine: Engine, with_val: bool = False
) -> Predictions:
    """One inference pass over the training and test splits (and validation when asked)."""
    train = engine.logits(model, dataset.train.images, "inference train")
    test = engine.logits(model, dataset.test.images, "inference test")
    val = engine.logits(model, dataset.val.images, "inference val") if with_val else None
    return Predictions(train, test, val)


def _binary_block(logits: torch.Tensor, labels: torch.Tensor) -> dict:
    """Clinical metrics of one set from P(positive)."""
    probability = torch.softmax(logits.float(), 1)[:, 1].numpy()
    return clinical_metrics(probability, labels.numpy() == 1)


def clinical_summary(predictions: Predictions, dataset: Dataset, forget_set: ForgetSet) -> dict:
    """UBAC / RBAC / TBAC and the test set's clinical metrics (sensitivity, FNR, risks...)."""
    train_labels = dataset.train.labels
    forget, retain = forget_set.forget_index, forget_set.retain_index
    test = _binary_block(predictions.test, dataset.test.labels)
    ubac = _binary_block(predictions.train[forget], train_labels[forget])["bac"]
    rbac = _binary_block(predictions.train[retain], train_labels[retain])["bac"]
    return {
        "ubac": None if ubac is None else 100.0 - ubac,
        "rbac": rbac,
        "tbac": test.pop("bac"),
        **test,
    }


def mia_inputs(
    predictions: Predictions, dataset: Dataset, forget_set: ForgetSet, seed: int = 0
) -> MiaInputs:
    """The MIA's inputs: retain samples are members, test samples non-members."""
    confidence = true_class_confidence(predictions.train, dataset.train.labels)
    return MiaInputs(
        confidence[forget_set.retain_index.numpy()],
        true_class_confidence(predictions.test, dataset.test.labels),
        confidence[forget_set.forget_index.numpy()],
        seed,
    )


def per_class(predictions: Predictions, dataset: Dataset, forget_set: ForgetSet) -> dict:
    """UA and TA within each class, `ua_c{c}` and `ta_c{c}` (None where a class has no forget
    or test sample): a method that forgets one class's patients worse shows up here."""
    forget, n = forget_set.forget_index, dataset.n_classes
    forget_accuracy = class_accuracy(predictions.train[forget], dataset.train.labels[forget], n)
    test_accuracy = class_accuracy(predictions.test, dataset.test.labels, n)
    ua = {
        class_key("ua", c): None if a is None else 100.0 - a for c, a in enumerate(forget_accuracy)
    }
    return {**ua, **{class_key("ta", c): a for c, a in enumerate(test_accuracy)}}


def metrics_before_mia(
    predictions: Predictions, dataset: Dataset, forget_set: ForgetSet
) -> dict[str, float | None]:
    """UA, RA, TA (percent), the MIA's place left None, UA and TA per class, plus clinical
    metrics on binary tasks."""
    labels = dataset.train.labels
    forget, retain = forget_set.forget_index, forget_set.retain_index
    metrics: dict[str, float | None] = {
        "ua": 100.0 - accuracy(predictions.train[forget], labels[forget]),
        "ra": accuracy(predictions.train[retain], labels[retain]),
        "ta": accuracy(predictions.test, dataset.test.labels),
        "mia": None,
        **per_class(predictions, dataset, forget_set),
    }
    if dataset.n_classes == 2 and dataset.positive_class == 1:
        metrics.update(clinical_summary(predictions, dataset, forget_set))
    return metrics


@dataclass
class RowEvaluation:
    """One model's metrics but the SVC attack (population attacks included), the SVC's inputs,
    the per-sample scores (for the bank attacks), the attacks' curves and the seconds taken."""

    metrics: dict
    mia_inputs: MiaInputs
    scores: ModelScores
    privacy: PrivacyResult
    seconds: float


def evaluate_row(
    model: nn.Module,
    dataset: Dataset,
    forget_set: ForgetSet,
    engine: Engine,
    seed: int,
    with_val: bool = False,
    intervals: bool = False,
) -> RowEvaluation:
    """Every metric of one model but the SVC attack, from one inference pass (`with_val` for
    the bank attacks' population; `intervals` for the AUC intervals of the sanity checks)."""
    started = time.perf_counter()
    predictions = predict(model, dataset, engine, with_val)
    metrics = metrics_before_mia(predictions, dataset, forget_set)
    scores = predictions.scores(dataset)
    privacy = PrivacyResult(seed, intervals)
    population_attacks(scores, forget_set.forget_index, forget_set.retain_index, privacy)
    metrics.update(privacy.columns)
    inputs = mia_inputs(predictions, dataset, forget_set, seed)
    return RowEvaluation(metrics, inputs, scores, privacy, time.perf_counter() - started)


def evaluate_model(
    model: nn.Module, dataset: Dataset, forget_set: ForgetSet, engine: Engine, seed: int = 0
) -> tuple[dict, float]:
    """All metrics of one model from one inference pass (MIA included), and the seconds taken."""
    row = evaluate_row(model, dataset, forget_set, engine, seed)
    result, attack_seconds = timed_attack(row.mia_inputs)
    row.metrics.update(mia=result.efficacy, mia_constant=result.constant)
    return row.metrics, row.seconds + attack_seconds
