"""Synthetic worlds for the metrics: models given by their phi on every split, a bank of
reference models and repeated runs, built to be indistinguishable or well separated."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch

from medunlearn.data import Dataset, Split
from medunlearn.forget import ForgetSet
from medunlearn.metrics.evidence import ModelScores, Reference, Repeats, reference
from medunlearn.metrics.scores import per_sample_scores

N_FORGET, N_RETAIN, N_TEST, N_VAL = 300, 300, 300, 200


def logits_of(phi: np.ndarray) -> torch.Tensor:
    """Two-class logits whose true class (0) has exactly this phi: z = (phi, 0)."""
    phi = torch.as_tensor(phi, dtype=torch.float64)
    return torch.stack([phi, torch.zeros_like(phi)], dim=1).float()


def phi_dataset() -> tuple[Dataset, ForgetSet]:
    """A two-class dataset whose every label is 0 (so a model is its phi), the first N_FORGET
    training rows forgotten."""

    def split(n: int) -> Split:
        return Split(torch.zeros(n, 1, 2, 2, dtype=torch.uint8), torch.zeros(n, dtype=torch.int64))

    dataset = Dataset("phi", 2, 2, 1, ["a", "b"], split(N_FORGET + N_RETAIN), split(N_VAL),
                      split(N_TEST))  # fmt: skip
    forget = ForgetSet(np.arange(N_FORGET), N_FORGET + N_RETAIN, "phi", dataset.fingerprint)
    return dataset, forget


@dataclass
class World:
    """A synthetic world: the data, the target model's logits per split, a bank of reference
    models, the method's repeated runs against as many bank models."""

    dataset: Dataset
    forget_set: ForgetSet
    logits: dict[str, torch.Tensor]
    bank: Reference
    repeats: Repeats


def make_world(
    separated: bool,
    seed: int = 0,
    k: int = 16,
    identical: bool = False,
    lift: float = 4.0,
    noise: float = 1.0,
) -> World:
    """Every example has its own level of phi shared by all models, plus noise per model. With
    `separated` the target model trained on the forget and retain rows (lifted by `lift` above
    the bank's, which never saw them; the noise has sd `noise`) and the repeated runs sit 5 sds above the retrained
    ones; else everything comes from one distribution: the runs are models drawn like the
    bank's, or with `identical` the bank's own models, shuffled."""
    rng = np.random.default_rng(seed)
    level = {s: rng.normal(0, 2, n) for s, n in
             (("train", N_FORGET + N_RETAIN), ("test", N_TEST), ("val", N_VAL))}  # fmt: skip

    def model(lift: float) -> dict[str, np.ndarray]:
        phi = {s: level[s] + rng.normal(0, noise, len(level[s])) for s in level}
        phi["train"] = phi["train"] + lift
        return phi

    target = model(lift if separated else 0.0)
    dataset, forget_set = phi_dataset()
    bank_phi = [model(0.0) for _ in range(k)]
    scores = [
        ModelScores(**{s: per_sample_scores(logits_of(m[s]), torch.zeros(len(m[s]), dtype=torch.int64))
                       for s in m})
        for m in bank_phi
    ]  # fmt: skip
    retrained = np.stack([m["train"][:N_FORGET] for m in bank_phi])
    drawn = np.stack([model(0.0)["train"][:N_FORGET] for _ in range(k)])
    unlearned = retrained[rng.permutation(k)] if identical else drawn
    if separated:
        unlearned = retrained + 5.0
    repeats = Repeats(unlearned, retrained, 90.0, 80.0, 90.0, 80.0)
    logits = {s: logits_of(target[s]) for s in target}
    return World(dataset, forget_set, logits, reference(scores, forget_set.forget_index), repeats)


@pytest.fixture
def world_factory():
    """Build synthetic worlds (see `make_world`)."""
    return make_world
