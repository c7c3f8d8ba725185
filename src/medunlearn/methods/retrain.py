"""Retrain: the gold standard, a fresh model trained on the retain set with the original recipe
(in shards and slices where the recipe has them)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from medunlearn.config import AT_LEAST_ONE, POSITIVE, AugMode, Checked, TrainConfig, constrained
from medunlearn.methods.base import Context, UnlearnData
from medunlearn.methods.registry import register
from medunlearn.models import build_model
from medunlearn.sharding import shard_trainer, train_sharded
from medunlearn.training import train_model


@dataclass
class RetrainParams(Checked):
    """Overrides of the training recipe for Retrain (None: the original model's value)."""

    epochs: int | None = constrained(None, AT_LEAST_ONE)
    lr: float | None = constrained(None, POSITIVE)
    augment: AugMode | None = None


def fresh_model(context: Context, data: UnlearnData) -> nn.Module:
    """A newly initialised model of the experiment's architecture, seeded."""
    if context.model_config is None:
        raise ValueError("Retrain needs the model config to build a fresh model")
    torch.manual_seed(context.seed)
    dataset = data.dataset
    return build_model(context.model_config, dataset.channels, dataset.n_classes)


def retrain_sharded(data: UnlearnData, recipe: TrainConfig, context: Context) -> nn.Module:
    """A model trained in shards and slices, as its recipe says, on the retain set only (its
    slice checkpoints in the cache)."""
    if context.store is None or context.model_config is None:
        raise ValueError("a sharded Retrain needs the model cache and the model config")
    forget_set = data.forget_set
    removed = np.union1d(forget_set.forget_ids, forget_set.excluded)  # earlier requests' too
    trainer = shard_trainer(context.model_config, recipe, data.dataset, context.engine,
                            context.store, context.seed, removed)  # fmt: skip
    model, reused = train_sharded(trainer)
    context.earlier_seconds += reused
    return model


@register(
    "retrain", RetrainParams, "train a fresh model on the retain set (gold standard)", exact=True
)
def retrain(model: nn.Module, data: UnlearnData, params: RetrainParams, context: Context):
    """Ignore the trained model: train from scratch on the retain set only."""
    if context.train is None:
        raise ValueError("Retrain needs the training recipe of the original model")
    overrides = {k: v for k, v in dataclasses.asdict(params).items() if v is not None}
    recipe = dataclasses.replace(context.train, **overrides)
    if recipe.sharded:
        return retrain_sharded(data, recipe, context)
    result = train_model(
        fresh_model(context, data),
        data.dataset,
        data.retain_index,
        recipe,
        context.engine,
        context.seed,
        context.state_path,
        description=context.name,
        on_epoch=context.on_epoch,
    )
    context.earlier_seconds += result.resumed_seconds
    return result.model
