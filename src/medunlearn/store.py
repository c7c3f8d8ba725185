"""Atomic files, checkpoints loaded as data only, and the content-addressed cache of models."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

CHECKPOINT_FORMAT = "medunlearn-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the model asked for."""


def atomic_write(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a temporary file in the same folder, then rename it over `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: Path, text: str) -> None:
    """Write text so that readers see the old file or the whole new one, never a part."""
    atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_json(path: Path, data: Any) -> None:
    """Write JSON atomically (indented, keys in insertion order)."""
    atomic_write_text(path, json.dumps(data, indent=1, default=str))


def atomic_save(path: Path, data: dict) -> None:
    """torch.save a dict of tensors and plain values atomically."""
    atomic_write(path, lambda tmp: torch.save(data, tmp))


def load_data_file(path: Path) -> dict:
    """torch.load with weights_only=True: a checkpoint is data, never code."""
    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # unpickling raises many types for a corrupt or foreign file
        raise CheckpointError(f"{path} is not a readable checkpoint: {error}") from error
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is not a medunlearn checkpoint")
    return data


def state_fingerprint(model: torch.nn.Module) -> str:
    """A content hash of a model's weights and buffers: names a model in cache keys."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:16]


def save_checkpoint(path: Path, model: torch.nn.Module, meta: dict) -> None:
    """Save a model's weights with the metadata needed to rebuild and check it."""
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_save(Path(path), {"format": CHECKPOINT_FORMAT, "meta": meta, "state_dict": state})


def load_checkpoint(path: Path) -> tuple[dict, dict]:
    """The (state_dict, meta) of a medunlearn checkpoint."""
    data = load_data_file(Path(path))
    if data.get("format") != CHECKPOINT_FORMAT or "state_dict" not in data:
        raise CheckpointError(
            f"{path} is not a medunlearn checkpoint (format {data.get('format')!r}); "
            "train one with `medunlearn train`"
        )
    return data["state_dict"], data.get("meta", {})


def cache_root(cache_dir: str | None) -> Path:
    """The cache folder: the given one, else $MEDUNLEARN_CACHE, else ~/.cache/medunlearn."""
    default = Path.home() / ".cache" / "medunlearn"
    return Path(cache_dir or os.environ.get("MEDUNLEARN_CACHE") or default).expanduser()


class Store:
    """A folder of artefacts (checkpoints, masks) named by the hash of what produced them."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, kind: str, key: str, suffix: str = ".pt") -> Path:
        """Where the artefact of a kind and content key lives."""
        return self.root / kind / f"{key}{suffix}"
