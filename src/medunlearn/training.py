"""Supervised training of the original model and of Retrain: SGD, schedule, val selection, resume."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from medunlearn.augment import build_augment
from medunlearn.config import TrainConfig, fingerprint
from medunlearn.data import Dataset
from medunlearn.engine import Batch, Engine, n_batches
from medunlearn.metrics.accuracy import selection_score
from medunlearn.store import atomic_save, load_data_file

SCHEDULES = ("cosine", "multistep", "constant")


@dataclass
class TrainResult:
    """The model selected on validation, with its history and time."""

    model: nn.Module
    best_epoch: int
    best_val: float
    seconds: float
    history: list[dict] = field(default_factory=list)


def class_weights(labels: torch.Tensor, n_classes: int) -> torch.Tensor:
    """w_c = N / (C * N_c): classes weigh equally in the loss (absent classes get 0)."""
    counts = torch.bincount(labels, minlength=n_classes).float()
    weights = labels.numel() / (n_classes * counts)
    return torch.where(counts > 0, weights, torch.zeros_like(weights))


def make_scheduler(optimizer: torch.optim.Optimizer, schedule: str, epochs: int):
    """Per-epoch learning-rate schedule: cosine to 0, x0.1 at 50% and 75%, or constant."""
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(epochs, 1))
    if schedule == "multistep":
        milestones = [epochs // 2, (3 * epochs) // 4]
        return torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=0.1)
    if schedule == "constant":
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    raise ValueError(f"unknown train.schedule '{schedule}'; choose one of {SCHEDULES}")


def _resume_state(path: Path | None, recipe: str) -> dict | None:
    """The saved state of an interrupted run of this exact recipe at `path`, if any."""
    if path is None or not path.is_file():
        return None
    saved = load_data_file(path)
    return saved if saved.get("recipe") == recipe else None


def train_model(
    model: nn.Module,
    dataset: Dataset,
    indices: torch.Tensor,
    config: TrainConfig,
    engine: Engine,
    seed: int,
    state_path: Path | None = None,
    description: str = "train",
) -> TrainResult:
    """Train on the training rows `indices`, keep the best epoch on validation, resume from state."""
    if len(indices) == 0:
        raise ValueError("cannot train on an empty set of samples")
    model = engine.prepare(model)
    optimizer = engine.sgd(model, config.lr, config.momentum, config.weight_decay)
    scheduler = make_scheduler(optimizer, config.schedule, config.epochs)
    generator = engine.generator(seed)
    augment = build_augment(config.augment)
    labels = dataset.train.labels[indices]
    weight = class_weights(labels, dataset.n_classes) if config.class_weighted else None
    weight = None if weight is None else weight.to(engine.device)
    start, best_val, best_epoch, history, elapsed = 0, -1.0, -1, [], 0.0
    best_state = copy.deepcopy(model.state_dict())
    recipe = fingerprint(config, seed, indices.tolist(), dataset.fingerprint)
    saved = _resume_state(state_path, recipe)
    if saved is not None:
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        generator.set_state(saved["generator"])
        start, best_val, best_epoch = saved["epoch"], saved["best_val"], saved["best_epoch"]
        best_state, history, elapsed = saved["best_state"], saved["history"], saved["seconds"]
        engine.progress.log(f"{description}: resuming after epoch {start}/{config.epochs}")

    def loss_fn(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(logits, batch.labels, weight=weight)

    total = n_batches(len(indices), config.batch_size)
    for epoch in range(start, config.epochs):
        began = time.perf_counter()
        batches = engine.batches(dataset.train, indices, config.batch_size, generator, augment)
        label = f"{description} {epoch + 1}/{config.epochs}"
        loss = engine.train_epoch(
            model, batches, optimizer, loss_fn, description=label, total=total
        )
        scheduler.step()
        val_logits = engine.logits(model, dataset.val.images, "validation")
        val = selection_score(val_logits, dataset.val.labels, dataset.task)
        elapsed += time.perf_counter() - began
        history.append({"epoch": epoch + 1, "loss": loss, "val": val})
        if val > best_val:
            best_val, best_epoch = val, epoch + 1
            best_state = copy.deepcopy(model.state_dict())
        if state_path is not None:
            atomic_save(
                state_path,
                {
                    "recipe": recipe,
                    "epoch": epoch + 1,
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "generator": generator.get_state(),
                    "best_val": best_val,
                    "best_epoch": best_epoch,
                    "best_state": best_state,
                    "history": history,
                    "seconds": elapsed,
                },
            )
    model.load_state_dict(best_state)
    return TrainResult(model, best_epoch, best_val, elapsed, history)
