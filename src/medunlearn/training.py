"""The one fit loop (SGD, per-epoch schedule, resume, optional validation selection) that trains
the original model, Retrain and every gradient-based unlearning method."""

from __future__ import annotations

import copy
import time
import typing
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medunlearn.augment import build_augment
from medunlearn.config import Recipe, Schedule
from medunlearn.data import Dataset
from medunlearn.engine import Batch, Engine, LossFn, n_batches
from medunlearn.metrics.accuracy import selection_score
from medunlearn.store import atomic_save, cache_key, load_data_file

SCHEDULES: tuple[str, ...] = typing.get_args(Schedule)

# one optimisation step on one batch (model, loss, optimizer, batch, engine): its loss, detached
Step = Callable[[nn.Module, LossFn, torch.optim.Optimizer, Batch, Engine], torch.Tensor]
# an epoch's batches and their count, its loss and its step, each given the epoch and generator
EpochBatches = Callable[[int, torch.Generator], tuple[Iterator[Batch], int]]
EpochLoss = Callable[[int, torch.Generator], LossFn]
EpochStep = Callable[[int, torch.Generator], Step]


@dataclass
class FitResult:
    """The fitted model (the best epoch on validation when scored), its history and run time.

    `seconds` is the total over every run of this fit, `resumed_seconds` the part that earlier,
    interrupted runs spent (read back from the resumable state). `difficulty` (set by
    `train_model`) is each training row's mean loss over the epochs."""

    model: nn.Module
    best_epoch: int
    best_val: float | None
    seconds: float
    resumed_seconds: float = 0.0
    history: list[dict] = field(default_factory=list)
    difficulty: np.ndarray | None = None


