"""Shared fixtures: tiny MedMNIST-layout npz files, tiny configs, a CPU engine, real-data skips."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from medunlearn.config import (
    DataConfig,
    ExperimentConfig,
    ForgetConfig,
    MethodConfig,
    ModelConfig,
    RuntimeConfig,
    TrainConfig,
)
from medunlearn.data.medmnist import load_medmnist
from medunlearn.engine import Engine
from medunlearn.forget import ForgetSet, select_forget
from medunlearn.methods import Context, UnlearnData
from medunlearn.models import build_model
from medunlearn.store import Store
from medunlearn.training import train_model

# flag -> (number of classes, channels), as medmnist's INFO declares them
FLAGS = {
    "bloodmnist": (8, 3),
    "breastmnist": (2, 1),
    "pneumoniamnist": (2, 1),
    "dermamnist": (7, 3),
    "chestmnist": (14, 1),
}
SPLITS = ("train", "val", "test")
REAL_DATA_ENV = "MEDUNLEARN_DATA"


def make_arrays(
    n_classes: int,
    channels: int,
    sizes: tuple[int, int, int],
    size: int = 28,
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Arrays in the official layout; class c is brighter than class c - 1 (learnable)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    step = 200 // max(n_classes - 1, 1)
    for split, n in zip(SPLITS, sizes, strict=True):
        labels = rng.permutation(np.arange(n) % n_classes).astype(np.uint8)
        shape = (n, size, size) if channels == 1 else (n, size, size, channels)
        base = 20 + step * labels.astype(np.float64)
        noise = rng.normal(0, 12, shape)
        pixels = base.reshape((n,) + (1,) * (len(shape) - 1)) + noise
        arrays[f"{split}_images"] = np.clip(np.round(pixels), 0, 255).astype(np.uint8)
        arrays[f"{split}_labels"] = labels.reshape(n, 1)
    return arrays


NpzFactory = Callable[..., Path]


@pytest.fixture
def write_npz(tmp_path: Path) -> NpzFactory:
    """Write `<flag>.npz` (or `<flag>_<size>.npz`) in the MedMNIST layout; returns its path.

    `mutate(arrays)` may change the arrays (or return new ones) before they are saved, to
    build malformed files.
    """

    def write(
        flag: str = "bloodmnist",
        n_train: int = 64,
        n_val: int = 24,
        n_test: int = 24,
        size: int = 28,
        seed: int = 0,
        folder: Path | None = None,
        mutate: Callable[[dict], dict | None] | None = None,
    ) -> Path:
        folder = Path(folder or tmp_path / "data")
        folder.mkdir(parents=True, exist_ok=True)
        n_classes, channels = FLAGS[flag]
        arrays = make_arrays(n_classes, channels, (n_train, n_val, n_test), size, seed)
        if mutate is not None:
            arrays = mutate(arrays) or arrays
        name = f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz"
        path = folder / name
        np.savez_compressed(path, **arrays)
        return path

    return write


@pytest.fixture
def data_root(write_npz: NpzFactory) -> Path:
    """A folder holding a tiny colour bloodmnist.npz (8 classes) and a grey breastmnist.npz."""
    path = write_npz("bloodmnist", 64, 24, 24)
    write_npz("breastmnist", 40, 16, 16)
    return path.parent


@pytest.fixture
def blood(data_root: Path):
    """The tiny BloodMNIST fixture, loaded."""
    return load_medmnist("bloodmnist", 28, root=data_root, download=False)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A cache folder inside the test's tmp folder (never the user's home cache)."""
    return tmp_path / "cache"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Code that falls back on $MEDUNLEARN_CACHE writes into the test's tmp folder."""
    monkeypatch.setenv("MEDUNLEARN_CACHE", str(tmp_path / "env-cache"))


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread, and a busy CI machine cannot slow them down."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def runtime(cache_dir: Path) -> RuntimeConfig:
    """CPU, one thread, a tmp cache."""
    return RuntimeConfig(device="cpu", threads=1, cache_dir=str(cache_dir))


@pytest.fixture
def engine(runtime: RuntimeConfig) -> Engine:
    """A CPU engine."""
    return Engine(runtime)


def tiny_train(**overrides) -> TrainConfig:
    """A recipe of one quick epoch on the fixture."""
    values = dict(epochs=1, lr=0.05, batch_size=16, schedule="constant", augment="none")
    values.update(overrides)
    return TrainConfig(**values)


@pytest.fixture
def make_config(data_root: Path, cache_dir: Path) -> Callable[..., ExperimentConfig]:
    """A tiny experiment on the fixture: cnn width 4, one epoch, CPU (one thread), tmp cache."""

    def make(
        methods: list[MethodConfig] | None = None,
        fraction: float = 0.25,
        seeds: list[int] | None = None,
        **train_overrides,
    ) -> ExperimentConfig:
        return ExperimentConfig(
            name="tiny",
            data=DataConfig(dataset="bloodmnist", size=28, root=str(data_root)),
            model=ModelConfig(arch="cnn", width=4),
            train=tiny_train(**train_overrides),
            forget=[ForgetConfig(mode="random", fraction=fraction)],
            methods=methods or [],
            seeds=seeds if seeds is not None else [0],
            runtime=RuntimeConfig(device="cpu", threads=1, cache_dir=str(cache_dir)),
        )

    return make


