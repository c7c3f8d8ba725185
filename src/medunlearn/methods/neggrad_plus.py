"""NegGrad+: alpha * CE(retain) - (1 - alpha) * CE(forget), on paired batches."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from medunlearn.engine import Batch, n_batches
from medunlearn.methods.base import (
    Context,
    MethodParams,
    UnlearnData,
    paired_batches,
    retain_loss,
    run_epochs,
)
from medunlearn.methods.registry import register


@dataclass
class NegGradPlusParams(MethodParams):
    """alpha weighs the retain term; 1 - alpha the (negated) forget term."""

    epochs: int = 5
    alpha: float = 0.99

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"NegGrad+ alpha must lie in [0, 1], got {self.alpha}")


@register("neggrad+", NegGradPlusParams, "descend on retain while ascending on forget")
def neggrad_plus(
    model: nn.Module, data: UnlearnData, params: NegGradPlusParams, context: Context
) -> nn.Module:
    """Each step: a retain batch and a forget batch in one forward pass, two weighted terms."""
    engine = context.engine
    is_forget = data.is_forget.to(engine.device)
    retain_ce = retain_loss(data, params, engine.device)
    augment = context.augment(params)

    def loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        forget = is_forget[batch.index]
        kept = retain_ce(logits[~forget], batch.labels[~forget])
        dropped = F.cross_entropy(logits[forget], batch.labels[forget])
        return params.alpha * kept - (1 - params.alpha) * dropped

    def batches(_epoch: int, generator: torch.Generator):
        total = n_batches(len(data.retain_index), params.batch_size)
        return paired_batches(engine, data, params, generator, augment), total

    return run_epochs(model, params, context, batches, lambda *_: loss)
