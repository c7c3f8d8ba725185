"""l1-sparse: fine-tune on retain with an L1 penalty that decays linearly to zero."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medunlearn.config import NON_NEGATIVE, constrained
from medunlearn.engine import Batch
from medunlearn.methods.base import (
    Context,
    MethodParams,
    UnlearnData,
    fit_method,
    method_rows,
    retain_loss,
)
from medunlearn.methods.registry import register


@dataclass
class L1SparseParams(MethodParams):
    """alpha: strength of the L1 penalty at the first epoch."""

    alpha: float = constrained(5e-4, NON_NEGATIVE)


def l1_norm(model: nn.Module) -> torch.Tensor:
    """||theta||_1 over every parameter of the model."""
    return sum(p.abs().sum() for p in model.parameters())


@register("l1-sparse", L1SparseParams, "fine-tune with a decaying L1 penalty")
def l1_sparse(
    model: nn.Module, data: UnlearnData, params: L1SparseParams, context: Context
) -> nn.Module:
    """CE(retain) + alpha * (1 - epoch / E) * ||theta||_1."""
    ce = retain_loss(data, params, context.engine.device)

    def epoch_loss(epoch: int, _generator: torch.Generator):
        strength = params.alpha * (1 - epoch / params.epochs)

        def loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
            return ce(logits, batch.labels) + strength * l1_norm(model)

        return loss

    batches = method_rows(data, data.retain_index, params, context)
    return fit_method(model, params, context, batches, epoch_loss)
