"""What every unlearning method shares: its inputs, hyper-parameters, losses and epoch loop."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from medunlearn.augment import AUG_MODES, Augment, build_augment
from medunlearn.config import ModelConfig, TrainConfig
from medunlearn.data import Dataset
from medunlearn.engine import Batch, Engine, LossFn, n_batches
from medunlearn.forget import ForgetSet
from medunlearn.store import Store
from medunlearn.training import SCHEDULES, class_weights, make_scheduler


@dataclass
class MethodParams:
    """Hyper-parameters every gradient-based method has (SGD as in the reference code)."""

    epochs: int = 10
    lr: float = 0.01
    batch_size: int = 256
    momentum: float = 0.9
    weight_decay: float = 5e-4
    lr_schedule: str = "constant"
    augment: str | None = None
    class_weighted: bool = False

    def __post_init__(self) -> None:
        check_common(self.epochs, self.lr, self.augment)
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")
        if self.lr_schedule not in SCHEDULES:
            raise ValueError(f"unknown lr_schedule '{self.lr_schedule}'; choose one of {SCHEDULES}")


def check_common(epochs: int | None, lr: float | None, augment: str | None) -> None:
    """Reject hyper-parameters no run can use: negative epochs, lr <= 0, unknown augmentation."""
    if epochs is not None and epochs < 0:
        raise ValueError(f"epochs must be 0 or more, got {epochs}")
    if lr is not None and lr <= 0:
        raise ValueError(f"lr must be positive, got {lr}")
    if augment is not None and augment not in AUG_MODES:
        raise ValueError(f"unknown augment '{augment}'; choose one of {AUG_MODES}")


@dataclass
class UnlearnData:
    """The data of one deletion: the dataset, the forget set and the original model."""

    dataset: Dataset
    forget_set: ForgetSet
    original: nn.Module | None = None

    @property
    def forget_index(self) -> torch.Tensor:
        """Training rows to forget."""
        return self.forget_set.forget_index

    @property
    def retain_index(self) -> torch.Tensor:
        """Training rows to keep."""
        return self.forget_set.retain_index

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
    """What a method may use besides its data: engine, seed, recipe, cache."""

    engine: Engine
    seed: int = 0
    train: TrainConfig | None = None
    model_config: ModelConfig | None = None
    store: Store | None = None
    state_path: Path | None = None
    name: str = "unlearn"

    def augment(self, params: MethodParams) -> Augment:
        """The method's augmentation: its own if set, else the training recipe's."""
        mode = params.augment or (self.train.augment if self.train else "none")
        return build_augment(mode)


def retain_loss(data: UnlearnData, params: MethodParams, device: torch.device):
    """Cross-entropy on retain samples, class-weighted (w_c = N / (C N_c)) when asked."""
    weight = None
    if params.class_weighted:
        labels = data.dataset.train.labels[data.retain_index]
        weight = class_weights(labels, data.n_classes).to(device)

    def loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, labels, weight=weight)

    return loss


def random_labels(labels: torch.Tensor, n_classes: int, generator: torch.Generator):
    """Labels drawn uniformly over all classes (a draw may equal the true label)."""
    return torch.randint(
        0, n_classes, labels.shape, generator=generator, device=generator.device
    ).to(labels.device)


def concat_batches(first: Batch, second: Batch) -> Batch:
    """One batch holding both, so a single forward pass serves two losses."""
    return Batch(
        torch.cat([first.images, second.images]),
        torch.cat([first.labels, second.labels]),
        torch.cat([first.index, second.index]),
    )


def paired_batches(
    engine: Engine,
    data: UnlearnData,
    params: MethodParams,
    generator: torch.Generator,
    augment: Augment,
) -> Iterator[Batch]:
    """Each retain batch joined with the next forget batch (the forget set cycles)."""
    split = data.dataset.train
    size = params.batch_size
    forget = engine.batches(split, data.forget_index, size, generator, augment)
    for retain_batch in engine.batches(split, data.retain_index, size, generator, augment):
        forget_batch = next(forget, None)
        if forget_batch is None:
            forget = engine.batches(split, data.forget_index, size, generator, augment)
            forget_batch = next(forget)
        yield concat_batches(retain_batch, forget_batch)


def run_epochs(
    model: nn.Module,
    params: MethodParams,
    context: Context,
    epoch_batches: Callable[[int, torch.Generator], tuple[Iterator[Batch], int]],
    epoch_loss: Callable[[int, torch.Generator], LossFn],
    after_step: Callable[[], None] | None = None,
) -> nn.Module:
    """SGD for `params.epochs` epochs; each epoch's batches and loss come from the method."""
    engine = context.engine
    model = engine.prepare(model)
    optimizer = engine.sgd(model, params.lr, params.momentum, params.weight_decay)
    scheduler = make_scheduler(optimizer, params.lr_schedule, params.epochs)
    generator = engine.generator(context.seed)
    for epoch in range(params.epochs):
        batches, total = epoch_batches(epoch, generator)
        engine.train_epoch(
            model,
            batches,
            optimizer,
            epoch_loss(epoch, generator),
            after_step,
            description=f"{context.name} {epoch + 1}/{params.epochs}",
            total=total,
        )
        scheduler.step()
    return model


def rows_batches(
    context: Context, data: UnlearnData, rows: torch.Tensor, params: MethodParams
) -> Callable[[int, torch.Generator], tuple[Iterator[Batch], int]]:
    """Per-epoch shuffled, augmented batches of the given training rows."""
    augment = context.augment(params)

    def make(_epoch: int, generator: torch.Generator) -> tuple[Iterator[Batch], int]:
        batches = context.engine.batches(
            data.dataset.train, rows, params.batch_size, generator, augment
        )
        return batches, n_batches(len(rows), params.batch_size)

    return make
