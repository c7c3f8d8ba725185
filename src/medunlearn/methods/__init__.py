"""Unlearning methods, one module each, behind one registry and one signature."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn

from medunlearn.config import MethodConfig
from medunlearn.methods import (  # noqa: F401
    ft,
    ga,
    l1_sparse,
    neggrad_plus,
    retrain,
    rl,
    salun,
    salun_cra,
)
from medunlearn.methods.base import Context, MethodParams, UnlearnData
from medunlearn.methods.registry import METHODS, get_method, method_params


@dataclass
class UnlearnResult:
    """The unlearned model and how long the method took."""

    model: nn.Module
    seconds: float


def unlearn(
    model: nn.Module, data: UnlearnData, method: MethodConfig, context: Context
) -> UnlearnResult:
    """Run one registered method on a model (changed in place for gradient methods), timed."""
    spec = get_method(method.name)
    spec.check_data(data.dataset)
    params = method_params(method.name, method.params)
    if len(data.retain_index) == 0:
        raise ValueError("the retain set is empty: nothing would be left to learn from")
    started = time.perf_counter()
    result = spec.run(model, data, params, context)
    if context.engine.device.type == "cuda":
        torch.cuda.synchronize(context.engine.device)
    return UnlearnResult(result, time.perf_counter() - started)


__all__ = ["METHODS", "Context", "MethodParams", "UnlearnData", "UnlearnResult", "unlearn"]
