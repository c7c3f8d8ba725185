"""CIFAR-10 / CIFAR-100 from torchvision's on-disk python format, with a fixed validation split.

Files read (the folders `torchvision.datasets.CIFAR10/CIFAR100(root, download=True)` writes):

- cifar10:  `<root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}`
- cifar100: `<root>/cifar-100-python/{train, test, meta}`

Each file is a python pickle of a dict: "data" a uint8 array (N, 3072) holding the R, G, B planes
of a 32x32 image row by row, and "labels" (cifar10) or "fine_labels" (cifar100).

Why not `torchvision.datasets.CIFAR10(root, download=False)`: it checks the md5 of every file
before reading, so it refuses any file that is not the official one (the test fixtures), and it
returns HWC arrays that would have to be transposed back. This module reads the same pickles the
same way (`encoding="latin1"`, as torchvision does), but through an unpickler that only
rebuilds numpy arrays, so a tampered file cannot run code, and it validates shapes and labels.

Splits: train and test are the official ones (50,000 / 10,000). CIFAR has no validation split, so
`val` is held out of the official train split: in each class, the round(10%) images (500 per class
for CIFAR-10, 50 for CIFAR-100, 5,000 in all) with the smallest key splitmix64(index + VAL_SEED),
index being the image's position in the official train split. The choice is therefore fixed and
independent of any library's random number generator; `train` keeps the other 45,000. Both keep
the official order.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from medunlearn.data.dataset import DataError, Dataset, Split

IMAGE_SIZE = 32
VAL_FRACTION = 0.1
VAL_SEED = 0


@dataclass(frozen=True)
class _Layout:
    """Where one CIFAR variant keeps its files and labels."""

    folder: str
    train_files: tuple[str, ...]
    test_file: str
    meta_file: str
    names_key: str
    labels_key: str
    n_classes: int
    archive: str
    torchvision_class: str


_LAYOUTS = {
    "cifar10": _Layout(
        folder="cifar-10-batches-py",
        train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
        test_file="test_batch",
        meta_file="batches.meta",
        names_key="label_names",
        labels_key="labels",
        n_classes=10,
        archive="cifar-10-python.tar.gz",
        torchvision_class="CIFAR10",
    ),
    "cifar100": _Layout(
        folder="cifar-100-python",
        train_files=("train",),
        test_file="test",
        meta_file="meta",
        names_key="fine_label_names",
        labels_key="fine_labels",
        n_classes=100,
        archive="cifar-100-python.tar.gz",
        torchvision_class="CIFAR100",
    ),
}

_ALLOWED_GLOBALS = {
    *(
        (f"numpy.{core}.multiarray", name)
        for core in ("core", "_core")
        for name in ("_reconstruct", "scalar")
    ),
    *((f"numpy.{core}.numeric", "_frombuffer") for core in ("core", "_core")),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
}


class _ArrayUnpickler(pickle.Unpickler):
    """An unpickler that rebuilds plain containers and numpy arrays and nothing else."""

    def find_class(self, module: str, name: str) -> Any:
        """Only the globals a pickled numpy array needs."""
        if (module, name) not in _ALLOWED_GLOBALS:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def _missing(path: Path, layout: _Layout, root: Path) -> DataError:
    """The error for a missing CIFAR file: which file, which folder, how to get it."""
    return DataError(
        f"{path.name} not found in {path.parent}. Get {layout.archive} on a networked machine with "
        f'`python -c "import torchvision; torchvision.datasets.{layout.torchvision_class}('
        f"'{root}', download=True)\"` and copy the folder {layout.folder}/ into {root}."
    )


def _read(path: Path, layout: _Layout, root: Path) -> dict[str, Any]:
    """One pickled CIFAR dict with str keys; DataError when missing or unreadable."""
    if not path.is_file():
        raise _missing(path, layout, root)
    try:
        with path.open("rb") as file:
            content = _ArrayUnpickler(file, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as error:
        raise DataError(f"{path} is not a readable CIFAR pickle ({error})") from error
    if not isinstance(content, dict):
        raise DataError(f"{path} holds a {type(content).__name__}, not a CIFAR dict")
    return {_text(key): value for key, value in content.items()}


def _text(value: Any) -> Any:
    """Bytes decoded as latin-1 (python 2 strings read as bytes); anything else unchanged."""
    return value.decode("latin1") if isinstance(value, bytes) else value


def _field(content: dict[str, Any], key: str, path: Path) -> Any:
    """content[key], or a DataError naming the file and the missing key."""
    if key not in content:
        raise DataError(f"{path} has no '{key}' entry (keys: {sorted(content)})")
    return content[key]


def _batch(path: Path, layout: _Layout, root: Path) -> tuple[np.ndarray, np.ndarray]:
    """A data file's images (N, 3, 32, 32) uint8 and labels (N,) int64, validated."""
    content = _read(path, layout, root)
    data = _field(content, "data", path)
    labels = _as_array(_field(content, layout.labels_key, path), path)
    pixels = 3 * IMAGE_SIZE * IMAGE_SIZE
    if not (isinstance(data, np.ndarray) and data.dtype == np.uint8 and data.ndim == 2):
        raise DataError(
            f"{path}: 'data' must be a uint8 array (N, {pixels}), got {_describe(data)}"
        )
    if data.shape[1] != pixels or data.shape[0] == 0:
        raise DataError(f"{path}: 'data' must have shape (N>0, {pixels}), got {data.shape}")
    if labels.shape != (data.shape[0],) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{path}: '{layout.labels_key}' must hold {data.shape[0]} integers, got "
            f"{_describe(labels)}"
        )
    if labels.min() < 0 or labels.max() >= layout.n_classes:
        raise DataError(
            f"{path}: labels must lie in [0, {layout.n_classes}), got "
            f"[{labels.min()}, {labels.max()}]"
        )
    return data.reshape(-1, 3, IMAGE_SIZE, IMAGE_SIZE), labels.astype(np.int64)


