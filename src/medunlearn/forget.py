"""Forget-set selection (random, balanced, skewed, class, explicit ids, easiest or hardest
samples, whole patients) and its saved form."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from medunlearn.config import ForgetConfig, UserError, to_dict
from medunlearn.data import Dataset
from medunlearn.store import atomic_write_text, cache_key


class ForgetError(UserError):
    """A forget set that cannot be built or used as asked."""


@dataclass
class ForgetSet:
    """Training-sample ids to forget, tied to the exact dataset they index.

    `excluded` are training ids forgotten by earlier requests (a deployment serves requests one
    after another): they belong to neither the forget set nor the retain set, so no later step
    (a method's retain data, a Retrain, a bank model) ever trains on them again."""

    forget_ids: np.ndarray
    n_train: int
    dataset: str
    data_fingerprint: str
    spec: dict = field(default_factory=dict)
    seed: int = 0
    excluded: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        self.forget_ids = np.asarray(self.forget_ids, dtype=np.int64)
        self.excluded = np.unique(np.asarray(self.excluded, dtype=np.int64))
        _check_ids(self.forget_ids, self.n_train, self.excluded)

    @property
    def retain_ids(self) -> np.ndarray:
        """Every training id neither forgotten now nor earlier, in increasing order."""
        gone = np.concatenate([self.forget_ids, self.excluded])
        return np.setdiff1d(np.arange(self.n_train), gone)

    @property
    def train_ids(self) -> np.ndarray:
        """The training ids still in the data: the forget set and the retain set, in order."""
        return np.setdiff1d(np.arange(self.n_train), self.excluded, assume_unique=True)

    @property
    def key(self) -> str:
        """The forget set's identity: a hash of its ids, the ids excluded earlier (where there
        are any) and the data they index."""
        excluded = [self.excluded.tolist()] if len(self.excluded) else []
        return cache_key("forget", self.data_fingerprint, self.forget_ids.tolist(), *excluded)

    @property
    def forget_index(self) -> torch.Tensor:
        """The forget ids as an int64 tensor, for indexing a split."""
        return torch.from_numpy(self.forget_ids)

    @property
    def retain_index(self) -> torch.Tensor:
        """The retain ids as an int64 tensor, for indexing a split."""
        return torch.from_numpy(self.retain_ids)

    @property
    def train_index(self) -> torch.Tensor:
        """The training ids still in the data as an int64 tensor (forget and retain sets)."""
        return torch.from_numpy(self.train_ids)

    def to_json(self) -> str:
        """The saved form: the ids plus what is needed to check they fit a dataset."""
        data = {
            "dataset": self.dataset,
            "data_fingerprint": self.data_fingerprint,
            "n_train": self.n_train,
            "seed": self.seed,
            "spec": self.spec,
            "n_forget": len(self.forget_ids),
            "forget_ids": self.forget_ids.tolist(),
            **({"excluded": self.excluded.tolist()} if len(self.excluded) else {}),
        }
        return json.dumps(data, indent=1)

    def save(self, path: str | Path) -> None:
        """Write the saved form atomically."""
        atomic_write_text(Path(path), self.to_json())

    def check_matches(self, dataset: Dataset) -> None:
        """Refuse to apply this forget set to data other than the data it was drawn from."""
        if self.data_fingerprint != dataset.fingerprint or self.n_train != len(dataset.train):
            raise ForgetError(
                f"this forget set was drawn from {self.dataset} with fingerprint "
                f"{self.data_fingerprint} ({self.n_train} training samples), but the loaded "
                f"data is {dataset.name} with fingerprint {dataset.fingerprint} "
                f"({len(dataset.train)} samples): the ids would point at other images"
            )


def _check_ids(ids: np.ndarray, n_train: int, excluded: np.ndarray) -> None:
    """Ids must be in range, unique, non-empty, not forgotten earlier, and leave a non-empty
    retain set."""
    if ids.size == 0:
        raise ForgetError("the forget set is empty: nothing to unlearn")
    bad = ids[(ids < 0) | (ids >= n_train)]
    if bad.size:
        raise ForgetError(
            f"{bad.size} forget id(s) out of range [0, {n_train - 1}], e.g. {bad[:5].tolist()}"
        )
    values, counts = np.unique(ids, return_counts=True)
    if (counts > 1).any():
        raise ForgetError(f"duplicate forget id(s): {values[counts > 1][:5].tolist()}")
    if (again := np.intersect1d(values, excluded)).size:
        raise ForgetError(f"{again.size} id(s) were forgotten earlier, e.g. {again[:5].tolist()}")
    if values.size + excluded.size >= n_train:
        raise ForgetError("the forget set covers the whole training set: the retain set is empty")


def read_ids(path: str | Path) -> np.ndarray:
    """Sample ids from a text file (spaces, commas or lines; `#` starts a comment) or a saved forget set."""
    path = Path(path)
    if not path.is_file():
        raise ForgetError(f"forget-id file not found: {path}")
    text = path.read_text()
    if path.suffix == ".json":
        try:
            return np.asarray(json.loads(text)["forget_ids"], dtype=np.int64)
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as error:
            raise ForgetError(f"{path}: not a saved forget set ({error})") from error
    text = re.sub(r"#[^\n]*", "", text)
    tokens = [t for t in re.split(r"[\s,;]+", text) if t]
    try:
        return np.asarray([int(t) for t in tokens], dtype=np.int64)
    except ValueError as error:
        raise ForgetError(f"{path}: sample ids must be whole numbers ({error})") from error


def _count(fraction: float, n: int) -> int:
    """How many of n samples a fraction (in (0, 1), checked by ForgetConfig) selects: at least one."""
    return max(1, round(fraction * n))


def _random(labels: np.ndarray, config: ForgetConfig, rng: np.random.Generator) -> np.ndarray:
    """A uniformly random fraction (or `count`) of the training set."""
    count = config.count or _count(config.fraction, labels.size)
    if count >= labels.size:
        raise ForgetError(f"cannot forget {count} of the {labels.size} training images")
    return rng.choice(labels.size, count, replace=False)


def _patients(config: ForgetConfig, patients: np.ndarray | None, rng) -> np.ndarray:
    """Every training image of `count` patients drawn uniformly at random from the mapping."""
    if patients is None:
        raise ForgetError(
            "forget mode 'patients' needs the patient of each training image: set "
            "`data.patients` (e.g. `synthetic`)"
        )
    known = np.unique(patients)
    if config.count is None or config.count >= known.size:
        raise ForgetError(f"cannot forget {config.count} of the {known.size} patients")
    chosen = rng.choice(known, config.count, replace=False)
    return np.flatnonzero(np.isin(patients, chosen))


def _balanced(labels: np.ndarray, config: ForgetConfig, rng: np.random.Generator) -> np.ndarray:
    """The same fraction drawn from every class."""
    picks = [
        rng.choice(members, _count(config.fraction, members.size), replace=False)
        for members in (np.flatnonzero(labels == c) for c in np.unique(labels))
    ]
    return np.concatenate(picks)


def _skewed(
    labels: np.ndarray, config: ForgetConfig, rng: np.random.Generator, positive: int | None
) -> np.ndarray:
    """A fraction of the training set whose share of the task's positive (malignant) class is
    `positive_share`."""
    share = config.positive_share
    if share is None:
        raise ForgetError("skewed forgetting needs forget.positive_share in [0, 1]")
    if positive is None or set(np.unique(labels).tolist()) - {0, 1}:
        raise ForgetError(
            "skewed forgetting needs a binary task with a positive (malignant) class: set "
            "`data.binary: true` (with `data.positive` where the dataset has no default mapping)"
        )
    total = _count(config.fraction, labels.size)
    n_pos = round(share * total)
    positives, negatives = np.flatnonzero(labels == positive), np.flatnonzero(labels != positive)
    if n_pos > positives.size or total - n_pos > negatives.size:
        raise ForgetError(
            f"cannot draw {n_pos} positive and {total - n_pos} negative samples from "
            f"{positives.size} positive and {negatives.size} negative training samples"
        )
    return np.concatenate(
        [
            rng.choice(positives, n_pos, replace=False),
            rng.choice(negatives, total - n_pos, replace=False),
        ]
    )


def _classes(labels: np.ndarray, config: ForgetConfig, n_classes: int) -> np.ndarray:
    """Every training sample of the given classes."""
    if not config.classes:
        raise ForgetError("class forgetting needs forget.classes, e.g. [2]")
    bad = [c for c in config.classes if not 0 <= c < n_classes]
    if bad:
        raise ForgetError(f"forget classes {bad} out of range [0, {n_classes - 1}]")
    return np.flatnonzero(np.isin(labels, config.classes))


def _by_difficulty(
    config: ForgetConfig, difficulty: np.ndarray | None, n_train: int, rng: np.random.Generator
) -> np.ndarray:
    """A random fraction of the training set drawn from its `pool` share of lowest (easy) or
    highest (hard) difficulty; ties are ranked by sample id."""
    if difficulty is None:
        raise ForgetError(
            f"forget mode '{config.mode}' ranks the training samples by the original model's "
            "per-sample difficulty (its mean training loss), and none was given: pass the "
            "original's `difficulty` (`TrainedModel.difficulty`, recorded while it trains)"
        )
    difficulty = np.asarray(difficulty, dtype=np.float64)
    if difficulty.shape != (n_train,) or not np.isfinite(difficulty).all():
        raise ForgetError(
            f"the difficulty must hold one finite value per training sample ({n_train}); got "
            f"shape {difficulty.shape} with {int((~np.isfinite(difficulty)).sum())} non-finite"
        )
    ranked = np.argsort(difficulty if config.mode == "easy" else -difficulty, kind="stable")
    pool = ranked[: _count(config.pool, n_train)]
    return rng.choice(pool, _count(config.fraction, n_train), replace=False)


def select_forget(
    dataset: Dataset, config: ForgetConfig, seed: int = 0, difficulty: np.ndarray | None = None
) -> ForgetSet:
    """Draw the forget set a config describes from the training split (seeded, reproducible);
    the easy and hard modes rank the samples by `difficulty`, one value per training sample
    (the original model's mean training loss), and need it; the patients mode draws from the
    dataset's patient mapping."""
    labels = dataset.train.labels.numpy()
    rng = np.random.default_rng(seed)
    if config.mode == "ids":
        if not config.ids_file:
            raise ForgetError("forget.mode 'ids' needs forget.ids_file")
        return load_forget_set(config.ids_file, dataset)
    if config.uses_difficulty:
        ids = _by_difficulty(config, difficulty, labels.size, rng)
    elif config.mode == "class":
        ids = _classes(labels, config, dataset.n_classes)
    elif config.mode == "skewed":
        ids = _skewed(labels, config, rng, dataset.positive_class)
    elif config.mode == "balanced":
        ids = _balanced(labels, config, rng)
    elif config.mode == "patients":
        ids = _patients(config, dataset.patients, rng)
    else:
        ids = _random(labels, config, rng)
    return ForgetSet(
        np.sort(ids), len(dataset.train), dataset.name, dataset.fingerprint, to_dict(config), seed
    )


def check_forget(dataset: Dataset, config: ForgetConfig, seed: int = 0) -> None:
    """Check that a forget spec can be drawn from a dataset before any model is trained: the
    easy and hard modes, whose ranking comes from the original model, are drawn on a flat one."""
    flat = np.zeros(len(dataset.train)) if config.uses_difficulty else None
    select_forget(dataset, config, seed, flat)


def load_forget_set(path: str | Path, dataset: Dataset) -> ForgetSet:
    """Read a saved forget set (JSON) or a plain id list, checked against `dataset`."""
    path = Path(path)
    ids = read_ids(path)
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        saved = ForgetSet(
            ids, data["n_train"], data["dataset"], data["data_fingerprint"],
            data.get("spec", {}), data.get("seed", 0), data.get("excluded", []),
        )  # fmt: skip
        saved.check_matches(dataset)
        return saved
    spec = {"mode": "ids", "ids_file": str(path)}
    return ForgetSet(ids, len(dataset.train), dataset.name, dataset.fingerprint, spec)
