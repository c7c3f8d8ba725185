"""Relearning resistance (ERASURE): the relearn time on the forget set and the anamnesis index;
a model that only hides the forget set relearns it at once, Retrain takes several epochs."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from medunlearn.config import TrainConfig
from medunlearn.data.medmnist import load_medmnist
from medunlearn.forget import ForgetSet
from medunlearn.metrics.accuracy import accuracy
from medunlearn.metrics.attacks.relearn import AIN_OFFSET, anamnesis_index
from medunlearn.metrics.evaluate import Request, evaluate
from medunlearn.metrics.evidence import Relearning
from medunlearn.models import Normalize
from medunlearn.training import fit, rows_batches

RECIPE = TrainConfig(epochs=60, lr=0.02, batch_size=16, schedule="constant", augment="none")
N_FORGET = 12


def _cross_entropy(logits: torch.Tensor, batch) -> torch.Tensor:
    """Cross-entropy with the (possibly mislabelled) training labels."""
    return torch.nn.functional.cross_entropy(logits, batch.labels)


def test_the_anamnesis_index_by_hand():
    assert anamnesis_index({"relearn_epochs": 1}, {"relearn_epochs": 4}) == {
        "ain": pytest.approx((1 + AIN_OFFSET) / (4 + AIN_OFFSET))
    }
    assert anamnesis_index({"relearn_epochs": 0}, {"relearn_epochs": 0})["ain"] == 1.0
    assert anamnesis_index({}, {"relearn_epochs": 3}) == {"ain": None}


@pytest.fixture
def memorised(write_npz, engine):
    """A fixture whose first rows carry labels their images contradict (only memorised, never
    generalised), the original trained on all rows, and Retrain trained without those rows (a
    small MLP: it memorises such rows where the small CNN, pooling away the noise, cannot)."""

    def mislabel(arrays):
        labels = arrays["train_labels"]
        labels[:N_FORGET, 0] = (labels[:N_FORGET, 0] + 4) % 8
        return arrays

    path = write_npz("bloodmnist", 64, 24, 24, mutate=mislabel)
    dataset = load_medmnist("bloodmnist", 28, root=path.parent, download=False)
    forget_set = ForgetSet(np.arange(N_FORGET), 64, dataset.name, dataset.fingerprint)

    def trained(rows: torch.Tensor, seed: int):
        torch.manual_seed(seed)
        model = nn.Sequential(Normalize(), nn.Flatten(), nn.Linear(3 * 28 * 28, 64), nn.ReLU(),
                              nn.Linear(64, dataset.n_classes))  # fmt: skip
        batches = rows_batches(engine, dataset, rows, RECIPE, "none")
        return fit(model, RECIPE, engine, batches, lambda *_: _cross_entropy, seed).model

    original = trained(torch.arange(64), 0)
    retrained = trained(forget_set.retain_index, 1)
    return dataset, forget_set, original, retrained


def _relearn(model, dataset, forget_set, engine, target: float, epochs: int = 8) -> dict:
    """The relearn metric's columns of a model, against the original's forget accuracy."""
    recipe = dataclasses.replace(RECIPE, lr=0.01, batch_size=4)  # three steps an epoch
    relearning = Relearning(recipe, target, engine, 0, epochs, 0.1)
    request = Request(names=("relearn",), relearning=relearning,
                      evaluation=Request().evaluation.__class__(relearn=True))  # fmt: skip
    return evaluate(model, dataset, forget_set, engine, request).columns


def _hidden(original, dataset, forget_set, engine):
    """The original with its forget rows pushed to other labels for a few steps: hidden, not
    forgotten (the features that memorised them are still there)."""
    recipe = TrainConfig(epochs=3, lr=0.05, batch_size=N_FORGET, schedule="constant",
                         augment="none")  # fmt: skip
    wrong = {int(r): (int(dataset.train.labels[r]) + 1) % 8 for r in forget_set.forget_ids}

    def loss(logits, batch):
        targets = torch.tensor([wrong[int(r)] for r in batch.index])
        return torch.nn.functional.cross_entropy(logits, targets)

    batches = rows_batches(engine, dataset, forget_set.forget_index, recipe, "none")
    return fit(copy.deepcopy(original), recipe, engine, batches, lambda *_: loss, 0).model


def test_a_hidden_forget_set_relearns_at_once_and_retrain_takes_several_epochs(memorised, engine):
    dataset, forget_set, original, retrained = memorised
    rows = forget_set.forget_index
    target = accuracy(
        engine.logits(original, dataset.train.images[rows]), dataset.train.labels[rows]
    )
    assert target >= 90.0  # the original memorised the mislabelled rows
    hidden = _hidden(original, dataset, forget_set, engine)
    hidden_accuracy = accuracy(engine.logits(hidden, dataset.train.images[rows]),
                               dataset.train.labels[rows])  # fmt: skip
    assert hidden_accuracy < 50.0  # it looks forgotten
    assert _relearn(original, dataset, forget_set, engine, target)["relearn_epochs"] == 0
    quick = _relearn(hidden, dataset, forget_set, engine, target)
    slow = _relearn(retrained, dataset, forget_set, engine, target)
    assert quick["relearn_reached"] and quick["relearn_epochs"] <= 1, (quick, slow)
    assert slow["relearn_epochs"] >= 3
    assert anamnesis_index(quick, slow)["ain"] < 0.5
    assert quick["relearn_s"] > 0


def test_a_model_that_never_gets_there_is_given_the_budget_and_flagged(memorised, engine):
    dataset, forget_set, _, retrained = memorised
    columns = _relearn(retrained, dataset, forget_set, engine, target=100.0, epochs=1)
    assert columns["relearn_epochs"] == 1 and columns["relearn_reached"] is False
