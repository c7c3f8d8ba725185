"""UNSIR (Tarun et al., IEEE TNNLS 2023, "Fast Yet Effective Machine Unlearning"): learn
error-maximising noise for the forget labels, impair the model on it mixed with a sample of
retain data, then repair on that retain sample alone."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import reduce

import torch
import torch.nn.functional as F
from torch import nn

from medunlearn.augment import build_augment
from medunlearn.config import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, constrained
from medunlearn.engine import Batch, LossFn, n_batches
from medunlearn.methods.base import (
    Context,
    MethodParams,
    UnlearnData,
    concat_batches,
    fit_method,
    method_rows,
)
from medunlearn.methods.registry import register
from medunlearn.training import EpochBatches, cross_entropy

# the row id that noise samples carry in a Batch (they are no training row)
NOISE_ROW = -1
# copies of the class noise per impair epoch (the notebook's num_batches): 20 x 256 noise
# samples, about the 5000 images of the CIFAR-10 class it forgets
CLASS_NOISE_COPIES = 20


@dataclass
class UNSIRParams(MethodParams):
    """Defaults of the authors' notebook (vikram2000b/Fast-Machine-Unlearning) where it has one.

    Noise: `noise_steps` Adam steps (5 epochs x 8 there) at `noise_lr` 0.1 on -CE(model(noise),
    label) + `noise_weight` (lambda, 0.1) * the mean over samples of the squared L2 norm of the
    noise, seeded N(0, 1) in the model's normalised input space (as there), the model in eval
    mode. Class forgetting (forget mode `class`): `noise_size` (256) noise samples per forgotten
    class, labelled with it. Every other forget mode gets our sample-wise variant: one noise
    sample per forget sample, labelled with that sample's label.

    Impair: `epochs` (1) at `lr` (0.02) over `noise_copies` copies of the noise shuffled with a
    retain sample of at most `retain_per_class` (1000) rows per class; None copies: 20 for class
    forgetting, as there (20 x 256 noise samples, about the 5000 images of the CIFAR-10 class),
    1 for the sample-wise variant (the noise as large as the forget set; 20 would swamp the
    retain sample). Repair: `repair_epochs` (1) at `repair_lr` (0.01) on the retain sample.
    The notebook trains with Adam without weight decay; here both phases run the common SGD
    recipe (momentum 0.9, weight decay 0 by default), so its lrs are not Adam-equivalent."""

    epochs: int = constrained(1, NON_NEGATIVE)
    lr: float = constrained(0.02, POSITIVE)
    weight_decay: float = constrained(0.0, NON_NEGATIVE)
    repair_epochs: int = constrained(1, NON_NEGATIVE)
    repair_lr: float = constrained(0.01, POSITIVE)
    noise_steps: int = constrained(40, NON_NEGATIVE)
    noise_lr: float = constrained(0.1, POSITIVE)
    noise_weight: float = constrained(0.1, NON_NEGATIVE)
    noise_size: int = constrained(256, AT_LEAST_ONE)
    noise_copies: int | None = constrained(None, AT_LEAST_ONE)
    retain_per_class: int = constrained(1000, AT_LEAST_ONE)


def noise_images(noise: torch.Tensor) -> torch.Tensor:
    """Noise of the normalised input space as the float images that `models.Normalize` maps
    back onto it (x = 0.5 z + 0.5; not clipped to [0, 1], as the authors' noise is unbounded)."""
    return noise * 0.5 + 0.5


def class_forgetting(data: UnlearnData) -> bool:
    """Whether the forget set is whole classes (UNSIR's own setting)."""
    return data.forget_set.spec.get("mode") == "class"


def noise_labels(data: UnlearnData, params: UNSIRParams) -> torch.Tensor:
    """The label of each noise sample: `noise_size` per forgotten class for class forgetting,
    else the label of each forget sample (the sample-wise variant)."""
    labels = data.dataset.train.labels[data.forget_index]
    if class_forgetting(data):
        return torch.unique(labels).repeat_interleave(params.noise_size)
    return labels


def noise_copies(data: UnlearnData, params: UNSIRParams) -> int:
    """How often each noise sample enters an impair epoch."""
    if params.noise_copies is not None:
        return params.noise_copies
    return CLASS_NOISE_COPIES if class_forgetting(data) else 1


def learn_noise(
    model: nn.Module,
    labels: torch.Tensor,
    shape: torch.Size,
    params: UNSIRParams,
    context: Context,
) -> torch.Tensor:
    """Error-maximising noise images for `labels`, seeded N(0, 1) in the normalised input space.

    In eval mode a sample's gradient depends on that sample alone, so the noise is learned in
    chunks of `batch_size`, and all classes at once: Adam's per-weight scaling makes that the
    same as one noise batch per class. The model's weights get no gradients.
    """
    engine = context.engine
    model = engine.prepare(model).eval()
    generator = engine.generator(context.seed)
    targets = labels.to(engine.device).split(params.batch_size)
    chunks = [
        torch.randn(len(part), *shape, generator=generator, device=engine.device).requires_grad_()
        for part in targets
    ]
    optimizer = torch.optim.Adam(chunks, lr=params.noise_lr)
    for _ in range(params.noise_steps):
        for noise, target in zip(chunks, targets, strict=True):
            with engine.autocast():
                logits = model(noise_images(noise))
            ce = F.cross_entropy(logits.float(), target, reduction="sum")
            loss = (params.noise_weight * noise.square().sum() - ce) / len(labels)
            (noise.grad,) = torch.autograd.grad(loss, noise)
        optimizer.step()
    return noise_images(torch.cat(chunks).detach())


def lazy_noise(
    model: nn.Module,
    labels: torch.Tensor,
    shape: torch.Size,
    params: UNSIRParams,
    context: Context,
) -> Callable[[], torch.Tensor]:
    """The noise images, learned on a copy of `model` as it is now when first asked for: a
    resumed run whose impair phase is done never learns them, an interrupted one learns the
    same noise again."""
    original = [copy.deepcopy(model)]
    learned: list[torch.Tensor] = []

    def get() -> torch.Tensor:
        if not learned:
            learned.append(learn_noise(original.pop(), labels, shape, params, context))
        return learned[0]

    return get


def retain_sample(data: UnlearnData, per_class: int, generator: torch.Generator) -> torch.Tensor:
    """At most `per_class` retain rows of each class, drawn at random, in increasing order."""
    rows = data.retain_index[torch.randperm(len(data.retain_index), generator=generator)]
    labels = data.dataset.train.labels[rows]
    order = torch.argsort(labels, stable=True)
    counts = torch.bincount(labels, minlength=data.n_classes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(rows)) - starts[labels[order]]
    return rows[order[rank < per_class]].sort().values


def impair_batches(
    data: UnlearnData,
    params: UNSIRParams,
    context: Context,
    noise: Callable[[], torch.Tensor],
    labels: torch.Tensor,
    sample: torch.Tensor,
) -> EpochBatches:
    """Per epoch: the noise copies and the retain sample, shuffled together into batches; noise
    rows are float images with index NOISE_ROW, retain rows are augmented and scaled to [0, 1]
    floats to match."""
    engine = context.engine
    augment = build_augment(context.augment_mode(params))
    split = data.dataset.train
    labels = labels.to(engine.device)
    n_noise = len(labels) * noise_copies(data, params)
    total = n_noise + len(sample)

    def make(_epoch: int, generator: torch.Generator) -> tuple[Iterator[Batch], int]:
        images = noise()
        order = torch.randperm(total, generator=generator, device=generator.device).cpu()

        def mixed() -> Iterator[Batch]:
            for picks in order.split(params.batch_size):
                is_noise = picks < n_noise
                ids = (picks[is_noise] % len(labels)).to(engine.device)
                parts = [Batch(images[ids], labels[ids], torch.full_like(ids, NOISE_ROW))]
                rows = sample[picks[~is_noise] - n_noise]
                if len(rows):
                    retain = next(
                        engine.batches(split, rows, len(rows), generator, augment, shuffle=False)
                    )
                    parts.append(Batch(retain.images.float() / 255, retain.labels, retain.index))
                yield reduce(concat_batches, parts)

        return mixed(), n_batches(total, params.batch_size)

    return make


def labelled_ce(
    labels: torch.Tensor, data: UnlearnData, params: UNSIRParams, context: Context
) -> LossFn:
    """CE on a batch's labels, class-weighted over `labels` (those of the phase's rows) if asked."""
    ce = cross_entropy(labels, data.n_classes, params.class_weighted, context.engine.device)
    return lambda logits, batch: ce(logits, batch.labels)


@register(
    "unsir",
    UNSIRParams,
    "error-maximising noise for the forget set, impair, then repair",
    epochs="repair_epochs",
)
def unsir(model: nn.Module, data: UnlearnData, params: UNSIRParams, context: Context) -> nn.Module:
    """Impair on the noise (labelled with the forget labels) and a retain sample, then repair on
    the retain sample; each phase resumes on its own."""
    train = data.dataset.train
    labels = noise_labels(data, params)
    sample = retain_sample(
        data, params.retain_per_class, torch.Generator().manual_seed(context.seed)
    )
    noise = lazy_noise(model, labels, train.images.shape[1:], params, context)
    pool = torch.cat([labels.repeat(noise_copies(data, params)), train.labels[sample]])
    impair = impair_batches(data, params, context, noise, labels, sample)
    impair_loss = labelled_ce(pool, data, params, context)
    model = fit_method(
        model, params, context, impair, lambda *_: impair_loss, phase="impair", reports=False
    )
    repair = dataclasses.replace(params, epochs=params.repair_epochs, lr=params.repair_lr)
    batches = method_rows(data, sample, repair, context)
    loss = labelled_ce(train.labels[sample], data, repair, context)
    return fit_method(model, repair, context, batches, lambda *_: loss, phase="repair")
