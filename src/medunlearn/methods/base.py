"""What every unlearning method shares: its inputs, hyper-parameters, losses and the fit call."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
from torch import nn

from medunlearn.config import ModelConfig, Recipe, TrainConfig
from medunlearn.data import Dataset
from medunlearn.engine import Batch, Engine, n_batches
from medunlearn.forget import ForgetSet
from medunlearn.store import Store
from medunlearn.training import (
    EpochBatches,
    EpochLoss,
    EpochStep,
    cross_entropy,
    fit,
    rows_batches,
)


@dataclass
class MethodParams(Recipe):
    """Hyper-parameters of every gradient-based method: the SGD recipe (as in the reference
    code: 10 epochs, lr 0.01, constant schedule, the training recipe's augmentation)."""


@dataclass
class UnlearnData:
    """The data of one deletion: the dataset and the forget set."""

    dataset: Dataset
    forget_set: ForgetSet

    @property
    def forget_index(self) -> torch.Tensor:
        """Training rows to forget."""
        return self.forget_set.forget_index

    @property
    def retain_index(self) -> torch.Tensor:
        """Training rows to keep (never those forgotten by earlier requests)."""
        return self.forget_set.retain_index

    @property
    def train_index(self) -> torch.Tensor:
        """The training rows still in the data: forget and retain (not those forgotten by
        earlier requests)."""
        return self.forget_set.train_index

    @cached_property
    def is_forget(self) -> torch.Tensor:
        """A bool per training row: True where the row is in the forget set."""
        flags = torch.zeros(len(self.dataset.train), dtype=torch.bool)
        flags[self.forget_index] = True
        return flags

    @property
    def n_classes(self) -> int:
        """Number of classes of the task."""
        return self.dataset.n_classes


@dataclass
class Context:
    """What a method may use besides its data: engine, seed, recipe, cache, resumable state.

    `earlier_seconds` collects the run time of work this call reuses instead of redoing (the
    epochs before a resume, a saliency mask read from the cache): it belongs to the method's
    run time, and `unlearn` adds it. `on_epoch` sees the model after each epoch of a
    single-phase fit (a tuning trial's pruning check)."""

    engine: Engine
    seed: int = 0
    train: TrainConfig | None = None
    model_config: ModelConfig | None = None
    store: Store | None = None
    state_path: Path | None = None
    name: str = "unlearn"
    earlier_seconds: float = 0.0
    on_epoch: Callable[[int, nn.Module], None] | None = None

    def augment_mode(self, params: Recipe) -> str:
        """The method's augmentation: its own if set, else the training recipe's."""
        return params.augment or (self.train.augment if self.train else "none")

    def phase_state(self, phase: str | None) -> Path | None:
        """The resumable state of one phase of a multi-phase method (UNSIR's impair and repair),
        so that a resume never redoes a finished phase; the method's own state for None."""
        if self.state_path is None or phase is None:
            return self.state_path
        path = self.state_path
        return path.with_name(f"{path.stem}-{phase}{path.suffix}")

    def state_files(self) -> list[Path]:
        """Every resumable state this context's method may have left (its phases' included)."""
        if self.state_path is None:
            return []
        pattern = f"{self.state_path.stem}*{self.state_path.suffix}"
        return sorted(self.state_path.parent.glob(pattern))


def retain_loss(data: UnlearnData, params: MethodParams, device: torch.device):
    """Cross-entropy on retain samples, class-weighted (w_c = N / (C N_c)) when asked."""
    labels = data.dataset.train.labels[data.retain_index]
    return cross_entropy(labels, data.n_classes, params.class_weighted, device)


def random_labels(labels: torch.Tensor, n_classes: int, generator: torch.Generator):
    """Labels drawn uniformly over all classes (a draw may equal the true label)."""
    return torch.randint(
        0, n_classes, labels.shape, generator=generator, device=generator.device
    ).to(labels.device)


def split_rows(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The positions where `mask` is True and where it is False, each in order, and so both
    counts as lengths known on the host: no value is read into Python. The device is waited
    for once, by the nonzero that sizes the first part (a boolean index waits each time)."""
    chosen = torch.nonzero(mask).squeeze(1)
    others = torch.argsort(mask.to(torch.uint8), stable=True)[: len(mask) - len(chosen)]
    return chosen, others


def take_rows(batch: Batch, rows: torch.Tensor) -> Batch:
    """The given rows of a batch."""
    return Batch(batch.images[rows], batch.labels[rows], batch.index[rows])


def concat_batches(first: Batch, second: Batch) -> Batch:
    """One batch holding both, so a single forward pass serves two losses."""
    return Batch(
        torch.cat([first.images, second.images]),
        torch.cat([first.labels, second.labels]),
        torch.cat([first.index, second.index]),
    )


def method_rows(
    data: UnlearnData, rows: torch.Tensor, params: MethodParams, context: Context
) -> EpochBatches:
    """Per-epoch shuffled batches of the given training rows, in the method's augmentation."""
    return rows_batches(context.engine, data.dataset, rows, params, context.augment_mode(params))


def paired_batches(data: UnlearnData, params: MethodParams, context: Context) -> EpochBatches:
    """Per epoch: each retain batch joined with the next forget batch (the forget set cycles)."""
    forget_batches = method_rows(data, data.forget_index, params, context)
    retain_batches = method_rows(data, data.retain_index, params, context)

    def make(epoch: int, generator: torch.Generator) -> tuple[Iterator[Batch], int]:
        def joined() -> Iterator[Batch]:
            forget = forget_batches(epoch, generator)[0]
            for retain_batch in retain_batches(epoch, generator)[0]:
                forget_batch = next(forget, None)
                if forget_batch is None:
                    forget = forget_batches(epoch, generator)[0]
                    forget_batch = next(forget)
                yield concat_batches(retain_batch, forget_batch)

        return joined(), n_batches(len(data.retain_index), params.batch_size)

    return make


def fit_method(
    model: nn.Module,
    params: MethodParams,
    context: Context,
    epoch_batches: EpochBatches,
    epoch_loss: EpochLoss,
    after_step: Callable[[], None] | None = None,
    phase: str | None = None,
    epoch_step: EpochStep | None = None,
    schedule_steps: int | None = None,
    reports: bool = True,
) -> nn.Module:
    """Run the one fit loop for a method (or one `phase` of it): its recipe, seed and resumable
    state; the epochs an interrupted run already did count in its run time. `on_epoch` sees
    each epoch of the phases that `report` (a method's last phase gives its model; UNSIR's
    impair phase, which deliberately breaks the model, does not report)."""
    result = fit(
        model,
        params,
        context.engine,
        epoch_batches,
        epoch_loss,
        context.seed,
        epoch_step=epoch_step,
        schedule_steps=schedule_steps,
        after_step=after_step,
        state_path=context.phase_state(phase),
        description=context.name if phase is None else f"{context.name} {phase}",
        on_epoch=context.on_epoch if reports else None,
    )
    context.earlier_seconds += result.resumed_seconds
    return result.model


def frozen_copy(model: nn.Module, engine: Engine) -> nn.Module:
    """A frozen copy of `model` on the engine's device, in eval mode: the teacher of the
    distillation methods, the attacked original of Boundary Shrink."""
    frozen = engine.prepare(copy.deepcopy(model)).eval()
    frozen.requires_grad_(False)
    return frozen


def sample_rows(rows: torch.Tensor, limit: int | None, generator: torch.Generator) -> torch.Tensor:
    """At most `limit` of the rows, drawn at random; all of them when they fit (or no limit)."""
    if limit is None or len(rows) <= limit:
        return rows
    order = torch.randperm(len(rows), generator=generator, device=generator.device)
    return rows[order[:limit].cpu()]
