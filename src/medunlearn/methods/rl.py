"""RL (random labels): forget samples get fresh uniform random labels each batch, plus retain CE."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain

import torch
import torch.nn.functional as F
from torch import nn

from medunlearn.engine import Batch, LossFn, n_batches
from medunlearn.methods.base import (
    Context,
    MethodParams,
    UnlearnData,
    random_labels,
    retain_loss,
    run_epochs,
)
from medunlearn.methods.registry import register

LOADERS = ("mixed", "sequential")


@dataclass
class RLParams(MethodParams):
    """loader: `mixed` shuffles relabelled forget and retain samples into one loader;
    `sequential` makes each epoch a pass over the forget set, then one over the retain set."""

    loader: str = "mixed"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.loader not in LOADERS:
            raise ValueError(f"unknown RL loader '{self.loader}'; choose one of {LOADERS}")


def relabelled_loss(
    data: UnlearnData, params: MethodParams, context: Context, generator: torch.Generator
) -> LossFn:
    """CE where forget rows of each batch get new random labels and retain rows keep theirs."""
    is_forget = data.is_forget.to(context.engine.device)
    retain_ce = retain_loss(data, params, context.engine.device)

    def loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        forget = is_forget[batch.index]
        targets = torch.where(
            forget, random_labels(batch.labels, data.n_classes, generator), batch.labels
        )
        n_forget = int(forget.sum())
        parts = []
        if n_forget:
            parts.append(n_forget * F.cross_entropy(logits[forget], targets[forget]))
        if n_forget < len(targets):
            parts.append((len(targets) - n_forget) * retain_ce(logits[~forget], targets[~forget]))
        return sum(parts) / len(targets)

    return loss


def rl_batches(data: UnlearnData, params: RLParams, context: Context):
    """The per-epoch batch stream of the chosen loader schedule (validated by RLParams)."""
    engine, split, size = context.engine, data.dataset.train, params.batch_size
    augment = context.augment(params)

    def make(_epoch: int, generator: torch.Generator) -> tuple[Iterator[Batch], int]:
        if params.loader == "mixed":
            rows = torch.cat([data.forget_index, data.retain_index])
            return engine.batches(split, rows, size, generator, augment), n_batches(len(rows), size)
        forget = engine.batches(split, data.forget_index, size, generator, augment)
        retain = engine.batches(split, data.retain_index, size, generator, augment)
        total = n_batches(len(data.forget_index), size) + n_batches(len(data.retain_index), size)
        return chain(forget, retain), total

    return make


@register("rl", RLParams, "random labels on forget, cross-entropy on retain")
def random_label(model: nn.Module, data: UnlearnData, params: RLParams, context: Context):
    """Train on relabelled forget samples together with retain samples."""
    return run_epochs(
        model,
        params,
        context,
        rl_batches(data, params, context),
        lambda _epoch, generator: relabelled_loss(data, params, context, generator),
    )
