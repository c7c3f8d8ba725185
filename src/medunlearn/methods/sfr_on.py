"""SFR-on (Huang et al., NeurIPS 2024): saliency forgetting in the remain-preserving manifold,
online. Every `forget_every` iterations a masked, clipped, adaptively weighted gradient-ascent
step on a forget batch (the fast weights), then every iteration a descent step on a retain batch
taken from those fast weights: the retain gradient at the moved point carries the retain Hessian
(grad L_r(theta - d) ~ grad L_r(theta) - H_r d), the paper's implicit online Hessian term.

Semantics from the authors' code (K1nght/Unified-Unlearning-w-Remain-Geometry,
Classification/unlearn/sfron.py: `SFRon.get_unlearned_model`, `AdaptiveLoss`,
`get_weight_saliency_mask`); its loop runs by iterations, not epochs, so it has its own loop
here, resumable after every epoch (one pass over the retain set) like `training.fit`.
"""

from __future__ import annotations

import math
import time
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
from medunlearn.methods.base import Context, MethodParams, UnlearnData, retain_loss
from medunlearn.methods.importance import row_batches, squared_gradients
from medunlearn.methods.registry import register
from medunlearn.store import cache_key
from medunlearn.training import make_scheduler, restore, resume_state, save_state

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


def retain_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batch: Batch,
    loss_fn: LossFn,
    engine: Engine,
) -> None:
    """theta <- SGD step on the retain loss at the current (fast) weights."""
    with engine.autocast():
        loss = loss_fn(engine.forward(model, batch.images), batch)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


@register("sfr-on", SFROnParams, "masked adaptive ascent on forget, then descent on retain")
def sfr_on(model: nn.Module, data: UnlearnData, params: SFROnParams, context: Context):
    """Per iteration t of T: a forget step when t % forget_every == 0, then a retain step.

    Both steps share one SGD optimizer (momentum buffer, weight decay, cosine lr per
    iteration). Each epoch is a shuffled pass over the retain set; the forget batches come from
    a fresh shuffle of the forget set each epoch, cycling when it runs out. A resumed run
    recomputes the mask from the model it is given (the original, so the same mask).
    """
    engine = context.engine
    model = engine.prepare(model)
    per_epoch = n_batches(len(data.retain_index), params.batch_size)
    total = params.epochs * per_epoch
    if total == 0:
        return model
    mask = balanced_saliency_mask(model, data, params, context)
    keep = [(p, mask[name]) for name, p in model.named_parameters() if name in mask]
    optimizer = engine.sgd(model, params.lr, params.momentum, params.weight_decay)
    scheduler = make_scheduler(optimizer, params.schedule, total)
    generator = engine.generator(context.seed)
    key = cache_key("sfr-on", params, context.seed)
    start, elapsed = 0, 0.0
    saved = resume_state(context.state_path, key)
    if saved is not None:
        restore(saved, (model, optimizer, scheduler, generator))
        start, elapsed = saved["epoch"], saved["seconds"]
        engine.progress.log(f"{context.name}: resuming after epoch {start}/{params.epochs}")
    context.earlier_seconds += elapsed
    augment = build_augment(context.augment_mode(params))
    split = data.dataset.train
    retain_ce = retain_loss(data, params, engine.device)

    def retain_fn(logits: torch.Tensor, batch: Batch) -> torch.Tensor:
        return retain_ce(logits, batch.labels)

    def forget_batches():
        while True:
            yield from engine.batches(
                split, data.forget_index, params.batch_size, generator, augment
            )

    for epoch in range(start, params.epochs):
        began = time.perf_counter()
        model.train()
        forget_stream = forget_batches()
        label = f"{context.name} {epoch + 1}/{params.epochs}"
        retain_stream = engine.batches(
            split, data.retain_index, params.batch_size, generator, augment
        )
        with engine.progress.task(label, per_epoch) as task:
            for offset, retain_batch in enumerate(retain_stream):
                step = epoch * per_epoch + offset
                if step % params.forget_every == 0:
                    alpha = cosine_decay(params.forget_alpha, step, total)
                    forget_step(model, optimizer, next(forget_stream), keep, alpha, params, engine)
                retain_step(model, optimizer, retain_batch, retain_fn, engine)
                scheduler.step()
                task.advance()
        elapsed += time.perf_counter() - began
        if context.state_path is not None:
            loop = (model, optimizer, scheduler, generator)
            save_state(context.state_path, key, epoch + 1, loop, elapsed)
    return model
