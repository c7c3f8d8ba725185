"""Fisher forgetting (Golatkar et al., CVPR 2020, "Eternal Sunshine of the Spotless Net"):
Gaussian noise on every weight with variance alpha / (its diagonal Fisher information on the
retain set), clamped, so the weights the retain data needs barely move and the rest is scrubbed.

Semantics of the authors' notebook (AdityaGolatkar/SelectiveForgetting, `hessian` and
`get_mean_var`), which the SalUn code's `fisher_new` follows: the expected Fisher over the model's
predicted class distribution, per sample, eval mode, no augmentation; variance alpha *
min(1 / (F + 1e-8), 1e3), bounded at 1e2 for the classifier, times 10 for the classifier and for
1-D parameters (batch norm); in class forgetting, each forgotten class's classifier row is set to
0 with variance 1e-4 (times 10), whatever alpha. One deviation: the notebook averages the
variance of a weight tensor over its input dimension, we keep each weight's own variance, as the
method's diagonal-Fisher formula has it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medunlearn.config import AT_LEAST_ONE, POSITIVE, AugMode, ConfigError, constrained
from medunlearn.methods.base import Context, UnlearnData, sample_rows
from medunlearn.methods.importance import (
    ImportanceParams,
    expected_fisher,
    row_batches,
    trainable,
)
from medunlearn.methods.registry import register

FISHER_EPS = 1e-8
MAX_VARIANCE = 1e3  # bound on 1 / (F + eps) before alpha
MAX_CLASSIFIER_VARIANCE = 1e2
BOOST = 10.0  # variance factor of the classifier and of 1-D (batch-norm) parameters
FORGOTTEN_VARIANCE = 1e-4  # of a forgotten class's classifier row (before BOOST)


@dataclass
class FisherParams(ImportanceParams):
    """alpha: noise scale (variance alpha / Fisher), 1e-6 as in the authors' notebook.
    max_samples: retain rows drawn for the Fisher (None: all). The Fisher costs one per-sample
    gradient per row and class, so 1000 rows (the authors' sets held a few hundred) bound it
    whatever the dataset. batch_size only chunks the per-sample gradients (their memory is
    batch x parameters); no augmentation, as the authors."""

    batch_size: int = constrained(64, AT_LEAST_ONE)
    augment: AugMode | None = "none"
    alpha: float = constrained(1e-6, POSITIVE)
    max_samples: int | None = constrained(1000, AT_LEAST_ONE)


def forgotten_classes(data: UnlearnData) -> torch.Tensor:
    """Classes whose every training sample is to be forgotten (class forgetting)."""
    labels = data.dataset.train.labels
    retained = torch.bincount(labels[data.retain_index], minlength=data.n_classes) > 0
    forgotten = torch.bincount(labels[data.forget_index], minlength=data.n_classes) > 0
    return (forgotten & ~retained).nonzero().flatten()


def classifier(model: nn.Module, n_classes: int) -> nn.Linear:
    """The model's last linear layer with one output per class."""
    heads = [m for m in model.modules() if isinstance(m, nn.Linear) and m.out_features == n_classes]
    if not heads:
        raise ConfigError(f"fisher needs a model ending in a linear layer of {n_classes} outputs")
    return heads[-1]


@register(
    "fisher",
    FisherParams,
    "Gaussian noise scaled by the inverse retain Fisher (no training)",
    epochs=None,
)
def fisher_forgetting(
    model: nn.Module, data: UnlearnData, params: FisherParams, context: Context
) -> nn.Module:
    """Fisher on (a sample of) the retain set, then every weight resampled around its value."""
    engine = context.engine
    model = engine.prepare(model)
    generator = engine.generator(context.seed)
    rows = sample_rows(data.retain_index, params.max_samples, generator)
    batches = row_batches(data, rows, params, context, generator)
    fisher = expected_fisher(model, batches, data.n_classes)
    head = {id(p) for p in classifier(model, data.n_classes).parameters()}
    gone = forgotten_classes(data).to(engine.device)
    with torch.no_grad():
        for name, p in trainable(model).items():
            in_head = id(p) in head
            bound = MAX_CLASSIFIER_VARIANCE if in_head else MAX_VARIANCE
            variance = (fisher[name] + FISHER_EPS).reciprocal().clamp(max=bound) * params.alpha
            if in_head:
                p[gone] = 0
                variance[gone] = FORGOTTEN_VARIANCE
            if in_head or p.ndim == 1:
                variance *= BOOST
            noise = torch.randn(p.shape, generator=generator, device=engine.device)
            p.add_(variance.sqrt() * noise)
    return model
