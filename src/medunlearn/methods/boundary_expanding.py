"""Boundary Expanding (Chen et al., CVPR 2023): widen the classifier head by one shadow class,
fine-tune the forget samples into it, then prune the shadow neuron away."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from medunlearn.config import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, ConfigError, constrained
from medunlearn.engine import Batch
from medunlearn.methods.base import Context, MethodParams, UnlearnData, fit_method, method_rows
from medunlearn.methods.registry import register
from medunlearn.models import last_linear, replace_submodule

# the authors' `init_params` draws every Linear weight from N(0, 0.001^2), biases 0
SHADOW_STD = 1e-3


@dataclass
class BoundaryExpandingParams(MethodParams):
    """Defaults of the authors' code (Boundary-Unlearning-Code): 10 epochs over the forget set,
    SGD lr 1e-5, momentum 0.9, no weight decay, batch 64; the whole network is trained."""

    epochs: int = constrained(10, NON_NEGATIVE)
    lr: float = constrained(1e-5, POSITIVE)
    batch_size: int = constrained(64, AT_LEAST_ONE)
    weight_decay: float = constrained(0.0, NON_NEGATIVE)


def linear_like(head: nn.Linear, out_features: int) -> nn.Linear:
    """A Linear with `head`'s inputs, bias, device and dtype and `out_features` outputs."""
    weight = head.weight
    bias = head.bias is not None
    return nn.Linear(head.in_features, out_features, bias, weight.device, weight.dtype)


def widen(head: nn.Linear, generator: torch.Generator) -> nn.Linear:
    """The head with one more output: the first rows are the head's, the shadow row is drawn as
    the authors initialise a Linear (weight N(0, 0.001^2), bias 0)."""
    wide = linear_like(head, head.out_features + 1)
    shadow = torch.randn(head.in_features, generator=generator, device=generator.device)
    with torch.no_grad():
        wide.weight[:-1] = head.weight
        wide.weight[-1] = SHADOW_STD * shadow.to(head.weight)
        if head.bias is not None:
            wide.bias[:-1] = head.bias
            wide.bias[-1] = 0
    return wide


def prune(wide: nn.Linear) -> nn.Linear:
    """The head without its last (shadow) output: the other rows as they were trained."""
    head = linear_like(wide, wide.out_features - 1)
    with torch.no_grad():
        head.weight.copy_(wide.weight[:-1])
        if wide.bias is not None:
            head.bias.copy_(wide.bias[:-1])
    return head


@register(
    "boundary-expanding",
    BoundaryExpandingParams,
    "fine-tune forget samples into a shadow class, then remove its output neuron",
)
def boundary_expanding(
    model: nn.Module, data: UnlearnData, params: BoundaryExpandingParams, context: Context
) -> nn.Module:
    """CE of every forget sample towards the shadow class C on the widened model; the returned
    model has the input's architecture (C outputs). Any forget set (class or random) is served."""
    model = context.engine.prepare(model)
    name, head = last_linear(model)
    if head.out_features != data.n_classes:
        raise ConfigError(
            f"boundary-expanding: the model's last Linear ({name}) has {head.out_features} "
            f"outputs, but {data.dataset.name} has {data.n_classes} classes"
        )
    replace_submodule(model, name, widen(head, context.engine.generator(context.seed)))
    shadow = data.n_classes

    def loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        return F.cross_entropy(logits, torch.full_like(batch.labels, shadow))

    batches = method_rows(data, data.forget_index, params, context)
    model = fit_method(model, params, context, batches, lambda *_: loss)
    replace_submodule(model, name, prune(model.get_submodule(name)))
    return model
