"""SalUn: random-label unlearning restricted to the weights most salient for the forget set."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medunlearn.augment import build_augment
from medunlearn.config import POSITIVE, Interval, constrained
from medunlearn.engine import LossFn
from medunlearn.methods.base import Context, UnlearnData, fit_method
from medunlearn.methods.registry import register
from medunlearn.methods.rl import RLParams, relabelled_loss, rl_batches
from medunlearn.store import cache_key, load_tensors, save_tensors, state_fingerprint

Mask = dict[str, torch.Tensor]


@dataclass
class SalUnParams(RLParams):
    """ratio: fraction of all weights (ranked together) that may change."""

    lr: float = constrained(0.013, POSITIVE)
    ratio: float = constrained(0.5, Interval(0, 1, "right"))


def saliency(model: nn.Module, data: UnlearnData, params: SalUnParams, context: Context) -> Mask:
    """|sum over forget batches of grad(-CE)| per weight, true labels, model in eval mode."""
    engine = context.engine
    model = engine.prepare(model)
    model.eval()
    named = [(name, p) for name, p in model.named_parameters() if p.requires_grad]
    totals = {name: torch.zeros_like(p) for name, p in named}
    generator = engine.generator(context.seed)
    augment = build_augment(context.augment_mode(params))
    split, rows = data.dataset.train, data.forget_index
    for batch in engine.batches(split, rows, params.batch_size, generator, augment):
        model.zero_grad(set_to_none=True)
        with engine.autocast():
            loss = -F.cross_entropy(model(batch.images), batch.labels)
        loss.backward()
        for name, p in named:
            totals[name] += p.grad
    model.zero_grad(set_to_none=True)
    return {name: total.abs() for name, total in totals.items()}


def top_ratio_mask(scores: Mask, ratio: float) -> Mask:
    """1 for the top `ratio` fraction of all weights ranked together by score, 0 elsewhere."""
    flat = torch.cat([s.flatten() for s in scores.values()])
    keep = torch.zeros(flat.numel(), dtype=torch.bool, device=flat.device)
    keep[flat.topk(round(ratio * flat.numel())).indices] = True
    masks, start = {}, 0
    for name, score in scores.items():
        masks[name] = keep[start : start + score.numel()].view_as(score)
        start += score.numel()
    return masks


def salient_mask(model: nn.Module, data: UnlearnData, params: SalUnParams, context: Context):
    """The saliency mask, read from the cache when this model and forget set had one.

    The mask's cost belongs to the method: the seconds its saliency pass took are saved with
    it, and a mask read from the cache adds them to the run time.
    """
    key = cache_key(
        "mask",
        state_fingerprint(model),
        data.forget_set.data_fingerprint,
        data.forget_set.forget_ids.tolist(),
        params.ratio,
        context.augment_mode(params),
        params.batch_size,
        context.engine.bf16,
        context.seed,
    )
    path = None if context.store is None else context.store.path("masks", key)
    if path is not None and path.is_file():
        mask, meta = load_tensors(path)
        context.earlier_seconds += meta["seconds"]
        return {k: v.to(context.engine.device) for k, v in mask.items()}
    started = time.perf_counter()
    mask = top_ratio_mask(saliency(model, data, params, context), params.ratio)
    if path is not None:
        save_tensors(path, mask, {"seconds": time.perf_counter() - started})
        n_train, fingerprint = len(data.dataset.train), data.forget_set.data_fingerprint
        context.store.note_influence(path, np.arange(n_train), n_train, fingerprint)
    return mask


@contextlib.contextmanager
def mask_constraint(model: nn.Module, mask: Mask) -> Iterator[Callable[[], None]]:
    """While open, masked-out weights get zero gradients; yields the hook restoring them.

    Restoring after every optimiser step keeps them bitwise fixed even under momentum and
    weight decay, which move weights whose gradient is zero.
    """
    frozen, handles = [], []
    for name, p in model.named_parameters():
        keep = mask[name]
        handles.append(p.register_hook(lambda grad, keep=keep: grad * keep))
        frozen.append((p, keep, p.detach().clone()))

    @torch.no_grad()
    def restore() -> None:
        for p, keep, start in frozen:
            p.copy_(torch.where(keep, p, start))

    try:
        yield restore
    finally:
        for handle in handles:
            handle.remove()


def masked_relabel(
    model: nn.Module, data: UnlearnData, params: SalUnParams, context: Context, epoch_loss
) -> nn.Module:
    """Run a relabelling loss under the SalUn mask: the engine of SalUn and its variants."""
    model = context.engine.prepare(model)
    mask = salient_mask(model, data, params, context)
    batches = rl_batches(data, params, context)
    with mask_constraint(model, mask) as restore:
        return fit_method(model, params, context, batches, epoch_loss, restore)


@register("salun", SalUnParams, "random labels on the most salient weights only")
def salun(model: nn.Module, data: UnlearnData, params: SalUnParams, context: Context):
    """RL restricted to the top `ratio` of weights by forget-set saliency."""

    def epoch_loss(_epoch: int, generator: torch.Generator) -> LossFn:
        return relabelled_loss(data, params, context, generator)

    return masked_relabel(model, data, params, context, epoch_loss)
