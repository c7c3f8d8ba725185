"""What a metric reads about one model: its logits per split, a bank of reference models, the
method's repeated runs, the model itself; each handed out only where the metric declared it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from medunlearn.config import Recipe
from medunlearn.data import Dataset
from medunlearn.engine import Engine
from medunlearn.forget import ForgetSet
from medunlearn.metrics.scores import SampleScores, per_sample_scores

# the split of the dataset each split a metric reads lies in
SOURCE = {"forget": "train", "retain": "train", "test": "test", "val": "val"}


class Undeclared(LookupError):
    """A metric read something it did not declare in its `Needs` (a bug in the metric)."""


@dataclass(frozen=True)
class ModelScores:
    """Per-sample scores of one model on the training and test splits, and on the validation
    split (RMIA's population samples) where a bank attack needs it."""

    train: SampleScores
    test: SampleScores
    val: SampleScores | None = None


@dataclass(frozen=True)
class Reference:
    """A bank of K reference Retrains (never trained on the forget or test samples) as the
    attacks read it: phi and true-class confidence on the forget rows then the test split
    (K x n), confidence on the validation split, RMIA's population (K x m)."""

    phi: np.ndarray
    confidence: np.ndarray
    val_confidence: np.ndarray


def forget_and_test(scores: ModelScores, forget: torch.Tensor) -> SampleScores:
    """The scores of the forget rows followed by those of the test split."""
    return scores.train.select(forget.numpy()).join(scores.test)


def reference(bank: Sequence[ModelScores], forget: torch.Tensor) -> Reference:
    """A bank's scores stacked once per forget set."""
    stacked = [forget_and_test(model, forget) for model in bank]
    if any(model.val is None for model in bank):
        raise ValueError("a bank model needs the validation split's scores")
    return Reference(
        np.stack([model.phi for model in stacked]),
        np.stack([model.confidence for model in stacked]),
        np.stack([model.val.confidence for model in bank]),
    )


@dataclass(frozen=True)
class Repeats:
    """The two banks of the unlearning tests: phi of each forget example under N repeated
    unlearning runs of the method and under N bank Retrains (N x n_forget each), and their
    mean retain and test accuracy (percent)."""

    unlearned_phi: np.ndarray
    retrained_phi: np.ndarray
    ra_unlearned: float
    ta_unlearned: float
    ra_retrained: float
    ta_retrained: float

    @property
    def diverged(self) -> int:
        """How many runs diverged (a non-finite phi: NaN logits): a result to report, not a
        model to fit a Gaussian to."""
        return int((~np.isfinite(self.unlearned_phi).all(axis=1)).sum())

    def finite_banks(self) -> tuple[np.ndarray, np.ndarray]:
        """The runs that did not diverge, and as many of the (finite) bank Retrains."""
        unlearned = self.unlearned_phi[np.isfinite(self.unlearned_phi).all(axis=1)]
        retrained = self.retrained_phi[np.isfinite(self.retrained_phi).all(axis=1)]
        n = min(len(unlearned), len(retrained))
        return unlearned[:n], retrained[:n]


@dataclass(frozen=True)
class Relearning:
    """What relearning the forget set needs besides the model: the recipe whose lr, momentum,
    weight decay and batch size fine-tune it, the original model's accuracy on the forget set
    (the target), the engine, the seed, the epoch budget and the tolerance."""

    recipe: Recipe
    target_accuracy: float
    engine: Engine
    seed: int
    max_epochs: int
    tolerance: float


@dataclass
class Evidence:
    """One model's evidence: its logits on the predicted splits of `dataset`, the forget set,
    the attacks' `seed`, and what some metrics need: a bank `reference` with RMIA's `rmia_a`,
    the method's `repeats`, the `model` and how to relearn (`relearning`), and the `device`
    a metric may compute on (the engine's).

    `allowed` limits what a metric may read (the common suite hands each metric only what it
    declared; reading anything else raises `Undeclared`)."""

    dataset: Dataset
    forget_set: ForgetSet
    logits: dict[str, torch.Tensor]
    seed: int = 0
    reference: Reference | None = None
    rmia_a: float | None = None
    repeats: Repeats | None = None
    model: nn.Module | None = None
    relearning: Relearning | None = None
    allowed: frozenset[str] | None = None
    device: torch.device | None = None
    _scores: dict[str, SampleScores] = field(default_factory=dict, repr=False)

    def _check(self, what: str) -> None:
        """Refuse what the metric reading this evidence did not declare."""
        if self.allowed is not None and what not in self.allowed:
            raise Undeclared(f"read {what!r}, which it did not declare (it declared "
                             f"{sorted(self.allowed)})")  # fmt: skip

    def rows(self, split: str) -> torch.Tensor | None:
        """The rows of the dataset split that a split is (None: all of it)."""
        if split == "forget":
            return self.forget_set.forget_index
        return self.forget_set.retain_index if split == "retain" else None

    def _source(self, split: str) -> str:
        """The predicted dataset split a declared split lies in."""
        self._check(split)
        if SOURCE[split] not in self.logits:
            raise Undeclared(f"split {split!r} was not predicted")
        return SOURCE[split]

    def logits_of(self, split: str) -> torch.Tensor:
        """The model's logits on a split."""
        whole, rows = self.logits[self._source(split)], self.rows(split)
        return whole if rows is None else whole[rows]

    def labels_of(self, split: str) -> torch.Tensor:
        """The true labels of a split."""
        whole, rows = getattr(self.dataset, self._source(split)).labels, self.rows(split)
        return whole if rows is None else whole[rows]

    def scores_of(self, split: str) -> SampleScores:
        """Loss, confidence and phi of each sample of a split (each dataset split scored once)."""
        whole, rows = self._whole_scores(self._source(split)), self.rows(split)
        return whole if rows is None else whole.select(rows.numpy())

    def _whole_scores(self, source: str) -> SampleScores:
        """The scores of a whole predicted dataset split, computed once."""
        if source not in self._scores:
            labels = getattr(self.dataset, source).labels
            self._scores[source] = per_sample_scores(self.logits[source], labels)
        return self._scores[source]

    def model_scores(self) -> ModelScores:
        """The scores of every predicted split (what a bank keeps of each of its models)."""
        return ModelScores(**{source: self._whole_scores(source) for source in self.logits})

    def bank(self) -> Reference:
        """The bank of reference Retrains (with RMIA's `a`)."""
        self._check("bank")
        if self.reference is None:
            raise Undeclared("no bank was given")
        return self.reference

    def repeated(self) -> Repeats:
        """The method's repeated runs against as many bank Retrains."""
        self._check("repeats")
        if self.repeats is None:
            raise Undeclared("no repeats were given")
        return self.repeats

    def trained_model(self) -> tuple[nn.Module, Relearning]:
        """The model itself and how to relearn the forget set on a copy of it."""
        self._check("model")
        if self.model is None or self.relearning is None:
            raise Undeclared("no model to relearn was given")
        return self.model, self.relearning
