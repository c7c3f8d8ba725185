"""The cached steps of one unlearning pipeline: the original model (a sharded one from its
shards, each trained by a job of its own), a method's run from it, and Retrain, each
identified by the settings that change its weights."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medunlearn.checkpoints import TrainedModel, checkpoint_meta, load_model, weights_key
from medunlearn.config import ExperimentConfig, MethodConfig
from medunlearn.data import Dataset
from medunlearn.engine import Engine
from medunlearn.forget import ForgetSet
from medunlearn.methods import Context, UnlearnData, unlearn
from medunlearn.methods.registry import method_params
from medunlearn.models import build_model
from medunlearn.roles import RETRAIN, role_of
from medunlearn.seeds import Seeds
from medunlearn.sharding import ShardTrainer, shard_trainer, train_sharded
from medunlearn.store import Store
from medunlearn.training import train_model


def train_original(
    config: ExperimentConfig, dataset: Dataset, engine: Engine, store: Store, seed: int
) -> TrainedModel:
    """The original model on the whole training split, trained once per config and seed, with
    its per-sample difficulty.

    A cached original saved without the difficulty (by an older version) is reused as it is,
    unless the config has easy or hard forget sets: then it is trained again, the very training
    that the cache would have to be cleared by hand for, bitwise the same weights on a CPU."""
    key = weights_key("original", config, dataset, seed)
    path = store.path("original", key)
    if path.is_file():
        cached = load_model(path, config.model, dataset)
        if cached.difficulty is not None or not any(f.uses_difficulty for f in config.forget):
            engine.progress.log(f"original model (seed {seed}): reusing {path}")
            return cached
        engine.progress.log(
            f"original model (seed {seed}): {path} has no per-sample difficulty (cached by an "
            "older medunlearn), which the easy / hard forget sets need: training it again"
        )
    if config.train.sharded:
        model, _ = train_sharded(original_shards(config, dataset, engine, store, seed))
        meta = checkpoint_meta(config, dataset, seed, seconds=model.sharding.seconds)
        trained = TrainedModel(model, meta)
        trained.save(path)
        return trained
    torch.manual_seed(seed)
    model = build_model(config.model, dataset.channels, dataset.n_classes)
    all_rows = torch.arange(len(dataset.train))
    state_path = store.path("states", f"original-{key}", ".pt")
    result = train_model(
        model, dataset, all_rows, config.train, engine, seed, state_path, f"original s{seed}"
    )
    meta = checkpoint_meta(
        config, dataset, seed, seconds=result.seconds, best_epoch=result.best_epoch,
        best_val=result.best_val, history=result.history,
    )  # fmt: skip
    trained = TrainedModel(result.model, meta, result.difficulty)
    trained.save(path)
    store.note_influence(path, all_rows.numpy(), len(dataset.train), dataset.fingerprint)
    state_path.unlink(missing_ok=True)
    return trained


def original_shards(
    config: ExperimentConfig, dataset: Dataset, engine: Engine, store: Store, seed: int
) -> ShardTrainer:
    """The trainer of a sharded original's shards (their slice checkpoints in the cache)."""
    return shard_trainer(config.model, config.train, dataset, engine, store, seed)


def train_shard(
    config: ExperimentConfig, dataset: Dataset, engine: Engine, store: Store, seed: int, shard: int
) -> None:
    """One shard of a sharded original, every slice checkpointed in the cache: a job of its own,
    so that an executor spreads the shards; the original's job then reads them back."""
    original_shards(config, dataset, engine, store, seed).train_shard(shard)


def run_method(
    method: MethodConfig, data: UnlearnData, original: TrainedModel, context: Context, key: str
) -> tuple[nn.Module, float]:
    """Unlearn with one method from a copy of the original, resumable under `key` (the row's
    weights key); Retrain's model is cached, since every later run on this forget set reuses it.
    """
    store = context.store
    retrain = role_of(method) == RETRAIN
    cached = store.path("retrain", key) if store is not None and retrain else None
    if cached is not None and cached.is_file():
        context.engine.progress.log(f"retrain: reusing {cached}")
        retrained = load_model(cached, context.model_config, data.dataset)
        return retrained.model, retrained.meta["seconds"]
    resumable = resumable_context(context, method, key)
    result = unlearn(original.model, data, method, resumable)
    if cached is not None:
        TrainedModel(result.model, {**original.meta, "seconds": result.seconds}).save(cached)
        note_influence(store, cached, data, method)
    for path in resumable.state_files():
        path.unlink(missing_ok=True)
    return result.model, result.seconds


def influence(data: UnlearnData, method: MethodConfig) -> np.ndarray:
    """The training rows whose images a method's result learned from: Retrain's retain set;
    anything run from the original, every row the original trained on (all of them)."""
    if role_of(method) == RETRAIN:
        return data.retain_index.numpy()
    return np.arange(len(data.dataset.train))


def note_influence(
    store: Store | None, path: Path, data: UnlearnData, method: MethodConfig
) -> None:
    """Record beside a cached artefact of a method's run which images it learned from."""
    if store is not None:
        dataset = data.dataset
        store.note_influence(path, influence(data, method), len(dataset.train), dataset.fingerprint)


def resumable_context(context: Context, method: MethodConfig, key: str) -> Context:
    """The context of a method's run whose state is saved in the cache under `key` (so that an
    interrupted run resumes; its `state_files` are what a finished or abandoned run removes)."""
    store = context.store
    state_path = None if store is None else store.path("states", f"{method.name}-{key}", ".pt")
    return dataclasses.replace(context, state_path=state_path)


def row_key(
    config: ExperimentConfig,
    dataset: Dataset,
    seeds: Seeds,
    forget_set: ForgetSet,
    method: MethodConfig,
    seed: int | None = None,
) -> str:
    """What identifies a row's model: the original's training, the forget set's content, the
    method and its `seed` (the run's unlearning, or Retrain, seed unless given). Retrain's model
    depends on neither the original nor the display label: its key is its own seed, the forget
    set and its recipe, so every run (and the bank) shares it."""
    if role_of(method) == RETRAIN:
        seed = seeds.retrain if seed is None else seed
        return retrain_key(config, dataset, seed, forget_set, method)
    seed = seeds.unlearn if seed is None else seed
    return weights_key("row", config, dataset, seeds.train, forget_set.key, method, seed)


def retrain_key(
    config: ExperimentConfig,
    dataset: Dataset,
    seed: int,
    forget_set: ForgetSet,
    method: MethodConfig,
) -> str:
    """The key of a Retrain with `seed` on a forget set, by its recipe (not its label)."""
    params = method_params(RETRAIN, method.params)
    return weights_key("retrain", config, dataset, seed, forget_set.key, params)
