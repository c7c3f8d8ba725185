"""Bad Teacher (Chundawat et al., AAAI 2023): the student is distilled from the original model on
retain samples and from a randomly initialised, incompetent teacher on forget samples."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medunlearn.config import NON_NEGATIVE, POSITIVE, ConfigError, Interval, constrained
from medunlearn.engine import Batch, LossFn
from medunlearn.methods.base import (
    Context,
    MethodParams,
    UnlearnData,
    fit_method,
    frozen_copy,
    method_rows,
    sample_rows,
)
from medunlearn.methods.distillation import distill_kl, soft_targets
from medunlearn.methods.registry import register
from medunlearn.methods.retrain import fresh_model


@dataclass
class BadTeacherParams(MethodParams):
    """Defaults of the authors' run (vikram2000b/bad-teaching-unlearning, CIFARSuper20
    notebook): 1 epoch, batches of 256, KL at T = 1, a random 30% of the retain set. They train
    with Adam (lr 1e-4, no weight decay); our loop is SGD: lr 1e-3, momentum 0.9, no weight
    decay moved a BloodMNIST CNN about as far as their Adam did (lr 1e-2 wrecked it)."""

    epochs: int = constrained(1, NON_NEGATIVE)
    lr: float = constrained(1e-3, POSITIVE)
    weight_decay: float = constrained(0.0, NON_NEGATIVE)
    kl_temperature: float = constrained(1.0, POSITIVE)
    retain_fraction: float = constrained(0.3, Interval(0, 1, "right"))


def bad_teacher_loss(
    competent: nn.Module,
    incompetent: nn.Module,
    data: UnlearnData,
    params: BadTeacherParams,
    context: Context,
) -> LossFn:
    """Mean KL(teacher || student) at T, the teacher being the incompetent one on forget rows
    and the competent one on retain rows (the authors' loss up to its 1/C scale, which Adam
    ignores and our SGD lr absorbs)."""
    is_forget = data.is_forget.to(context.engine.device)
    temperature = params.kl_temperature

    def loss(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        forget = is_forget[batch.index].unsqueeze(1)
        good = soft_targets(competent, batch.images, temperature)
        bad = soft_targets(incompetent, batch.images, temperature)
        return distill_kl(logits, torch.where(forget, bad, good), temperature).mean()

    return loss


@register(
    "bad-teacher", BadTeacherParams, "distil from the original on retain, a random net on forget"
)
def bad_teacher(
    model: nn.Module, data: UnlearnData, params: BadTeacherParams, context: Context
) -> nn.Module:
    """One loader of all forget rows and a random retain subset, shuffled together."""
    if context.model_config is None:
        raise ConfigError("bad-teacher needs the model config to build its random teacher")
    engine = context.engine
    incompetent = frozen_copy(fresh_model(context, data), engine)
    competent = frozen_copy(model, engine)
    retain = data.retain_index
    generator = engine.generator(context.seed)  # a random fraction, rounded down as theirs
    subset = sample_rows(retain, int(params.retain_fraction * len(retain)), generator)
    rows = torch.cat([data.forget_index, subset])
    loss = bad_teacher_loss(competent, incompetent, data, params, context)
    batches = method_rows(data, rows, params, context)
    return fit_method(model, params, context, batches, lambda *_: loss)
