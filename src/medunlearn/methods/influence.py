"""Influence unlearning (IU; Izzo et al., AISTATS 2021, the SalUn code's `Wfisher`): one
Newton-style step theta <- theta + alpha H^-1 v, H = damping I + G^T G / m an empirical Fisher
of m retain per-sample gradients G, inverted with the Woodbury identity.

As in the SalUn code (OPTML-Group/Unlearn-Saliency, Classification/unlearn/Wfisher.py), eval
mode, the training augmentation, v = (n_f / n) (mean forget gradient - mean retain gradient) of
the cross-entropy, and about 1000 retain samples. SalUn's recursion keeps one vector where the
sequential Woodbury update needs one per sample (its result is v minus a multiple of the first
sample's gradient); we apply the exact inverse, which that recursion means to compute.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from medunlearn.config import AT_LEAST_ONE, POSITIVE, ConfigError, constrained
from medunlearn.methods.base import Context, UnlearnData, sample_rows
from medunlearn.methods.importance import (
    ImportanceParams,
    flat_samples,
    gradient_sum,
    n_parameters,
    per_sample_gradients,
    row_batches,
    trainable,
)
from medunlearn.methods.registry import register

# float64 blocks of the per-sample gradient matrix hold at most this many numbers (128 MiB)
BLOCK_NUMBERS = 1 << 24


@dataclass
class InfluenceParams(ImportanceParams):
    """alpha: step scale (0.2, the SalUn code's default). max_samples: retain rows whose
    per-sample gradients form H (1000: SalUn's woodfisher stops after N = 1000). damping: the
    identity term of H (1: SalUn's recursion starts from the identity). max_memory_gb: refuse
    runs whose gradient matrix (max_samples x parameters x 4 bytes, plus a batch of per-sample
    gradients) would exceed it. batch_size 256 as SalUn's gradient passes."""

    alpha: float = constrained(0.2, POSITIVE)
    max_samples: int = constrained(1000, AT_LEAST_ONE)
    damping: float = constrained(1.0, POSITIVE)
    max_memory_gb: float = constrained(4.0, POSITIVE)


def influence_memory(n_params: int, n_samples: int, batch_size: int) -> int:
    """Bytes the step holds: the float32 gradient matrix, one batch of per-sample gradients, the
    float64 Gram matrix and one float64 block."""
    batch = min(batch_size, n_samples)
    block = min(n_samples * n_params, BLOCK_NUMBERS)
    return 4 * n_params * (n_samples + batch) + 8 * (n_samples * n_samples + block)


def check_memory(n_params: int, n_samples: int, params: InfluenceParams) -> None:
    """A ConfigError naming the estimate and the params to change when it exceeds the cap."""
    need = influence_memory(n_params, n_samples, params.batch_size) / 1e9
    if need > params.max_memory_gb:
        fits = int(params.max_memory_gb * 1e9 / (4 * n_params)) // 2
        raise ConfigError(
            f"wfisher would hold about {need:.2f} GB ({n_samples} per-sample gradients of "
            f"{n_params} parameters), over max_memory_gb = {params.max_memory_gb:g}; lower "
            f"max_samples (about {max(fits, 1)} fit) or raise max_memory_gb"
        )


def woodbury_solve(gradients: torch.Tensor, vector: torch.Tensor, damping: float) -> torch.Tensor:
    """(damping I + G^T G / m)^-1 v by the Woodbury identity, (v - G^T u) / damping with
    (m damping I + G G^T) u = G v: an m x m system (float64), never the P x P matrix."""
    m, n_params = gradients.shape
    gram = torch.zeros(m, m, dtype=torch.float64, device=gradients.device)
    projected = torch.zeros(m, dtype=torch.float64, device=gradients.device)
    width = max(1, BLOCK_NUMBERS // m)
    for start in range(0, n_params, width):
        block = gradients[:, start : start + width].double()
        gram += block @ block.T
        projected += block @ vector[start : start + width].double()
    gram.diagonal().add_(m * damping)
    solution = torch.linalg.solve(gram, projected)
    result = torch.empty_like(vector)
    for start in range(0, n_params, width):
        block = gradients[:, start : start + width].double()
        part = vector[start : start + width].double() - block.T @ solution
        result[start : start + width] = part / damping
    return result


def retain_gradients(
    model: nn.Module,
    data: UnlearnData,
    rows: torch.Tensor,
    params: InfluenceParams,
    context: Context,
    generator: torch.Generator,
) -> torch.Tensor:
    """The (rows, parameters) matrix of per-sample gradients of the given retain rows."""
    matrix = torch.empty(len(rows), n_parameters(model), device=context.engine.device)
    sample_grads = per_sample_gradients(model)
    start = 0
    for batch in row_batches(data, rows, params, context, generator):
        matrix[start : start + len(batch.index)] = flat_samples(
            sample_grads(batch.images, batch.labels)
        )
        start += len(batch.index)
    return matrix


@register(
    "wfisher",
    InfluenceParams,
    "influence unlearning: one Woodbury-Fisher Newton step (no training)",
    epochs=None,
)
def influence(
    model: nn.Module, data: UnlearnData, params: InfluenceParams, context: Context
) -> nn.Module:
    """Forget and retain gradients, retain per-sample gradients, then the damped Newton step."""
    n_forget, n_retain = len(data.forget_index), len(data.retain_index)
    engine = context.engine
    model = engine.prepare(model)
    generator = engine.generator(context.seed)
    rows = sample_rows(data.retain_index, params.max_samples, generator)
    check_memory(n_parameters(model), len(rows), params)
    forget_sum = gradient_sum(
        model, row_batches(data, data.forget_index, params, context, generator), engine
    )
    retain_sum = gradient_sum(
        model, row_batches(data, data.retain_index, params, context, generator), engine
    )
    vector = (forget_sum - retain_sum * (n_forget / n_retain)) / (n_forget + n_retain)
    gradients = retain_gradients(model, data, rows, params, context, generator)
    step = woodbury_solve(gradients, vector, params.damping)
    with torch.no_grad():
        start = 0
        for p in trainable(model).values():
            p.add_(step[start : start + p.numel()].view_as(p), alpha=params.alpha)
            start += p.numel()
    return model
