"""What a deletion request forgets: patients turned into their training images through a mapping
file, closed over exact duplicates of those images (and, if asked, their perceptual-hash
neighbours), with the duplicates that sit in the test split reported: a patient's image left
elsewhere in the data keeps the patient in the model, and an unseen test image that is one
inflates the "unseen" accuracy."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch.nn.functional as F
from scipy.fft import dctn

from medunlearn.data import Dataset, Split
from medunlearn.data.patients import synthetic_patients
from medunlearn.forget import ForgetError, read_ids
from medunlearn.store import atomic_write_text

# the perceptual hash: the image in grey at 32 x 32, its DCT's top-left 8 x 8 against their median
PHASH_SIZE, PHASH_BITS = 32, 8


class RequestError(ForgetError):
    """A request that cannot be served as given (unknown patients, ids out of range ...)."""


def read_patient_map(path: str | Path, n_train: int) -> dict[str, np.ndarray]:
    """Patient id -> its training ids, from a CSV with columns `train_id` and `patient_id` (a
    header row), every training id exactly once (MedMNIST itself has no patient ids: DermaMNIST's
    HAM10000 `lesion_id`, for one, gives such a file)."""
    path = Path(path)
    if not path.is_file():
        raise RequestError(f"patient map not found: {path}")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        if not {"train_id", "patient_id"} <= set(reader.fieldnames or []):
            raise RequestError(f"{path}: needs the columns train_id and patient_id (a header row)")
        pairs = [(row["train_id"], row["patient_id"]) for row in reader]
    try:
        ids = np.array([int(train_id) for train_id, _ in pairs], dtype=np.int64)
    except ValueError as error:
        raise RequestError(f"{path}: train_id must be whole numbers ({error})") from None
    if (bad := ids[(ids < 0) | (ids >= n_train)]).size:
        raise RequestError(
            f"{path}: train ids out of range [0, {n_train - 1}], e.g. {bad[:5].tolist()}"
        )
    if (missing := np.setdiff1d(np.arange(n_train), ids)).size:
        raise RequestError(
            f"{path} misses {missing.size} training id(s), e.g. {missing[:5].tolist()}: every "
            "training image needs its patient"
        )
    if len(ids) != n_train:
        raise RequestError(f"{path} lists some training ids more than once")
    patients: dict[str, list[int]] = {}
    for train_id, patient in zip(ids.tolist(), (p for _, p in pairs), strict=True):
        patients.setdefault(patient, []).append(train_id)
    return {patient: np.array(sorted(rows), dtype=np.int64) for patient, rows in patients.items()}


def synthetic_patient_map(
    n_train: int, seed: int, images: tuple[int, int] = (1, 5)
) -> dict[str, np.ndarray]:
    """A seeded stand-in for a hospital's patient map (MedMNIST has no patient ids): the
    synthetic patients of `data.patients` (`images[0]` to `images[1]` images each, every id
    exactly once) under the ids `P00000`, `P00001` ..."""
    patients = synthetic_patients(n_train, seed, *images)
    order = np.argsort(patients, kind="stable")  # each patient's ids in increasing order
    parts = np.split(order, np.cumsum(np.bincount(patients))[:-1])
    return {f"P{i:05d}": part.astype(np.int64) for i, part in enumerate(parts)}


def write_patient_map(path: str | Path, mapping: dict[str, np.ndarray]) -> Path:
    """Write a patient map as the CSV `read_patient_map` reads (train_id, patient_id; by id)."""
    pairs = sorted((int(i), patient) for patient, ids in mapping.items() for i in ids)
    lines = ["train_id,patient_id", *(f"{i},{patient}" for i, patient in pairs)]
    path = Path(path)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def read_patients(path: str | Path) -> list[str]:
    """Patient ids, one per line (blank lines and `#` comments skipped)."""
    path = Path(path)
    if not path.is_file():
        raise RequestError(f"patient list not found: {path}")
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def patients_to_ids(patients: Sequence[str], mapping: dict[str, np.ndarray]) -> np.ndarray:
    """The training ids of the named patients (every patient must be in the mapping)."""
    if unknown := sorted(set(patients) - set(mapping)):
        raise RequestError(f"{len(unknown)} unknown patient(s), e.g. {unknown[:5]}: not in the map")
    if not patients:
        raise RequestError("the request names no patient")
    return np.unique(np.concatenate([mapping[p] for p in patients]))


def image_digests(split: Split) -> list[str]:
    """A content hash of each image (equal images, equal digests)."""
    images = split.images.numpy()
    return [hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest() for image in images]


def perceptual_hashes(split: Split, chunk: int = 4096) -> np.ndarray:
    """The 64-bit DCT perceptual hash of each image (as 64 bools): its grey levels at 32 x 32,
    the top-left 8 x 8 of their 2-D DCT, each above their median or not (robust to rescaling,
    compression and small changes of contrast)."""
    rows = []
    for start in range(0, len(split), chunk):
        images = split.images[start : start + chunk].float().mean(dim=1, keepdim=True)
        grey = F.interpolate(images, size=(PHASH_SIZE, PHASH_SIZE), mode="area")[:, 0].numpy()
        low = dctn(grey, axes=(1, 2), norm="ortho")[:, :PHASH_BITS, :PHASH_BITS].reshape(
            len(grey), -1
        )
        rows.append(low > np.median(low, axis=1, keepdims=True))
    return np.concatenate(rows) if rows else np.zeros((0, PHASH_BITS**2), dtype=bool)


@dataclass
class Closure:
    """A request's images: those named, the exact duplicates of them in the training split
    (forgotten with them), their perceptual-hash neighbours there (forgotten too where asked),
    and the test images equal to one of them (reported)."""

    named: np.ndarray
    duplicates: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    neighbours: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    test_duplicates: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    forget_neighbours: bool = False

    @property
    def ids(self) -> np.ndarray:
        """Every training id the request forgets."""
        parts = [self.named, self.duplicates] + (
            [self.neighbours] if self.forget_neighbours else []
        )
        return np.unique(np.concatenate(parts))


def close_request(
    dataset: Dataset,
    named: np.ndarray,
    phash_distance: int | None = None,
    forget_neighbours: bool = False,
) -> Closure:
    """The closure of a request over the data (see `Closure`); `named` are training ids."""
    named = np.unique(np.asarray(named, dtype=np.int64))
    train = image_digests(dataset.train)
    wanted = {train[i] for i in named.tolist()}
    same = np.array([i for i, digest in enumerate(train) if digest in wanted], dtype=np.int64)
    test = image_digests(dataset.test)
    in_test = np.array([i for i, digest in enumerate(test) if digest in wanted], dtype=np.int64)
    closure = Closure(named, np.setdiff1d(same, named), test_duplicates=in_test,
                      forget_neighbours=forget_neighbours)  # fmt: skip
    if phash_distance is not None:
        hashes = perceptual_hashes(dataset.train)
        distances = (hashes[:, None, :] != hashes[named][None, :, :]).sum(axis=2).min(axis=1)
        near = np.flatnonzero(distances <= phash_distance)
        closure.neighbours = np.setdiff1d(near, np.concatenate([named, closure.duplicates]))
    return closure


def request_ids(path: str | Path, n_train: int) -> np.ndarray:
    """Training ids from a text file or a saved forget set, checked to be in range."""
    ids = read_ids(path)
    if (bad := ids[(ids < 0) | (ids >= n_train)]).size:
        raise RequestError(
            f"{bad.size} id(s) out of range [0, {n_train - 1}], e.g. {bad[:5].tolist()}"
        )
    if not ids.size:
        raise RequestError(f"{path} names no id")
    return np.unique(ids)


def check_classes_remain(dataset: Dataset, forgotten: np.ndarray) -> None:
    """Refuse a request after which a class would have no training image left."""
    labels = dataset.train.labels.numpy()
    left = np.bincount(np.delete(labels, forgotten), minlength=dataset.n_classes)
    if emptied := [int(c) for c in np.flatnonzero(left == 0) if (labels == c).any()]:
        names = [
            dataset.label_names[c] if c < len(dataset.label_names) else str(c) for c in emptied
        ]
        raise RequestError(
            f"the request would forget every training image of class(es) {names}: the model "
            "could no longer learn them; retrain on a dataset without the class instead"
        )


def digest(ids: np.ndarray) -> str:
    """The content hash of a set of training ids (what the ledger records instead of the ids)."""
    return hashlib.sha256(np.asarray(sorted(ids), dtype=np.int64).tobytes()).hexdigest()
