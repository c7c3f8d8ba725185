"""Trained models as checkpoints: what a checkpoint records, the cache key of trained weights,
and rebuilding a checkpoint's model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medunlearn.config import ExperimentConfig, ModelConfig, to_dict
from medunlearn.data import Dataset
from medunlearn.models import build_model, load_weights, model_meta
from medunlearn.store import cache_key, load_checkpoint, load_tensors, save_checkpoint, save_tensors

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

    def save(self, path: Path) -> None:
        """Write the model and its metadata as a safetensors checkpoint, its difficulty beside
        it first (the checkpoint, written last, marks the pair complete)."""
        sibling = difficulty_path(path)
        if self.difficulty is None:
            sibling.unlink(missing_ok=True)
        else:
            meta = {"format": DIFFICULTY_FORMAT, "data_fingerprint": self.meta["data_fingerprint"]}
            save_tensors(sibling, {"difficulty": torch.from_numpy(self.difficulty)}, meta)
        save_checkpoint(path, self.model, self.meta)


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
    return TrainedModel(model, meta, load_difficulty(path, dataset))
