"""SISA's exact deletion (Bourtoule et al., "Machine Unlearning", IEEE S&P 2021): a model
trained in shards and slices (`train.shards`, `train.slices`) forgets by retraining only the
shards that held a forgotten image, each from the checkpoint before the first slice that held
one. The result is the model trained from the start without those images (see `sharding`):
the method is its own Retrain, and its run time counts only what it retrained."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from torch import nn

from medunlearn.config import (
    AT_LEAST_ONE,
    AugMode,
    Checked,
    ConfigError,
    TrainConfig,
    constrained,
)
from medunlearn.methods.base import Context, UnlearnData
from medunlearn.methods.registry import register
from medunlearn.sharding import ShardedModel, ShardingError, forget


@dataclass
class SisaParams(Checked):
    """The shards, slices and augmentation of the model a study trains for SISA where its own
    recipe has no shards (None: the recipe's `train.shards`, `train.slices`, `train.augment`).
    A deletion has no setting of its own: it repeats the model's training."""

    shards: int | None = constrained(None, AT_LEAST_ONE)
    slices: int | None = constrained(None, AT_LEAST_ONE)
    augment: AugMode | None = None


def _asked(train: TrainConfig, params: SisaParams) -> dict:
    """The recipe fields SISA's params set, the recipe's own where they do not."""
    return {"shards": params.shards or train.shards, "slices": params.slices or train.slices,
            "augment": params.augment or train.augment}  # fmt: skip


def sharded_recipe(train: TrainConfig, params: SisaParams) -> TrainConfig:
    """The recipe with SISA's shards, slices and augmentation; refused where it has no shards
    nor slices."""
    recipe = dataclasses.replace(train, **_asked(train, params))
    if not recipe.sharded:
        raise ConfigError(
            "sisa deletes exactly from a model trained in shards and slices: set train.shards "
            "or train.slices above 1, or sisa's own shards / slices"
        )
    return recipe


@register(
    "sisa",
    SisaParams,
    "exact deletion: retrain only the shards and slices that held a forgotten image (SISA)",
    epochs=None,
    recipe=sharded_recipe,
    exact=True,
)
def sisa(model: nn.Module, data: UnlearnData, params: SisaParams, context: Context) -> nn.Module:
    """Retrain each shard holding a forgotten image from the slice before its first one."""
    if not isinstance(model, ShardedModel):
        raise ShardingError(
            "sisa needs a model trained in shards and slices (train.shards or train.slices "
            "above 1), and this one was trained whole: delete with retrain, or train it sharded"
        )
    recipe = model.sharding.recipe
    asked = _asked(recipe, params)
    if other := {key: value for key, value in asked.items() if getattr(recipe, key) != value}:
        held = {key: getattr(recipe, key) for key in other}
        raise ShardingError(
            f"sisa was asked for {other}, but the model was trained with {held}: a deletion "
            "repeats the model's own training"
        )
    if context.store is None or context.model_config is None:
        raise ValueError("sisa needs the model cache and the model config of its context")
    result, reused = forget(model, data.forget_set.forget_ids, context.model_config,
                            data.dataset, context.engine, context.store)  # fmt: skip
    context.earlier_seconds += reused
    return result
