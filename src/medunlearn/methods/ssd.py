"""SSD (selective synaptic dampening, Foster et al., AAAI 2024): shrink the weights far more
important to the forget set than to the whole training set; no gradient step."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medunlearn.config import AT_LEAST_ONE, NON_NEGATIVE, AugMode, constrained
from medunlearn.methods.base import Context, UnlearnData
from medunlearn.methods.importance import (
    Grads,
    ImportanceParams,
    row_batches,
    squared_gradients,
    trainable,
)
from medunlearn.methods.registry import register


@dataclass
class SSDParams(ImportanceParams):
    """alpha: the paper's selection weight α (a weight is dampened where its forget importance
    exceeds α times its importance on the full training set); dampening: the paper's λ (the
    dampening constant). Defaults are the authors' for ResNet-18 (α = 10, λ = 1), with their
    batch size 128 and importances on un-augmented images (their `transform_unlearning`)."""

    batch_size: int = constrained(128, AT_LEAST_ONE)
    augment: AugMode | None = "none"
    alpha: float = constrained(10.0, NON_NEGATIVE)
    dampening: float = constrained(1.0, NON_NEGATIVE)


def ssd_importances(
    model: nn.Module, data: UnlearnData, params: SSDParams, context: Context
) -> tuple[Grads, Grads]:
    """(I_D, I_f): the importances on the full training set (forget + retain, never the
    images earlier requests forgot) and on the forget set, each the mean over batches of the squared gradient of the batch's cross-entropy."""
    engine = context.engine
    generator = engine.generator(context.seed)
    every = data.train_index
    forget_batches = row_batches(data, data.forget_index, params, context, generator)
    forget = squared_gradients(model, forget_batches, engine)
    full = squared_gradients(model, row_batches(data, every, params, context, generator), engine)
    return full, forget


@torch.no_grad()
def dampen(model: nn.Module, full: Grads, forget: Grads, alpha: float, dampening: float) -> None:
    """theta <- min(dampening * I_D / I_f, 1) * theta where I_f > alpha * I_D; every other
    weight keeps its exact value."""
    for name, p in trainable(model).items():
        selected = forget[name] > alpha * full[name]
        factor = (dampening * full[name] / forget[name]).clamp(max=1)
        p.copy_(torch.where(selected, p * factor, p))


@register(
    "ssd",
    SSDParams,
    "dampen weights far more important to the forget set (no training)",
    epochs=None,
)
def ssd(model: nn.Module, data: UnlearnData, params: SSDParams, context: Context) -> nn.Module:
    """Importances in eval mode on the forget set and the full training set, then dampening."""
    model = context.engine.prepare(model)
    full, forget = ssd_importances(model, data, params, context)
    dampen(model, full, forget, params.alpha, params.dampening)
    return model
