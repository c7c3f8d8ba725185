"""Trained models as checkpoints: what a checkpoint records, the cache key of trained weights,
and rebuilding a checkpoint's model (a sharded one with its slice checkpoints)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medunlearn.config import ExperimentConfig, ModelConfig, TrainConfig, to_dict
from medunlearn.data import Dataset
from medunlearn.models import build_model, load_weights, model_meta
from medunlearn.sharding import ShardedModel, Sharding, bundle, empty_sharded
from medunlearn.store import cache_key, load_checkpoint, load_tensors, save_checkpoint, save_tensors

# the fields of a training recipe that only a sharded model has
SHARDING_FIELDS = ("shards", "slices", "aggregate")

DIFFICULTY_FORMAT = "medunlearn-difficulty/1"


def difficulty_path(path: Path) -> Path:
    """Where a checkpoint's per-sample difficulty is kept: beside it, `<name>.difficulty.safetensors`."""
    return Path(path).with_suffix(".difficulty.safetensors")


@dataclass
class TrainedModel:
    """A model with the metadata its checkpoint carries, and for an original model trained by
    this version its `difficulty`: each training sample's mean training loss over the epochs
    (higher: harder), indexing the training split of the data `meta` names."""

    model: nn.Module
    meta: dict
    difficulty: np.ndarray | None = None

    def save(self, path: Path, beside: bool = False) -> None:
        """Write the model and its metadata as a safetensors checkpoint, its difficulty beside
        it first (the checkpoint, written last, marks the pair complete); `beside`: see
        `save_model`."""
        sibling = difficulty_path(path)
        if self.difficulty is None:
            sibling.unlink(missing_ok=True)
        else:
            meta = {"format": DIFFICULTY_FORMAT, "data_fingerprint": self.meta["data_fingerprint"]}
            save_tensors(sibling, {"difficulty": torch.from_numpy(self.difficulty)}, meta)
        save_model(path, self.model, self.meta, beside)


def slices_folder(path: Path) -> Path:
    """Where a deployed sharded checkpoint keeps its slice checkpoints: `<name>.slices/`."""
    return Path(path).with_suffix(".slices")


def save_model(path: Path, model: nn.Module, meta: dict, beside: bool = False) -> None:
    """Save a model as a safetensors checkpoint with its metadata. A sharded model's weights
    hold every shard and its layout, and its metadata names each slice checkpoint (relative to
    the checkpoint's folder) with its SHA-256; with `beside` they are first copied into
    `slices_folder(path)`, so that the checkpoint does not depend on the cache."""
    meta = {key: value for key, value in meta.items() if key != "sharding"}
    if isinstance(model, ShardedModel):
        if beside:
            model = bundle(model, slices_folder(path))
        meta["sharding"] = model.sharding.meta(Path(path).parent)
    save_checkpoint(path, model, meta)


def load_difficulty(path: Path, dataset: Dataset) -> np.ndarray | None:
    """The difficulty saved beside a checkpoint, if there is one for this very data (None for a
    checkpoint saved without it, e.g. by an older version, or one of other data)."""
    sibling = difficulty_path(path)
    if not sibling.is_file():
        return None
    tensors, meta = load_tensors(sibling)
    if (
        meta.get("format") != DIFFICULTY_FORMAT
        or meta.get("data_fingerprint") != dataset.fingerprint
    ):
        return None
    return tensors["difficulty"].numpy()


def checkpoint_meta(config: ExperimentConfig, dataset: Dataset, seed: int, **extra) -> dict:
    """A checkpoint's metadata: the model to rebuild, the data config, the recipe, the seed."""
    return {
        "model": model_meta(config.model, dataset.channels, dataset.n_classes),
        "data": to_dict(config.data),
        "data_fingerprint": dataset.fingerprint,
        "train": to_dict(config.train),
        "seed": seed,
        **extra,
    }


def data_key(dataset: Dataset, sharded: bool = False) -> dict:
    """What identifies the data in cache keys: its content hash and task, not its folder; for a
    sharded training also its patient mapping, where it has one (the layout keeps patients
    together; a model trained whole does not depend on it)."""
    key = {"fingerprint": dataset.fingerprint, "name": dataset.name, "size": dataset.size}
    if sharded and dataset.patients is not None:
        key["patients"] = cache_key("patients", dataset.patients.tolist())
    return key


def recipe_key(train: TrainConfig) -> dict:
    """The recipe as cache keys read it: a model trained whole leaves out the sharding fields,
    so its key is the one it had before sharded training existed (and its cache stays valid)."""
    fields = to_dict(train)
    if train.sharded:
        return fields
    return {key: value for key, value in fields.items() if key not in SHARDING_FIELDS}


def weights_key(kind: str, config: ExperimentConfig, dataset: Dataset, seed: int, *parts) -> str:
    """The key of anything whose weights a training produced: the data, the model, the recipe,
    the precision and the seed (every setting that changes the weights), plus `parts`."""
    bf16, train = config.runtime.bf16, config.train
    data = data_key(dataset, train.sharded)
    return cache_key(kind, data, config.model, recipe_key(train), bf16, seed, *parts)


def load_model(path: Path, model_config: ModelConfig, dataset: Dataset) -> TrainedModel:
    """Rebuild a checkpoint's model, refusing one of another architecture or task; a sharded
    checkpoint gives a ShardedModel that finds its slice checkpoints through the metadata."""
    state, meta = load_checkpoint(path)
    if "sharding" in meta:
        sharding = Sharding.from_meta(meta["sharding"], Path(path).parent)
        model = empty_sharded(sharding, model_config, dataset)
    else:
        model = build_model(model_config, dataset.channels, dataset.n_classes)
    expected = model_meta(model_config, dataset.channels, dataset.n_classes)
    load_weights(model, state, meta.get("model", {}), expected)
    return TrainedModel(model, meta, load_difficulty(path, dataset))
