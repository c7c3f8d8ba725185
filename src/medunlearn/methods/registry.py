"""The method registry: name -> (hyper-parameter dataclass, function), one signature for all."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from medunlearn.config import ConfigError, from_dict
from medunlearn.methods.base import Context, MethodParams, UnlearnData

MethodFn = Callable[[nn.Module, UnlearnData, Any, Context], nn.Module]


@dataclass(frozen=True)
class Method:
    """A registered unlearning method."""

    name: str
    params: type[MethodParams]
    run: MethodFn
    summary: str


METHODS: dict[str, Method] = {}


def register(name: str, params: type, summary: str) -> Callable[[MethodFn], MethodFn]:
    """Add a method under `name`; its function takes (model, data, params, context)."""

    def add(run: MethodFn) -> MethodFn:
        METHODS[name] = Method(name, params, run, summary)
        return run

    return add


def get_method(name: str) -> Method:
    """The method registered under `name`, or an error listing the known ones."""
    if name not in METHODS:
        raise ConfigError(f"unknown method '{name}'; known methods: {sorted(METHODS)}")
    return METHODS[name]


def method_params(name: str, values: dict) -> MethodParams:
    """Validated hyper-parameters of a method (defaults of the reference where not given)."""
    return from_dict(get_method(name).params, values, f"methods.{name}.params")
