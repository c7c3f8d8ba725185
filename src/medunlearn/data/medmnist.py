"""MedMNIST npz files: find, download when allowed, validate and load into uint8 tensors."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from medmnist import INFO
from medmnist.info import DEFAULT_ROOT

from medunlearn.data import cache
from medunlearn.data.binary import DEFAULT_POSITIVE
from medunlearn.data.dataset import DataError, Dataset, Split
from medunlearn.store import cache_root

SIZES = (28, 64, 128, 224)
SPLITS = ("train", "val", "test")


def data_root(root: str | Path | None) -> Path:
    """The data folder: the given one, else $MEDUNLEARN_DATA, else the medmnist default."""
    return Path(root or os.environ.get("MEDUNLEARN_DATA") or DEFAULT_ROOT).expanduser()


def npz_name(flag: str, size: int) -> str:
    """The official file name of a flag at a size: `bloodmnist.npz` or `bloodmnist_64.npz`."""
    return f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"


def dataset_info(flag: str) -> dict:
    """medmnist's INFO entry for a 2D multi-class or binary flag, or a clear error."""
    if flag not in INFO:
        names = sorted(k for k, v in INFO.items() if not k.endswith("3d"))
        raise DataError(f"unknown dataset '{flag}'; known 2D MedMNIST datasets: {names}")
    info = INFO[flag]
    if flag.endswith("3d"):
        raise DataError(f"'{flag}' is a 3D dataset; medunlearn handles 2D images only")
    if info["task"].startswith("multi-label"):
        raise DataError(
            f"'{flag}' is a multi-label dataset ({info['task']}); multi-label unlearning is "
            "not supported yet: choose a multi-class or binary dataset"
        )
    return info


def _download(flag: str, size: int, folder: Path) -> None:
    """Fetch the official file through medmnist; any failure becomes a DataError naming it."""
    import medmnist

    folder.mkdir(parents=True, exist_ok=True)
    dataset_cls = getattr(medmnist, INFO[flag]["python_class"])
    try:
        dataset_cls(split="train", download=True, root=str(folder), size=size)
    except Exception as error:  # network errors come in many types
        raise DataError(
            f"{npz_name(flag, size)} is not in {folder} and could not be downloaded ({error}). "
            f"Put the file there, or point --data-root / $MEDUNLEARN_DATA at the folder holding it."
        ) from error


def locate(flag: str, size: int, root: str | Path | None, download: bool = True) -> Path:
    """The path of a flag's npz at a size, downloading it when missing and allowed."""
    if size not in SIZES:
        raise DataError(f"unsupported MedMNIST size {size}; choose one of {SIZES}")
    folder = data_root(root)
    path = folder / npz_name(flag, size)
    if not path.is_file():
        if not download:
            raise DataError(f"{path.name} not found in {folder}")
        _download(flag, size, folder)
    return path


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    """All arrays of an npz file, with a clear error when it is not a readable npz."""
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise DataError(f"{path} is not a readable npz file: {error}") from error


def _check_split(arrays: dict, split: str, size: int, channels: int, n_classes: int, path: Path):
    """Validate one split's images and labels against the dataset's declared layout."""
    for key in (f"{split}_images", f"{split}_labels"):
        if key not in arrays:
            raise DataError(f"{path}: missing key '{key}' (found {sorted(arrays)})")
    images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
    shape = (size, size) if channels == 1 else (size, size, channels)
    if images.dtype != np.uint8 or images.ndim != len(shape) + 1 or images.shape[1:] != shape:
        raise DataError(
            f"{path}: {split}_images must be uint8 shaped (N, {', '.join(map(str, shape))}), "
            f"got {images.dtype} {images.shape}"
        )
    if labels.ndim != 2 or labels.shape[1] != 1 or labels.shape[0] != images.shape[0]:
        raise DataError(
            f"{path}: {split}_labels must be shaped ({images.shape[0]}, 1), got {labels.shape}"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: {split}_labels must be integers, got {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= n_classes):
        raise DataError(
            f"{path}: {split}_labels must lie in [0, {n_classes - 1}], "
            f"found {labels.min()}..{labels.max()}"
        )
    if images.shape[0] == 0:
        raise DataError(f"{path}: the {split} split is empty")


def _to_split(images: np.ndarray, labels: np.ndarray) -> Split:
    """uint8 (N, H, W[, C]) + (N, 1) arrays -> a Split of (N, C, H, W) uint8 and int64 labels."""
    return Split(cache.to_nchw(images), torch.from_numpy(labels[:, 0].astype(np.int64)))


def resize_images(images: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a uint8 (N, C, H, W) batch to size x size (bilinear, antialiased), still uint8."""
    if images.shape[-1] == size:
        return images
    chunks = [
        F.interpolate(chunk.float(), size=(size, size), mode="bilinear", antialias=True)
        .round_()
        .clamp_(0, 255)
        .to(torch.uint8)
        for chunk in images.split(4096)
    ]
    return torch.cat(chunks)


def load_medmnist(
    flag: str,
    size: int = 28,
    root: str | Path | None = None,
    file_size: int | None = None,
    download: bool = True,
    mmap: bool | None = None,
    cache_dir: str | Path | None = None,
) -> Dataset:
    """Load a 2D MedMNIST dataset with its official splits, validated, at `size` pixels.

    `file_size` reads a file of another size and resizes it (e.g. 28 px files used at 64 px).
    `mmap=True` converts the file once into raw uint8 arrays under
    `<cache>/arrays/<flag>_<size>/` (cache: `cache_dir`, else $MEDUNLEARN_CACHE, else
    ~/.cache/medunlearn) and memory-maps them, for sets that do not fit in memory; `None` (the
    default) does so when the images take more than `cache.MMAP_AUTO_BYTES` (4 GiB).
    """
    info = dataset_info(flag)
    file_size = file_size or size
    path = locate(flag, file_size, root, download)
    n_classes, channels = len(info["label"]), int(info["n_channels"])
    if mmap is None:
        mmap = cache.image_bytes(path, size) > cache.MMAP_AUTO_BYTES
    fingerprint = None
    if mmap:
        folder = cache.arrays_folder(cache_root(cache_dir), flag, size, file_size)

        def validate(arrays: dict) -> None:
            for split in SPLITS:
                _check_split(arrays, split, file_size, channels, n_classes, path)

        splits, fingerprint = cache.mapped_splits(
            path, folder, validate, lambda images: resize_images(images, size)
        )
    else:
        arrays = _read_npz(path)
        splits = {}
        for split in SPLITS:
            _check_split(arrays, split, file_size, channels, n_classes, path)
            loaded = _to_split(arrays[f"{split}_images"], arrays[f"{split}_labels"])
            loaded.images = resize_images(loaded.images, size)
            splits[split] = loaded
    names = [info["label"][str(i)] for i in range(n_classes)]
    task = "binary" if info["task"].startswith("binary") else "multi-class"
    positive = DEFAULT_POSITIVE.get(flag, ()) if task == "binary" else ()
    dataset = Dataset(
        flag, size, n_classes, channels, names, task=task, **splits,
        positive_class=positive[0] if len(positive) == 1 else None,
    )  # fmt: skip
    if fingerprint is not None:
        # the hash of the mapped arrays, taken while converting: hashing them again (as
        # `Dataset.fingerprint` would) reads the whole set back from disk at every load
        dataset.__dict__["fingerprint"] = fingerprint
    return dataset
