"""GA (gradient ascent, NegGrad): minimise -CE on the forget set only."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import nn

from medunlearn.config import NON_NEGATIVE, POSITIVE, constrained
from medunlearn.methods.base import Context, MethodParams, UnlearnData, fit_method, method_rows
from medunlearn.methods.registry import register


@dataclass
class GAParams(MethodParams):
    """GA is very sensitive to the learning rate: the reference tunes it in [1e-5, 1e-3]."""

    epochs: int = constrained(5, NON_NEGATIVE)
    lr: float = constrained(1e-4, POSITIVE)


@register("ga", GAParams, "gradient ascent on the forget set")
def gradient_ascent(
    model: nn.Module, data: UnlearnData, params: GAParams, context: Context
) -> nn.Module:
    """Ascend the cross-entropy of forget samples with their true labels."""
    batches = method_rows(data, data.forget_index, params, context)
    return fit_method(
        model, params, context, batches, lambda *_: lambda lg, b: -F.cross_entropy(lg, b.labels)
    )
