"""Gradient statistics over training rows for the methods without gradient epochs (SSD, Fisher
forgetting, influence unlearning): squared batch gradients, summed and per-sample gradients and
the expected diagonal Fisher, all on the model in eval mode, as their authors compute them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from medunlearn.augment import build_augment
from medunlearn.config import AT_LEAST_ONE, AugMode, Checked, constrained
from medunlearn.engine import Batch, Engine
from medunlearn.methods.base import Context, UnlearnData

Grads = dict[str, torch.Tensor]
SampleGrads = Callable[[torch.Tensor, torch.Tensor], Grads]


@dataclass
class ImportanceParams(Checked):
    """The passes over training rows: batch size and augmentation (None: the training recipe's)."""

    batch_size: int = constrained(256, AT_LEAST_ONE)
    augment: AugMode | None = None


def trainable(model: nn.Module) -> dict[str, nn.Parameter]:
    """The parameters a method may change, by name, in `named_parameters` order."""
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def n_parameters(model: nn.Module) -> int:
    """How many numbers the trainable parameters hold."""
    return sum(p.numel() for p in trainable(model).values())


def row_batches(
    data: UnlearnData,
    rows: torch.Tensor,
    params: ImportanceParams,
    context: Context,
    generator: torch.Generator,
) -> Iterator[Batch]:
    """Shuffled batches of the given training rows in the method's augmentation."""
    augment = build_augment(context.augment_mode(params))
    return context.engine.batches(data.dataset.train, rows, params.batch_size, generator, augment)


def squared_gradients(model: nn.Module, batches: Iterable[Batch], engine: Engine) -> Grads:
    """SSD's importance: the squared gradient of each batch's mean cross-entropy, summed over the
    batches and divided by their number (a mean over batches, not over samples)."""
    model.eval()
    named = trainable(model)
    totals = {name: torch.zeros_like(p) for name, p in named.items()}
    count = 0
    for batch in batches:
        model.zero_grad(set_to_none=True)
        with engine.autocast():
            loss = F.cross_entropy(model(batch.images), batch.labels)
        loss.backward()
        for name, p in named.items():
            if p.grad is not None:
                totals[name].addcmul_(p.grad, p.grad)
        count += 1
    model.zero_grad(set_to_none=True)
    return {name: total / max(count, 1) for name, total in totals.items()}


def gradient_sum(model: nn.Module, batches: Iterable[Batch], engine: Engine) -> torch.Tensor:
    """The flat gradient (trainable parameters in order) of the cross-entropy summed over rows."""
    model.eval()
    model.zero_grad(set_to_none=True)
    for batch in batches:
        with engine.autocast():
            loss = F.cross_entropy(model(batch.images), batch.labels, reduction="sum")
        loss.backward()
    named = trainable(model).values()
    total = torch.cat(
        [(torch.zeros_like(p) if p.grad is None else p.grad).flatten() for p in named]
    )
    model.zero_grad(set_to_none=True)
    return total


def per_sample_gradients(model: nn.Module) -> SampleGrads:
    """(images, labels) -> each sample's gradient of its cross-entropy, stacked per parameter.

    torch.func (functional_call + vmap + grad) on the model in eval mode, so batch norm uses
    its running statistics and the samples stay independent. Float32 without autocast: vmap's
    batch-norm rule refuses bf16 activations next to float32 statistics. The weights are the
    model's at the time of the call.
    """
    model.eval()
    weights = {name: p.detach() for name, p in trainable(model).items()}

    def loss(weights: Grads, image: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        logits = functional_call(model, weights, (image.unsqueeze(0),))
        return F.cross_entropy(logits, label.unsqueeze(0))

    batched = vmap(grad(loss), in_dims=(None, 0, 0))
    return lambda images, labels: batched(weights, images, labels)


def flat_samples(grads: Grads) -> torch.Tensor:
    """Per-sample gradients as one (samples, parameters) matrix, parameters in order."""
    return torch.cat([g.flatten(1) for g in grads.values()], 1)


def expected_fisher(model: nn.Module, batches: Iterable[Batch], n_classes: int) -> Grads:
    """Golatkar's diagonal Fisher: the mean over samples of sum_y p(y | x) g_y(x)^2, where g_y is
    the gradient of the sample's cross-entropy against label y and p the model's prediction."""
    sample_grads = per_sample_gradients(model)
    totals = {name: torch.zeros_like(p) for name, p in trainable(model).items()}
    count = 0
    for batch in batches:
        with torch.no_grad():
            probs = model(batch.images).float().softmax(-1)
        for label in range(n_classes):
            labels = torch.full_like(batch.labels, label)
            for name, g in sample_grads(batch.images, labels).items():
                totals[name] += torch.tensordot(probs[:, label], g.square(), dims=1)
        count += len(batch.index)
    return {name: total / max(count, 1) for name, total in totals.items()}