@pytest.fixture
def realdata() -> Path:
    """The folder of the real MedMNIST files ($MEDUNLEARN_DATA); skips when absent."""
    folder = os.environ.get(REAL_DATA_ENV)
    if not folder:
        pytest.skip(f"${REAL_DATA_ENV} is not set")
    if not (Path(folder) / "bloodmnist.npz").is_file():
        pytest.skip(f"${REAL_DATA_ENV}={folder} holds no bloodmnist.npz")
    return Path(folder)


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked `realdata` skip when $MEDUNLEARN_DATA is unset."""
    if item.get_closest_marker("realdata") and not os.environ.get(REAL_DATA_ENV):
        pytest.skip(f"${REAL_DATA_ENV} is not set")


@pytest.fixture
def original(blood, engine) -> torch.nn.Module:
    """A tiny CNN trained for three epochs on the fixture (the model to unlearn from)."""
    torch.manual_seed(0)
    model = build_model(ModelConfig(arch="cnn", width=4), blood.channels, blood.n_classes)
    rows = torch.arange(len(blood.train))
    return train_model(model, blood, rows, tiny_train(epochs=3), engine, seed=0).model


@pytest.fixture
def forget_set(blood) -> ForgetSet:
    """A quarter of the fixture's training set, drawn with seed 0."""
    return select_forget(blood, ForgetConfig(mode="random", fraction=0.25), seed=0)


@pytest.fixture
def unlearn_data(blood, forget_set) -> UnlearnData:
    """The fixture and its forget set."""
    return UnlearnData(blood, forget_set)


@pytest.fixture
def context(engine, cache_dir) -> Context:
    """What a method may use: the CPU engine, seed 0, the tiny recipe, a tmp store."""
    return Context(engine, 0, tiny_train(), ModelConfig(arch="cnn", width=4), Store(cache_dir))


@pytest.fixture
def batch_rows(monkeypatch: pytest.MonkeyPatch) -> list[set[int]]:
    """The training rows of every batch the engine hands out: one set per `Engine.batches` call."""
    calls: list[set[int]] = []
    real = Engine.batches

    def batches(engine, split, indices, *args, **kwargs):
        rows: set[int] = set()
        calls.append(rows)
        for batch in real(engine, split, indices, *args, **kwargs):
            rows.update(batch.index.tolist())
            yield batch

    monkeypatch.setattr(Engine, "batches", batches)
    return calls


@pytest.fixture
def no_value_reads() -> Callable[[], contextlib.AbstractContextManager]:
    """A context in which reading a tensor's value into Python (bool, int, float, index, item,
    tolist) raises: code that runs in it never waits for a device to hand a value over."""

    def refuse(name: str) -> Callable[..., None]:
        def read(*_args, **_kwargs) -> None:
            raise AssertionError(f"a tensor's value was read into Python ({name})")

        return read

    @contextlib.contextmanager
    def forbid() -> Iterator[None]:
        with pytest.MonkeyPatch.context() as patch:
            for name in ("__bool__", "__int__", "__float__", "__index__", "item", "tolist"):
                patch.setattr(torch.Tensor, name, refuse(name))
            yield

    return forbid


@pytest.fixture
def sharded_recipe() -> Callable[..., TrainConfig]:
    """A quick recipe of 2 shards and 2 slices on the fixture (fields overridable)."""

    def make(**overrides) -> TrainConfig:
        values = dict(epochs=2, lr=0.05, batch_size=16, schedule="cosine", augment="crop-flip",
                      shards=2, slices=2)  # fmt: skip
        return TrainConfig(**{**values, **overrides})

    return make


@pytest.fixture
def sharded_model(engine) -> Callable[..., torch.nn.Module]:
    """Train a sharded CNN (width 4) on a dataset, its slice checkpoints in `store`, without the
    training ids `removed`."""
    from medunlearn.sharding import shard_trainer, train_sharded

    def train(dataset, store: Store, recipe: TrainConfig, seed: int = 0, removed=None):
        cnn = ModelConfig(arch="cnn", width=4)
        return train_sharded(shard_trainer(cnn, recipe, dataset, engine, store, seed, removed))[0]

    return train


@pytest.fixture
def same_state() -> Callable[[torch.nn.Module, torch.nn.Module], bool]:
    """Whether two models' states are bitwise equal (same keys, same values)."""

    def same(first: torch.nn.Module, second: torch.nn.Module) -> bool:
        a, b = first.state_dict(), second.state_dict()
        return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)

    return same
