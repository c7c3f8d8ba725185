"""SCRUB (Kurmanji et al., NeurIPS 2023): the student moves away from a frozen teacher on forget
batches (max-steps) and stays close to it, with cross-entropy, on retain batches (min-steps)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain

import torch
import torch.nn.functional as F
from torch import nn

from medunlearn.config import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, FieldError, constrained
from medunlearn.engine import Batch, LossFn
from medunlearn.methods.base import (
    Context,
    MethodParams,
    UnlearnData,
    fit_method,
    frozen_copy,
    method_rows,
)
from medunlearn.methods.distillation import distill_kl, soft_targets
from medunlearn.methods.registry import register
from medunlearn.training import EpochBatches, class_weights


@dataclass
class SCRUBParams(MethodParams):
    """Defaults of the authors' CIFAR-10 / ResNet-18 run (meghdadk/SCRUB,
    large_scale_unlearning.ipynb): SGD lr 5e-4 (momentum 0.9, weight decay 5e-4, constant over
    3 epochs), max-steps in the first 2, KL at T = 4 weighted alpha 0.001, CE weighted gamma
    0.99; retain batches of 256 (`batch_size`), forget batches of 512 (`forget_batch_size`)."""

    epochs: int = constrained(3, NON_NEGATIVE)
    lr: float = constrained(5e-4, POSITIVE)
    msteps: int = constrained(2, NON_NEGATIVE)
    kd_temperature: float = constrained(4.0, POSITIVE)
    alpha: float = constrained(0.001, NON_NEGATIVE)
    gamma: float = constrained(0.99, NON_NEGATIVE)
    forget_batch_size: int = constrained(512, AT_LEAST_ONE)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.msteps > self.epochs:
            raise FieldError("msteps", f"must be <= epochs ({self.epochs})", self.msteps)


def scrub_batches(data: UnlearnData, params: SCRUBParams, context: Context) -> EpochBatches:
    """Per epoch: a pass over the forget set (max-steps, first `msteps` epochs only), then one
    over the retain set (min-steps), as in the authors' epoch loop."""
    forget_recipe = dataclasses.replace(params, batch_size=params.forget_batch_size)
    forget = method_rows(data, data.forget_index, forget_recipe, context)
    retain = method_rows(data, data.retain_index, params, context)

    def make(epoch: int, generator: torch.Generator) -> tuple[Iterator[Batch], int]:
        if epoch >= params.msteps:
            return retain(epoch, generator)
        forget_batches, n_forget = forget(epoch, generator)
        retain_batches, n_retain = retain(epoch, generator)
        return chain(forget_batches, retain_batches), n_forget + n_retain

    return make


def scrub_loss(
    teacher: nn.Module, data: UnlearnData, params: SCRUBParams, context: Context
) -> LossFn:
    """-KL on forget rows; alpha * KL + gamma * CE on retain rows (KL(teacher || student) at T,
    scaled by T^2 as the authors' DistillKL). Rows are weighted by masks, so a batch needs no
    host sync to find its kind; a pure batch gets exactly the authors' loss."""
    device = context.engine.device
    is_forget = data.is_forget.to(device)
    labels = data.dataset.train.labels[data.retain_index]
    weights = (
        class_weights(labels, data.n_classes)
        if params.class_weighted
        else torch.ones(data.n_classes)
    ).to(device)
    temperature = params.kd_temperature

    def loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        forget = is_forget[batch.index].float()
        retain = 1 - forget
        targets = soft_targets(teacher, batch.images, temperature)
        kl = distill_kl(logits, targets, temperature) * temperature**2
        ce = F.cross_entropy(logits.float(), batch.labels, reduction="none")
        row_weights = retain * weights[batch.labels]
        retain_ce = (row_weights * ce).sum() / row_weights.sum().clamp_min(1e-12)
        return ((params.alpha * retain - forget) * kl).mean() + params.gamma * retain_ce

    return loss


@register("scrub", SCRUBParams, "teacher-student: away from the teacher on forget, near on retain")
def scrub(model: nn.Module, data: UnlearnData, params: SCRUBParams, context: Context) -> nn.Module:
    """The student (the model) against a frozen copy of itself, the teacher, in one fit."""
    teacher = frozen_copy(model, context.engine)
    loss = scrub_loss(teacher, data, params, context)
    return fit_method(model, params, context, scrub_batches(data, params, context), lambda *_: loss)
