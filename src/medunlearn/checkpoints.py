"""Trained models as checkpoints: what a checkpoint records, the cache key of trained weights,
and rebuilding a checkpoint's model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from medunlearn.config import ExperimentConfig, ModelConfig, to_dict
from medunlearn.data import Dataset
from medunlearn.models import build_model, load_weights, model_meta
from medunlearn.store import cache_key, load_checkpoint, save_checkpoint


@dataclass
class TrainedModel:
    """A model with the metadata its checkpoint carries."""

    model: nn.Module
    meta: dict

    def save(self, path: Path) -> None:
        """Write the model and its metadata as a safetensors checkpoint."""
        save_checkpoint(path, self.model, self.meta)


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


def data_key(dataset: Dataset) -> dict:
    """What identifies the data in cache keys: its content hash and task, not its folder."""
    return {"fingerprint": dataset.fingerprint, "name": dataset.name, "size": dataset.size}


def weights_key(kind: str, config: ExperimentConfig, dataset: Dataset, seed: int, *parts) -> str:
    """The key of anything whose weights a training produced: the data, the model, the recipe,
    the precision and the seed (every setting that changes the weights), plus `parts`."""
    bf16 = config.runtime.bf16
    return cache_key(kind, data_key(dataset), config.model, config.train, bf16, seed, *parts)


def load_model(path: Path, model_config: ModelConfig, dataset: Dataset) -> TrainedModel:
    """Rebuild a checkpoint's model, refusing one of another architecture or task."""
    state, meta = load_checkpoint(path)
    model = build_model(model_config, dataset.channels, dataset.n_classes)
    expected = model_meta(model_config, dataset.channels, dataset.n_classes)
    load_weights(model, state, meta.get("model", {}), expected)
    return TrainedModel(model, meta)
