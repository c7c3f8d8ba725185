"""FT: fine-tune on the retain set only (cross-entropy, small learning rate)."""

from __future__ import annotations

from torch import nn

from medunlearn.methods.base import (
    Context,
    MethodParams,
    UnlearnData,
    fit_method,
    method_rows,
    retain_loss,
)
from medunlearn.methods.registry import register


@register("ft", MethodParams, "fine-tune on the retain set")
def fine_tune(
    model: nn.Module, data: UnlearnData, params: MethodParams, context: Context
) -> nn.Module:
    """Cross-entropy on retain samples for `epochs` epochs."""
    loss = retain_loss(data, params, context.engine.device)
    batches = method_rows(data, data.retain_index, params, context)
    return fit_method(model, params, context, batches, lambda *_: lambda lg, b: loss(lg, b.labels))