class Carried(typing.Protocol):
    """What a fit's caller accumulates over the epochs besides the model: saved in every
    resumable state and put back on resume, so a resumed fit ends as an uninterrupted one."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The accumulated tensors (on the CPU)."""
        ...

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Put saved tensors back."""
        ...


class SampleLoss:
    """Per training row, the sum over epochs of its cross-entropy (unweighted) in the training
    forward and how often it was trained on: a difficulty (memorisation) proxy read off the
    logits the loss already has, so it costs no extra pass. Accumulated on the device with
    `index_add_`, never synchronised during an epoch."""

    def __init__(self, n_rows: int, device: torch.device) -> None:
        self.total = torch.zeros(n_rows, device=device)
        self.count = torch.zeros(n_rows, device=device)

    @torch.no_grad()
    def add(self, logits: torch.Tensor, batch: Batch) -> None:
        """Add one batch's per-sample losses to its rows."""
        losses = F.cross_entropy(logits.detach().float(), batch.labels, reduction="none")
        self.total.index_add_(0, batch.index, losses)
        self.count.index_add_(0, batch.index, torch.ones_like(losses))

    def mean(self) -> np.ndarray:
        """Each row's mean training loss over the epochs (higher: harder; NaN where untrained)."""
        return (self.total / self.count).cpu().numpy()

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The sums and counts so far, on the CPU."""
        return {"total": self.total.cpu(), "count": self.count.cpu()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        """Restore saved sums and counts."""
        self.total.copy_(state["total"])
        self.count.copy_(state["count"])


def class_weights(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """w_c = N / (C * N_c): classes weigh equally in the loss (absent classes get 0)."""
    counts = torch.bincount(labels, minlength=n_classes).float()
    weights = labels.numel() / (n_classes * counts)
    return torch.where(counts > 0, weights, torch.zeros_like(weights))


def cross_entropy(
    labels: torch.Tensor, n_classes: int, class_weighted: bool, device: torch.device
) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """CE(logits, labels), class-weighted (w_c = N / (C N_c) over `labels`, the labels of the
    rows trained on) when asked."""
    weight = class_weights(labels, n_classes).to(device) if class_weighted else None

    def loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, targets, weight=weight)

    return loss


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, epochs: int):
    """Per-epoch learning-rate schedule: cosine to 0, x0.1 at 50% and 75%, or constant."""
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    if schedule == "multistep":
        milestones = [epochs // 2, (3 * epochs) // 4]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


def resume_state(path: Path | None, key: str) -> dict | None:
    """The saved state of an interrupted run of this exact fit at `path`, if any."""
    if path is None or not path.is_file():
        return None
    saved = load_data_file(path)
    return saved if saved.get("recipe") == key else None


Loop = tuple[nn.Module, torch.optim.Optimizer, typing.Any, torch.Generator]


def save_state(path: Path, key: str, epoch: int, loop: Loop, seconds: float, **extra) -> None:
    """After an epoch: what a resumed run needs (model, optimizer, schedule, generator), its
    key, the epochs done and the seconds spent, written atomically."""
    model, optimizer, scheduler, generator = loop
    state = {
        "recipe": key,
        "epoch": epoch,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "generator": generator.get_state(),
        "seconds": seconds,
        **extra,
    }
    atomic_save(path, state)


def restore(saved: dict, loop: Loop) -> None:
    """Put a saved state back into the model, optimizer, schedule and generator."""
    model, optimizer, scheduler, generator = loop
    model.load_state_dict(saved["model"])
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    generator.set_state(saved["generator"])


def sgd_step(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    engine: Engine,
) -> torch.Tensor:
    """Forward (bf16 autocast and torch.compile where enabled), loss, backward, SGD step."""
    with engine.autocast():
        loss = loss_fn(engine.forward(model, batch.images), batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.detach()


def train_one_epoch(
    model: nn.Module,
    loss_fn: LossFn,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[Batch],
    engine: Engine,
    epoch: int,
    *,
    step: Step = sgd_step,
    after_step: Callable[[], None] | None = None,
    description: str = "train",
    total: int | None = None,
) -> float:
    """One pass (epoch `epoch`, 0-based) over `batches`, a `step` per batch (then
    `after_step`); the mean loss. The losses are summed on the device and read once, so no
    step waits on the device."""
    model.train()
    loss_sum = torch.zeros((), device=engine.device)
    steps = 0
    with engine.progress.task(description or f"epoch {epoch + 1}", total) as task:
        for batch in batches:
            loss_sum += step(model, loss_fn, optimizer, batch, engine).float()
            if after_step is not None:
                after_step()
            steps += 1
            task.advance()
    return float(loss_sum) / max(steps, 1)


def _then(first: Callable[[], None] | None, second: Callable[[], None]) -> Callable[[], None]:
    """One hook calling `first` (when given), then `second`."""
    if first is None:
        return second

    def both() -> None:
        first()
        second()

    return both


def fit(
    model: nn.Module,
    recipe: Recipe,
    engine: Engine,
    epoch_batches: EpochBatches,
    epoch_loss: EpochLoss,
    seed: int,
    *,
    epoch_step: EpochStep | None = None,
    schedule_steps: int | None = None,
    after_step: Callable[[], None] | None = None,
    score: Callable[[nn.Module], float] | None = None,
    state_path: Path | None = None,
    state_key: str = "",
    description: str = "train",
    on_epoch: Callable[[int, nn.Module], None] | None = None,
    carried: Carried | None = None,
) -> FitResult:
    """SGD for `recipe.epochs` epochs through `train_one_epoch`; each epoch's batches, loss and
    (for a method with a step of its own, SFR-on) step come from the caller.

    The lr schedule runs over the epochs, stepped after each, or over `schedule_steps`
    optimiser steps, stepped after each step. With `score` (validation), the best-scoring
    epoch's weights are kept, else the last. With `state_path`, the state is saved after every
    epoch and an interrupted fit with the same `state_key` resumes from it, its earlier run
    time counted. `on_epoch(epoch, model)` sees the model after each epoch, before its state
    is saved (a tuning trial's pruning check, which may stop the fit by raising: a resume then
    redoes that epoch and its check). `carried` (what the caller's loss accumulates, e.g.
    per-sample losses) is saved and resumed with the state.
    """
    model = engine.prepare(model)
    optimizer = engine.sgd(model, recipe.lr, recipe.momentum, recipe.weight_decay)
    scheduler = make_scheduler(optimizer, recipe.schedule, schedule_steps or recipe.epochs)
    if schedule_steps is not None:
        after_step = _then(after_step, scheduler.step)
    generator = engine.generator(seed)
    # a state saved without the carried part cannot resume a fit that carries one
    key = cache_key(
        "fit", recipe, seed, state_key, schedule_steps,
        *([type(carried).__name__] if carried else []),
    )  # fmt: skip
    start, best_val, best_epoch, history, resumed = 0, None, recipe.epochs, [], 0.0
    best_state = None
    saved = resume_state(state_path, key)
    if saved is not None:
        restore(saved, (model, optimizer, scheduler, generator))
        start, best_val, best_epoch = saved["epoch"], saved["best_val"], saved["best_epoch"]
        best_state, history, resumed = saved["best_state"], saved["history"], saved["seconds"]
        if carried is not None:
            carried.load_state_dict(saved["carried"])
        engine.progress.log(f"{description}: resuming after epoch {start}/{recipe.epochs}")
    elapsed = resumed
    for epoch in range(start, recipe.epochs):
        began = time.perf_counter()
        batches, total = epoch_batches(epoch, generator)
        step = sgd_step if epoch_step is None else epoch_step(epoch, generator)
        loss = train_one_epoch(
            model, epoch_loss(epoch, generator), optimizer, batches, engine, epoch, step=step,
            after_step=after_step, description=f"{description} {epoch + 1}/{recipe.epochs}",
            total=total,
        )  # fmt: skip
        if schedule_steps is None:
            scheduler.step()
        entry = {"epoch": epoch + 1, "loss": loss}
        if score is not None:
            entry["val"] = val = score(model)
            if best_val is None or val > best_val:
                best_val, best_epoch = val, epoch + 1
                best_state = copy.deepcopy(model.state_dict())
        history.append(entry)
        elapsed += time.perf_counter() - began
        if on_epoch is not None:
            on_epoch(epoch + 1, model)
        if state_path is not None:
            loop = (model, optimizer, scheduler, generator)
            extra = {} if carried is None else {"carried": carried.state_dict()}
            save_state(state_path, key, epoch + 1, loop, elapsed, best_val=best_val,
                       best_epoch=best_epoch, best_state=best_state, history=history,
                       **extra)  # fmt: skip
    if best_state is not None:
        model.load_state_dict(best_state)
    return FitResult(model, best_epoch, best_val, elapsed, resumed, history)


def rows_batches(
    engine: Engine, dataset: Dataset, rows: torch.Tensor, recipe: Recipe, augment_mode: str
) -> EpochBatches:
    """Per-epoch shuffled, augmented batches of the given training rows."""
    augment = build_augment(augment_mode)

    def make(_epoch: int, generator: torch.Generator) -> tuple[Iterator[Batch], int]:
        batches = engine.batches(dataset.train, rows, recipe.batch_size, generator, augment)
        return batches, n_batches(len(rows), recipe.batch_size)

    return make


def train_model(
    model: nn.Module,
    dataset: Dataset,
    indices: torch.Tensor,
    recipe: Recipe,
    engine: Engine,
    seed: int,
    state_path: Path | None = None,
    description: str = "train",
    on_epoch: Callable[[int, nn.Module], None] | None = None,
) -> FitResult:
    """Supervised training on the training rows `indices` (the original model, Retrain): CE
    (class-weighted when asked), the best epoch on validation kept, resumable; `on_epoch` sees
    each epoch. The result's `difficulty` is each training row's mean loss over the epochs (NaN
    for rows not trained on)."""
    if len(indices) == 0:
        raise ValueError("cannot train on an empty set of samples")
    labels = dataset.train.labels[indices]
    ce = cross_entropy(labels, dataset.n_classes, recipe.class_weighted, engine.device)
    sample_loss = SampleLoss(len(dataset.train), engine.device)

    def loss_fn(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        sample_loss.add(logits, batch)
        return ce(logits, batch.labels)

    def validation(model: nn.Module) -> float:
        logits = engine.logits(model, dataset.val.images, "validation")
        return selection_score(logits, dataset.val.labels, dataset.task)

    result = fit(
        model,
        recipe,
        engine,
        rows_batches(engine, dataset, indices, recipe, recipe.augment or "none"),
        lambda *_: loss_fn,
        seed,
        score=validation,
        state_path=state_path,
        state_key=cache_key("rows", indices.tolist(), dataset.fingerprint),
        description=description,
        on_epoch=on_epoch,
        carried=sample_loss,
    )
    result.difficulty = sample_loss.mean()
    return result
