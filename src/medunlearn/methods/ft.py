"""FT: fine-tune on the retain set only (cross-entropy, small learning rate)."""

from __future__ import annotations

from torch import nn

from medunlearn.methods.base import (
    Context,
    MethodParams,
    UnlearnData,
    retain_loss,
    rows_batches,
    run_epochs,
)
from medunlearn.methods.registry import register


@register("ft", MethodParams, "fine-tune on the retain set")
def fine_tune(
    model: nn.Module, data: UnlearnData, params: MethodParams, context: Context
) -> nn.Module:
    """Cross-entropy on retain samples for `epochs` epochs."""
    loss = retain_loss(data, params, context.engine.device)
    batches = rows_batches(context, data, data.retain_index, params)
    return run_epochs(model, params, context, batches, lambda *_: lambda lg, b: loss(lg, b.labels))