def _as_array(values: Any, path: Path) -> np.ndarray:
    """Labels as a numpy array; DataError when they cannot form one."""
    try:
        return np.asarray(values)
    except (ValueError, TypeError) as error:
        raise DataError(f"{path}: labels do not form an array ({error})") from error


def _describe(value: Any) -> str:
    """A short type/dtype/shape description for error messages."""
    if isinstance(value, np.ndarray):
        return f"{value.dtype} array of shape {value.shape}"
    return type(value).__name__


def _label_names(path: Path, layout: _Layout, root: Path) -> list[str]:
    """The class names from the meta file, one per class."""
    names = _field(_read(path, layout, root), layout.names_key, path)
    if not isinstance(names, list) or len(names) != layout.n_classes:
        raise DataError(f"{path}: '{layout.names_key}' must list {layout.n_classes} class names")
    return [str(_text(name)) for name in names]


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser: a fixed pseudo-random uint64 for each uint64."""
    x = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def stratified_holdout(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """Sorted indices of round(fraction * class size) samples of each class, fixed by `seed`."""
    keys = _splitmix64(np.arange(len(labels)) + seed)
    held = []
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        ranked = members[np.argsort(keys[members], kind="stable")]
        held.append(ranked[: round(fraction * len(members))])
    return np.sort(np.concatenate(held))


def _split(images: np.ndarray, labels: np.ndarray) -> Split:
    """A Split owning torch copies of the arrays."""
    return Split(torch.from_numpy(np.ascontiguousarray(images)), torch.from_numpy(labels.copy()))


def load_cifar(name: str, root: Path) -> Dataset:
    """CIFAR-10 or CIFAR-100 from `root` (torchvision's layout): train / fixed 10% val / test."""
    if name not in _LAYOUTS:
        raise DataError(f"unknown CIFAR dataset '{name}'; choose one of {sorted(_LAYOUTS)}")
    layout = _LAYOUTS[name]
    root = Path(root).expanduser()
    folder = root / layout.folder
    names = _label_names(folder / layout.meta_file, layout, root)
    parts = [_batch(folder / file, layout, root) for file in layout.train_files]
    train_images = np.concatenate([images for images, _ in parts])
    train_labels = np.concatenate([labels for _, labels in parts])
    test_images, test_labels = _batch(folder / layout.test_file, layout, root)
    val = stratified_holdout(train_labels, VAL_FRACTION, VAL_SEED)
    keep = np.ones(len(train_labels), dtype=bool)
    keep[val] = False
    return Dataset(
        name=name,
        size=IMAGE_SIZE,
        n_classes=layout.n_classes,
        channels=3,
        label_names=names,
        train=_split(train_images[keep], train_labels[keep]),
        val=_split(train_images[val], train_labels[val]),
        test=_split(test_images, test_labels),
    )
