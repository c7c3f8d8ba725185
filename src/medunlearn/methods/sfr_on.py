"""SFR-on (Huang et al., NeurIPS 2024): saliency forgetting in the remain-preserving manifold,
online. Every `forget_every` iterations a masked, clipped, adaptively weighted gradient-ascent
step on a forget batch (the fast weights), then every iteration a descent step on a retain batch
taken from those fast weights: the retain gradient at the moved point carries the retain Hessian
(grad L_r(theta - d) ~ grad L_r(theta) - H_r d), the paper's implicit online Hessian term.

Semantics from the authors' code (K1nght/Unified-Unlearning-w-Remain-Geometry,
Classification/unlearn/sfron.py: `SFRon.get_unlearned_model`, `AdaptiveLoss`,
`get_weight_saliency_mask`); its schedules run by iterations, so it supplies its own step to
the one fit loop (an epoch is a pass over the retain set), and its lr follows a cosine over
the iterations (`fit`'s `schedule_steps`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from medunlearn.augment import build_augment
from medunlearn.config import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    POSITIVE,
    Schedule,
    constrained,
)
from medunlearn.engine import Batch, Engine, LossFn, n_batches
from medunlearn.methods.base import (
    Context,
    MethodParams,
    UnlearnData,
    fit_method,
    method_rows,
    retain_loss,
)
from medunlearn.methods.importance import row_batches, squared_gradients
from medunlearn.methods.registry import register
from medunlearn.training import EpochStep, Step, sgd_step

Mask = dict[str, torch.Tensor]
# the authors' guard against a zero loss or a zero Fisher value in a ratio
EPS = 1e-15


@dataclass
class SFROnParams(MethodParams):
    """Defaults of the authors' CIFAR-10 (10% forgotten) setting in sfron.py: SGD lr 0.01,
    momentum 0.9, weight decay 5e-4, batch 128 (scripts/unlearn.sh), cosine lr per iteration.

    epochs: passes over the retain set, one iteration per retain batch (4: the authors' 1500
    iterations of 128 are 4.3 passes over CIFAR-10's 45,000 retain images).
    forget_alpha (alpha): scale of the forget loss, decayed by a cosine over the iterations.
    forget_every: a forget step every this many iterations (`forget_freq`).
    clip_norm: the forget step's gradient is clipped to this total L2 norm (`max_norm`).
    adaptive_power (lambda): forget sample i weighs l_i^-lambda / sum_j l_j^-lambda (0: GA).
    saliency_threshold (gamma): the forget step moves only weights whose forget / retain
    Fisher ratio is >= gamma (0: every weight).
    """

    epochs: int = constrained(4, NON_NEGATIVE)
    batch_size: int = constrained(128, AT_LEAST_ONE)
    schedule: Schedule = "cosine"
    forget_alpha: float = constrained(25.0, NON_NEGATIVE)
    forget_every: int = constrained(5, AT_LEAST_ONE)
    clip_norm: float = constrained(7.0, POSITIVE)
    adaptive_power: float = constrained(0.5, NON_NEGATIVE)
    saliency_threshold: float = constrained(1.0, NON_NEGATIVE)


def fisher_diagonal(
    model: nn.Module, data: UnlearnData, rows: torch.Tensor, params: SFROnParams, context: Context
) -> Mask:
    """Mean over batches of the squared batch gradient of CE (true labels, eval mode)."""
    generator = context.engine.generator(context.seed)
    batches = row_batches(data, rows, params, context, generator)
    return squared_gradients(model, batches, context.engine)


def balanced_saliency_mask(
    model: nn.Module, data: UnlearnData, params: SFROnParams, context: Context
) -> Mask:
    """Forget-remain balanced saliency: 1 where (F_f + eps) / (F_r + eps) >= gamma."""
    forget = fisher_diagonal(model, data, data.forget_index, params, context)
    remain = fisher_diagonal(model, data, data.retain_index, params, context)
    return {
        name: (forget[name] + EPS) / (remain[name] + EPS) >= params.saliency_threshold
        for name in forget
    }


def adaptive_forget_loss(logits: torch.Tensor, labels: torch.Tensor, power: float) -> torch.Tensor:
    """sum_i w_i l_i with w_i = l_i^-power / sum_j l_j^-power, the weights held constant:
    samples the model still fits (small loss) are pushed hardest."""
    losses = F.cross_entropy(logits.float(), labels, reduction="none")
    coefficients = 1 / (losses.detach().pow(power) + EPS)
    return (coefficients / coefficients.sum() * losses).sum()


def cosine_decay(base: float, step: int, total: int) -> float:
    """base * (1 + cos(pi * step / total)) / 2: the forget scale at iteration `step`."""
    return base * (1 + math.cos(math.pi * step / total)) / 2


def forget_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    keep: list[tuple[torch.Tensor, torch.Tensor]],
    alpha: float,
    params: SFROnParams,
    engine: Engine,
) -> None:
    """theta <- SGD step on clip(M * grad(-alpha * adaptive loss)) on a forget batch."""
    with engine.autocast():
        loss = adaptive_forget_loss(
            engine.forward(model, batch.images), batch.labels, params.adaptive_power
        )
    optimizer.zero_grad(set_to_none=True)
    (-alpha * loss).backward()
    for p, mask in keep:
        if p.grad is not None:
            p.grad.mul_(mask)
    nn.utils.clip_grad_norm_(model.parameters(), params.clip_norm)
    optimizer.step()


def sfr_step(
    data: UnlearnData,
    params: SFROnParams,
    context: Context,
    keep: list[tuple[torch.Tensor, torch.Tensor]],
    per_epoch: int,
) -> EpochStep:
    """Per epoch, the step of iteration t (counted over the epochs): a forget step on the next
    forget batch when t % forget_every == 0, then the usual step on the retain batch, taken
    from the weights the forget step moved.

    Each epoch's forget batches come from a fresh shuffle of the forget set (drawn from the
    fit's generator when first needed), cycling when they run out."""
    engine = context.engine
    augment = build_augment(context.augment_mode(params))
    total = params.epochs * per_epoch

    def forget_batches(generator: torch.Generator) -> Iterator[Batch]:
        while True:
            yield from engine.batches(
                data.dataset.train, data.forget_index, params.batch_size, generator, augment
            )

    def make(epoch: int, generator: torch.Generator) -> Step:
        stream = forget_batches(generator)
        iteration = itertools.count(epoch * per_epoch)

        def step(
            model: nn.Module, loss_fn: LossFn, optimizer, batch: Batch, engine
        ) -> torch.Tensor:
            t = next(iteration)
            if t % params.forget_every == 0:
                alpha = cosine_decay(params.forget_alpha, t, total)
                forget_step(model, optimizer, next(stream), keep, alpha, params, engine)
            return sgd_step(model, loss_fn, optimizer, batch, engine)

        return step

    return make


@register("sfr-on", SFROnParams, "masked adaptive ascent on forget, then descent on retain")
def sfr_on(model: nn.Module, data: UnlearnData, params: SFROnParams, context: Context):
    """Per iteration t of T: a forget step when t % forget_every == 0, then a retain step.

    Both steps share one SGD optimizer (momentum buffer, weight decay, cosine lr per
    iteration). A resumed run recomputes the mask from the model it is given (the original, so
    the same mask).
    """
    model = context.engine.prepare(model)
    per_epoch = n_batches(len(data.retain_index), params.batch_size)
    if params.epochs * per_epoch == 0:
        return model
    mask = balanced_saliency_mask(model, data, params, context)
    keep = [(p, mask[name]) for name, p in model.named_parameters() if name in mask]
    retain_ce = retain_loss(data, params, context.engine.device)
    return fit_method(
        model,
        params,
        context,
        method_rows(data, data.retain_index, params, context),
        lambda *_: lambda logits, batch: retain_ce(logits, batch.labels),
        epoch_step=sfr_step(data, params, context, keep, per_epoch),
        schedule_steps=params.epochs * per_epoch,
    )
