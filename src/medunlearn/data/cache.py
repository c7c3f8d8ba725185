"""Memory-mapped copies of npz datasets, for sets that do not fit in memory.

An npz file (a zip of .npy members, usually compressed) must be decompressed to be read. For a
set larger than memory (PathMNIST at 224 px is ~13 GiB of uint8) it is converted once, streaming
a few thousand rows at a time, into raw `.npy` files in the layout the library uses, which are then
memory-mapped: batches gather their rows from the page cache and nothing is loaded whole.

Layout of a cache folder (e.g. `$MEDUNLEARN_CACHE/arrays/pathmnist_224/`):

- `<split>_images.npy`: uint8 (N, C, H, W), C-contiguous;
- `<split>_labels.npy`: int64 (N,);
- `meta.json`: the format version, the source file (name, byte size, modification time), each
  array's shape and the data fingerprint (the same hash `Dataset.fingerprint` computes).

Every file is written under a temporary name and renamed into place, and `meta.json` is written
last and removed first on a rebuild, so a folder with a valid `meta.json` is complete. A folder
whose files do not match their `meta.json` (truncated, corrupt, missing) or whose source file
changed is rebuilt. The arrays open copy-on-write (`mmap_mode="c"`): a stray in-place write
changes the process's private pages, never the cache, and cannot crash on a read-only mapping.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medunlearn.data.dataset import DataError, Split
from medunlearn.store import atomic_write, atomic_write_text

FORMAT = "medunlearn-arrays/1"
SPLITS = ("train", "val", "test")
# `load_medmnist(mmap=None)` maps a set whose uint8 images take more than this
MMAP_AUTO_BYTES = 4 * 2**30
# bytes of decompressed rows converted at a time
CHUNK_BYTES = 64 * 2**20

Validate = Callable[[dict], None]
Transform = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class ArrayHeader:
    """Shape and dtype of an npz member, read from its .npy header without its data."""

    shape: tuple[int, ...]
    dtype: np.dtype
    fortran: bool = False

    @property
    def ndim(self) -> int:
        """Number of dimensions, as an array's."""
        return len(self.shape)


def _read_header(handle) -> ArrayHeader:
    """The header of an open .npy stream, leaving the stream at the first data byte."""
    version = np.lib.format.read_magic(handle)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(handle)
    elif version == (2, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(handle)
    else:
        raise DataError(f".npy format version {version} is not supported")
    return ArrayHeader(tuple(shape), np.dtype(dtype), fortran)


def npz_headers(path: Path) -> dict[str, ArrayHeader]:
    """Every member's shape and dtype (only the headers are decompressed)."""
    try:
        with zipfile.ZipFile(path) as archive:
            headers = {}
            for info in archive.infolist():
                if info.filename.endswith(".npy"):
                    with archive.open(info) as handle:
                        headers[info.filename[:-4]] = _read_header(handle)
            return headers
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"{path} is not a readable npz file: {error}") from error


def image_bytes(path: Path, size: int) -> int:
    """Bytes the uint8 images of an npz take at `size` x `size` pixels (headers only)."""
    total = 0
    for key, header in npz_headers(path).items():
        if key.endswith("_images") and header.ndim >= 3:
            channels = header.shape[3] if header.ndim == 4 else 1
            total += header.shape[0] * channels * size * size
    return total


def _stream_rows(path: Path, key: str, rows_per_chunk: int) -> Iterator[np.ndarray]:
    """The rows of one npz member in C order, a chunk of rows at a time, decompressed lazily."""
    with zipfile.ZipFile(path) as archive, archive.open(f"{key}.npy") as handle:
        header = _read_header(handle)
        if header.fortran and header.ndim > 1:
            raise DataError(f"{path}: {key} is stored in Fortran order; re-save it in C order")
        row_shape = header.shape[1:]
        row_bytes = header.dtype.itemsize * int(np.prod(row_shape, dtype=np.int64))
        left = header.shape[0]
        while left:
            n = min(rows_per_chunk, left)
            data = handle.read(n * row_bytes)
            if len(data) != n * row_bytes:
                raise DataError(f"{path}: {key} is truncated")
            # a writable buffer: torch.from_numpy warns on read-only arrays
            yield np.frombuffer(bytearray(data), dtype=header.dtype).reshape((n, *row_shape))
            left -= n


def _read_member(path: Path, key: str) -> np.ndarray:
    """One (small) npz member, whole."""
    chunks = list(_stream_rows(path, key, 1 << 30))
    return chunks[0] if len(chunks) == 1 else np.concatenate(chunks)


def arrays_folder(root: Path, flag: str, size: int, file_size: int | None = None) -> Path:
    """The cache folder of a set at a size: `<root>/arrays/<flag>_<size>` (or `_<file>to<size>`
    when it is resized from a file of another size)."""
    name = f"{flag}_{size}" if file_size in (None, size) else f"{flag}_{file_size}to{size}"
    return Path(root) / "arrays" / name


