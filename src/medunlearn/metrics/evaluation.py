"""Every metric of one model, from one inference pass over the training and test splits."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from medunlearn.data import Dataset
from medunlearn.engine import Engine
from medunlearn.forget import ForgetSet
from medunlearn.metrics.accuracy import accuracy
from medunlearn.metrics.clinical import clinical_metrics
from medunlearn.metrics.mia import MiaInputs, timed_efficacy, true_class_confidence


@dataclass
class Predictions:
    """Logits of every training and test sample: all metrics are read off these."""

    train: torch.Tensor
    test: torch.Tensor


def predict(model: nn.Module, dataset: Dataset, engine: Engine) -> Predictions:
    """One inference pass over the training and test splits."""
    train = engine.logits(model, dataset.train.images, "inference train")
    return Predictions(train, engine.logits(model, dataset.test.images, "inference test"))


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


def metrics_before_mia(
    predictions: Predictions, dataset: Dataset, forget_set: ForgetSet
) -> dict[str, float | None]:
    """UA, RA, TA (percent), the MIA's place left None, plus clinical metrics on binary tasks."""
    labels = dataset.train.labels
    forget, retain = forget_set.forget_index, forget_set.retain_index
    metrics: dict[str, float | None] = {
        "ua": 100.0 - accuracy(predictions.train[forget], labels[forget]),
        "ra": accuracy(predictions.train[retain], labels[retain]),
        "ta": accuracy(predictions.test, dataset.test.labels),
        "mia": None,
    }
    if dataset.n_classes == 2 and dataset.positive_class == 1:
        metrics.update(clinical_summary(predictions, dataset, forget_set))
    return metrics


def evaluate_row(
    model: nn.Module, dataset: Dataset, forget_set: ForgetSet, engine: Engine, seed: int
) -> tuple[dict, MiaInputs, float]:
    """Every metric of one model but the MIA, the MIA's inputs, and the seconds they took."""
    started = time.perf_counter()
    predictions = predict(model, dataset, engine)
    metrics = metrics_before_mia(predictions, dataset, forget_set)
    inputs = mia_inputs(predictions, dataset, forget_set, seed)
    return metrics, inputs, time.perf_counter() - started


def evaluate_model(
    model: nn.Module, dataset: Dataset, forget_set: ForgetSet, engine: Engine, seed: int = 0
) -> tuple[dict, float]:
    """All metrics of one model from one inference pass (MIA included), and the seconds taken."""
    metrics, inputs, seconds = evaluate_row(model, dataset, forget_set, engine, seed)
    metrics["mia"], attack_seconds = timed_efficacy(inputs)
    return metrics, seconds + attack_seconds
