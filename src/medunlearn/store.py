"""Atomic files, checkpoints as data (safetensors), cache keys and the content-addressed cache."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from medunlearn.config import UserError, to_dict

CHECKPOINT_FORMAT = "medunlearn-checkpoint/1"
# the safetensors header key that holds a checkpoint's metadata as JSON
META_KEY = "medunlearn"


class CheckpointError(UserError):
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


def save_arrays(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write named numpy arrays as one npz file, atomically (data, never pickled objects)."""

    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            np.savez(handle, **arrays)

    atomic_write(path, write)


def load_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays `save_arrays` wrote (pickled objects refused)."""
    with np.load(path, allow_pickle=False) as saved:
        return {name: saved[name] for name in saved.files}


def load_data_file(path: Path) -> dict:
    """torch.load with weights_only=True: a resumable state or an old `.pt` checkpoint is data,
    never code; a file that holds pickled code is refused."""
    if not Path(path).is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:  # weights_only met an object that only code could rebuild
        raise CheckpointError(
            f"{path} holds pickled code, not only weights, and is refused: a checkpoint is data"
        ) from None
    except Exception as error:  # unpickling raises many types for a corrupt or foreign file
        raise CheckpointError(f"{path} is not a readable checkpoint: {error}") from error
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is not a medunlearn checkpoint")
    return data


def file_sha256(path: Path) -> str:
    """SHA-256 of a file's bytes: what an audit trail and a sharded checkpoint record of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def state_fingerprint(model: torch.nn.Module) -> str:
    """A content hash of a model's weights and buffers: names a model in cache keys."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy())
    return digest.hexdigest()[:16]


def cache_key(kind: str, *parts: Any) -> str:
    """The content key of a cached artefact: a stable hash of its kind and of every input that
    produced it (configs, seeds, ids, fingerprints)."""
    text = json.dumps([kind, *(to_dict(part) for part in parts)], sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_tensors(path: Path, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    """Write tensors as safetensors, `meta` as JSON in its header, atomically."""
    state = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    header = {META_KEY: json.dumps(meta, default=str)}
    atomic_write(Path(path), lambda tmp: save_file(state, str(tmp), metadata=header))


def load_tensors(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    """The tensors and metadata `save_tensors` wrote."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            meta = json.loads((handle.metadata() or {}).get(META_KEY, "{}"))
            return {key: handle.get_tensor(key) for key in handle.keys()}, meta  # noqa: SIM118
    except (SafetensorError, OSError, json.JSONDecodeError) as error:
        raise CheckpointError(f"{path} is not a readable checkpoint: {error}") from error


def save_checkpoint(path: Path, model: torch.nn.Module, meta: dict) -> None:
    """Save a model's weights as safetensors, with the metadata needed to rebuild and check it."""
    save_tensors(path, model.state_dict(), {"format": CHECKPOINT_FORMAT, **meta})


def _is_safetensors(path: Path) -> bool:
    """Whether a file starts as safetensors do: an 8-byte header length, then a JSON object."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    return len(head) == 9 and head[8:9] == b"{"


def load_checkpoint(path: Path) -> tuple[dict, dict]:
    """The (state_dict, meta) of a medunlearn checkpoint: safetensors, or an old `.pt` file
    read weights-only."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    if _is_safetensors(path):
        state, meta = load_tensors(path)
        fmt = meta.pop("format", None)
    else:
        data = load_data_file(path)
        state, meta, fmt = data.get("state_dict"), data.get("meta", {}), data.get("format")
    if fmt != CHECKPOINT_FORMAT or state is None:
        raise CheckpointError(
            f"{path} is not a medunlearn checkpoint (format {fmt!r}); "
            "train one with `medunlearn train`"
        )
    return state, meta


def cache_root(cache_dir: str | None) -> Path:
    """The cache folder: the given one, else $MEDUNLEARN_CACHE, else ~/.cache/medunlearn."""
    default = Path.home() / ".cache" / "medunlearn"
    return Path(cache_dir or os.environ.get("MEDUNLEARN_CACHE") or default).expanduser()


INFLUENCE = ".influence.json"


class Store:
    """A folder of artefacts (checkpoints, masks) named by the hash of what produced them.

    Each trained artefact records which training images influenced it (`note_influence`), so
    that a deletion can find and purge everything that learned from a forgotten patient."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, kind: str, key: str, suffix: str = ".safetensors") -> Path:
        """Where the artefact of a kind and content key lives."""
        return self.root / kind / f"{key}{suffix}"

    def note_influence(self, artefact: Path, rows: np.ndarray, n_train: int, data: str) -> None:
        """Record beside an artefact the training rows of data `data` (its fingerprint) whose
        images it learned from (a bitmask)."""
        mask = np.zeros(n_train, dtype=bool)
        mask[np.asarray(rows, dtype=np.int64)] = True
        bits = base64.b64encode(np.packbits(mask).tobytes()).decode()
        note = {"data": data, "n_train": n_train, "rows": bits}
        atomic_write_text(Path(f"{artefact}{INFLUENCE}"), json.dumps(note))

    def influenced_by(self, rows: np.ndarray, data: str) -> list[Path]:
        """The artefacts of data `data` that learned from any of the given training rows."""
        found = []
        for note_path in sorted(self.root.rglob(f"*{INFLUENCE}")):
            note = json.loads(note_path.read_text())
            if note["data"] != data:
                continue
            packed = np.frombuffer(base64.b64decode(note["rows"]), dtype=np.uint8)
            mask = np.unpackbits(packed)[: note["n_train"]].astype(bool)
            if mask[np.asarray(rows, dtype=np.int64)].any():
                found.append(Path(str(note_path)[: -len(INFLUENCE)]))
        return found

    def purge(self, artefact: Path) -> list[Path]:
        """Delete an artefact and every file beside it that shares its stem (its difficulty,
        its influence note); the files deleted."""
        stem = artefact.name.split(".", 1)[0]
        removed = sorted(artefact.parent.glob(f"{stem}.*"))
        for path in removed:
            path.unlink(missing_ok=True)
        return removed
