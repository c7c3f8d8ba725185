"""The in-memory dataset every other module consumes: uint8 image tensors plus integer labels."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch

from medunlearn.config import UserError


class DataError(UserError):
    """A dataset file is missing, malformed or asked for in a way that cannot be served."""


@dataclass
class Split:
    """One split held in memory: images uint8 (N, C, H, W), labels int64 (N,)."""

    images: torch.Tensor
    labels: torch.Tensor
    original_labels: torch.Tensor | None = None

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class Dataset:
    """A classification dataset with its official train / val / test splits, and where a
    mapping is given (`data.patients`) the patient of each training image."""

    name: str
    size: int
    n_classes: int
    channels: int
    label_names: list[str]
    train: Split
    val: Split
    test: Split
    task: str = "multi-class"
    positive_class: int | None = None
    patients: np.ndarray | None = None

    @cached_property
    def fingerprint(self) -> str:
        """A short content hash of all splits (images and labels): identifies the exact data.

        The arrays' buffers are hashed in place, with no copy (a memory-mapped set is read
        page by page, never held whole in memory).
        """
        digest = hashlib.sha256()
        for split in (self.train, self.val, self.test):
            for tensor in (split.images, split.labels):
                digest.update(np.ascontiguousarray(tensor.numpy()).data)
        return digest.hexdigest()[:16]

    def describe(self) -> str:
        """One line for logs: name, size, splits, classes."""
        return (
            f"{self.name} {self.size}px, {self.channels} channel(s), {self.n_classes} classes, "
            f"train/val/test = {len(self.train)}/{len(self.val)}/{len(self.test)}"
        )
