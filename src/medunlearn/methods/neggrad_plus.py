"""NegGrad+: alpha * CE(retain) - (1 - alpha) * CE(forget), on paired batches."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from medunlearn.config import NON_NEGATIVE, UNIT, constrained
from medunlearn.engine import Batch
from medunlearn.methods.base import (
    Context,
    MethodParams,
    UnlearnData,
    fit_method,
    paired_batches,
    retain_loss,
)
from medunlearn.methods.registry import register


@dataclass
class NegGradPlusParams(MethodParams):
    """alpha weighs the retain term; 1 - alpha the (negated) forget term."""

    epochs: int = constrained(5, NON_NEGATIVE)
    alpha: float = constrained(0.99, UNIT)


@register("neggrad+", NegGradPlusParams, "descend on retain while ascending on forget")
def neggrad_plus(
    model: nn.Module, data: UnlearnData, params: NegGradPlusParams, context: Context
) -> nn.Module:
    """Each step: a retain batch and a forget batch in one forward pass, two weighted terms."""
    engine = context.engine
    is_forget = data.is_forget.to(engine.device)
    retain_ce = retain_loss(data, params, engine.device)

    def loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        forget = is_forget[batch.index]
        kept = retain_ce(logits[~forget], batch.labels[~forget])
        dropped = F.cross_entropy(logits[forget], batch.labels[forget])
        return params.alpha * kept - (1 - params.alpha) * dropped

    batches = paired_batches(data, params, context)
    return fit_method(model, params, context, batches, lambda *_: loss)
