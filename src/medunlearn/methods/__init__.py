"""Unlearning methods, one module each, behind one registry and one signature."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

from torch import nn

from medunlearn.config import MethodConfig
from medunlearn.methods import (  # noqa: F401
    bad_teacher,
    boundary_expanding,
    boundary_shrink,
    fisher,
    ft,
    ga,
    influence,
    l1_sparse,
    neggrad_plus,
    retrain,
    rl,
    salun,
    salun_cra,
    scrub,
    sfr_on,
    sisa,
    ssd,
    unsir,
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
    """Run one registered method on its own copy of `model` (which is left as it was), timed.

    The run time is this call's wall time plus the work it reused from earlier runs (epochs
    before a resume, a cached saliency mask), so it is the same however often it was resumed.
    """
    spec = get_method(method.name)
    spec.check_data(data.dataset)
    params = method_params(method.name, method.params)
    context.earlier_seconds = 0.0
    model = copy.deepcopy(model)
    started = time.perf_counter()
    result = spec.run(model, data, params, context)
    context.engine.synchronize()
    return UnlearnResult(result, time.perf_counter() - started + context.earlier_seconds)


__all__ = ["METHODS", "Context", "MethodParams", "UnlearnData", "UnlearnResult", "unlearn"]
