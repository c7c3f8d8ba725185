"""RL (random labels): forget samples get fresh uniform random labels each batch, plus retain CE."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from medunlearn.engine import Batch, LossFn
from medunlearn.methods.base import (
    Context,
    MethodParams,
    UnlearnData,
    fit_method,
    method_rows,
    random_labels,
    retain_loss,
    split_rows,
)
from medunlearn.methods.registry import register
from medunlearn.training import EpochBatches


@dataclass
class RLParams(MethodParams):
    """loader: `mixed` shuffles relabelled forget and retain samples into one loader;
    `sequential` makes each epoch a pass over the forget set, then one over the retain set."""

    loader: Literal["mixed", "sequential"] = "mixed"


def relabelled_loss(
    data: UnlearnData, params: MethodParams, context: Context, generator: torch.Generator
) -> LossFn:
    """CE where forget rows of each batch get new random labels and retain rows keep theirs;
    the parts' row counts are lengths on the host (`split_rows`), never read from the device."""
    is_forget = data.is_forget.to(context.engine.device)
    retain_ce = retain_loss(data, params, context.engine.device)

    def loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        forget = is_forget[batch.index]
        targets = torch.where(
            forget, random_labels(batch.labels, data.n_classes, generator), batch.labels
        )
        forget_rows, retain_rows = split_rows(forget)
        parts = []
        if len(forget_rows):
            ce = F.cross_entropy(logits[forget_rows], targets[forget_rows])
            parts.append(len(forget_rows) * ce)
        if len(retain_rows):
            ce = retain_ce(logits[retain_rows], targets[retain_rows])
            parts.append(len(retain_rows) * ce)
        return sum(parts) / len(targets)

    return loss


def rl_batches(data: UnlearnData, params: RLParams, context: Context) -> EpochBatches:
    """The per-epoch batch stream of the chosen loader schedule."""
    if params.loader == "mixed":
        rows = torch.cat([data.forget_index, data.retain_index])
        return method_rows(data, rows, params, context)
    forget = method_rows(data, data.forget_index, params, context)
    retain = method_rows(data, data.retain_index, params, context)

    def make(epoch: int, generator: torch.Generator) -> tuple[Iterator[Batch], int]:
        forget_batches, n_forget = forget(epoch, generator)
        retain_batches, n_retain = retain(epoch, generator)
        return chain(forget_batches, retain_batches), n_forget + n_retain

    return make


@register("rl", RLParams, "random labels on forget, cross-entropy on retain")
def random_label(model: nn.Module, data: UnlearnData, params: RLParams, context: Context):
    """Train on relabelled forget samples together with retain samples."""
    return fit_method(
        model,
        params,
        context,
        rl_batches(data, params, context),
        lambda _epoch, generator: relabelled_loss(data, params, context, generator),
    )
