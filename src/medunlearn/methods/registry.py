"""The method registry: name -> (hyper-parameter dataclass, function), one signature for all."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from torch import nn

from medunlearn.config import ConfigError, MethodConfig, TrainConfig, from_dict
from medunlearn.data import Dataset
from medunlearn.methods.base import Context, MethodParams, UnlearnData

MethodFn = Callable[[nn.Module, UnlearnData, Any, Context], nn.Module]
# the training recipe of the model a method unlearns from, given the study's and its params
RecipeFn = Callable[[TrainConfig, Any], TrainConfig]


@dataclass(frozen=True)
class Method:
    """A registered unlearning method. `epochs` names its param counting the epochs it reports
    to `Context.on_epoch` (once after each; None: it trains no epochs, e.g. SSD); where that
    param is None the training recipe's epochs apply (Retrain). `recipe` gives the training
    recipe of the model it unlearns from, where that is not the study's own (SISA, which needs
    a model trained in shards and slices, refuses in it a recipe that has none). An `exact`
    method's result is the model trained from the start without the forget set (SISA: its own
    Retrain, proven by a test), so its distance to the study's Retrain is not forgetting left
    undone."""

    name: str
    params: type[MethodParams]
    run: MethodFn
    summary: str
    binary_only: bool = False
    epochs: str | None = "epochs"
    recipe: RecipeFn | None = None
    exact: bool = False

    def __post_init__(self) -> None:
        fields = {f.name for f in dataclasses.fields(self.params)}
        if self.epochs is not None and self.epochs not in fields:
            raise ValueError(f"method {self.name}: its params have no epoch count {self.epochs!r}")

    def check_data(self, dataset: Dataset) -> None:
        """Refuse data the method cannot serve (a binary-only method on a multi-class task)."""
        if self.binary_only and (dataset.n_classes != 2 or dataset.positive_class != 1):
            raise ConfigError(
                f"{self.name} needs a binary task with label 1 = positive (malignant), but "
                f"{dataset.name} has {dataset.n_classes} classes and positive class "
                f"{dataset.positive_class}; set `data.binary: true` (with `data.positive` where "
                "the dataset has no default mapping)"
            )


METHODS: dict[str, Method] = {}


def register(
    name: str,
    params: type,
    summary: str,
    binary_only: bool = False,
    epochs: str | None = "epochs",
    recipe: RecipeFn | None = None,
    exact: bool = False,
) -> Callable[[MethodFn], MethodFn]:
    """Add a method under `name`; its function takes (model, data, params, context)."""

    def add(run: MethodFn) -> MethodFn:
        METHODS[name] = Method(name, params, run, summary, binary_only, epochs, recipe, exact)
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


def original_recipe(train: TrainConfig, method: MethodConfig) -> TrainConfig:
    """The training recipe of the original model `method` unlearns from in a study whose recipe
    is `train`: the study's own, unless the method asks for another (SISA's shards and slices);
    an error where it asks for one it cannot have."""
    spec = METHODS.get(method.name)
    if spec is None or spec.recipe is None:
        return train
    return spec.recipe(train, method_params(method.name, method.params))