def source_key(path: Path) -> dict:
    """What identifies the source file: its name, byte size and modification time."""
    stat = path.stat()
    return {"name": path.name, "bytes": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def to_nchw(rows: np.ndarray) -> torch.Tensor:
    """uint8 (n, H, W[, C]) rows as a contiguous (n, C, H, W) tensor."""
    tensor = torch.from_numpy(rows)
    tensor = tensor.unsqueeze(1) if tensor.ndim == 3 else tensor.permute(0, 3, 1, 2)
    return tensor.contiguous()


def _write_images(
    source: Path, key: str, header: ArrayHeader, target: Path, transform: Transform, digest
) -> tuple[int, ...]:
    """Convert one images member to a (N, C, H, W) .npy, chunk by chunk; returns its shape."""
    n = header.shape[0]
    row_bytes = max(1, int(np.prod(header.shape[1:], dtype=np.int64)))
    rows_per_chunk = max(1, CHUNK_BYTES // row_bytes)
    probe = transform(to_nchw(np.zeros((1, *header.shape[1:]), dtype=np.uint8)))
    shape = (n, *probe.shape[1:])

    def write(tmp: Path) -> None:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
        start = 0
        for rows in _stream_rows(source, key, rows_per_chunk):
            chunk = np.ascontiguousarray(transform(to_nchw(rows)).numpy())
            out[start : start + len(chunk)] = chunk
            digest.update(chunk.data)
            start += len(chunk)
        out.flush()
        del out

    atomic_write(target, write)
    return shape


def _save(path: Path, array: np.ndarray) -> None:
    """np.save to exactly `path` (given a name, np.save would append `.npy` to it)."""
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def _valid_array(path: Path, shape: list[int], dtype: str) -> np.ndarray | None:
    """The memory-mapped array at `path` if it has this shape and dtype and its exact size."""
    try:
        array = np.load(path, mmap_mode="c", allow_pickle=False)
    except (OSError, ValueError, EOFError):
        return None
    expected = array.offset + array.nbytes if isinstance(array, np.memmap) else None
    if (
        not isinstance(array, np.memmap)
        or list(array.shape) != list(shape)
        or array.dtype != np.dtype(dtype)
        or not array.flags.c_contiguous
        or path.stat().st_size != expected
    ):
        return None
    return array


def _open(folder: Path, source: dict) -> tuple[dict[str, Split], str] | None:
    """The mapped splits and the fingerprint of a complete, current cache folder, else None."""
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or meta.get("source") != source:
        return None
    splits = {}
    for split in SPLITS:
        shapes = meta.get("shapes", {}).get(split)
        if not shapes:
            return None
        images = _valid_array(folder / f"{split}_images.npy", shapes["images"], "uint8")
        labels = _valid_array(folder / f"{split}_labels.npy", shapes["labels"], "int64")
        if images is None or labels is None:
            return None
        splits[split] = Split(torch.from_numpy(images), torch.from_numpy(np.array(labels)))
    return splits, meta["fingerprint"]


def _build(folder: Path, path: Path, source: dict, validate: Validate, transform: Transform):
    """Convert the npz at `path` into the cache folder (validated first); writes meta last."""
    headers = npz_headers(path)
    arrays: dict = {}
    for split in SPLITS:
        arrays[f"{split}_images"] = headers.get(f"{split}_images")
        if f"{split}_labels" in headers:
            arrays[f"{split}_labels"] = _read_member(path, f"{split}_labels")
    validate({k: v for k, v in arrays.items() if v is not None})
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").unlink(missing_ok=True)
    digest = hashlib.sha256()
    shapes = {}
    for split in SPLITS:
        key = f"{split}_images"
        image_shape = _write_images(
            path, key, arrays[key], folder / f"{key}.npy", transform, digest
        )
        labels = np.ascontiguousarray(arrays[f"{split}_labels"][:, 0].astype(np.int64))
        digest.update(labels.data)
        atomic_write(folder / f"{split}_labels.npy", lambda tmp, a=labels: _save(tmp, a))
        shapes[split] = {"images": list(image_shape), "labels": [len(labels)]}
    meta = {
        "format": FORMAT,
        "source": source,
        "shapes": shapes,
        "fingerprint": digest.hexdigest()[:16],
    }
    atomic_write_text(folder / "meta.json", json.dumps(meta))


def mapped_splits(
    path: Path, folder: Path, validate: Validate, transform: Transform
) -> tuple[dict[str, Split], str]:
    """The train / val / test splits of the npz at `path`, memory-mapped from `folder`.

    The folder is (re)built first when it is missing, incomplete, corrupt or stale:
    `validate(arrays)` checks the npz (image members as `ArrayHeader`s, labels as arrays) and
    `transform` maps each chunk of (n, C, H, W) uint8 images to what is stored (e.g. a resize).
    Also returns the data fingerprint, equal to `Dataset.fingerprint` of the same data.
    """
    source = source_key(path)
    opened = _open(folder, source)
    if opened is None:
        try:
            _build(folder, path, source, validate, transform)
        except DataError:
            raise
        except (ValueError, zipfile.BadZipFile, EOFError, zlib.error) as error:
            raise DataError(f"{path} is not a readable npz file: {error}") from error
        opened = _open(folder, source)
        if opened is None:
            raise DataError(f"the memory-mapped cache in {folder} could not be written")
    return opened
