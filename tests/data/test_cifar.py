"""load_cifar on small fixtures written in torchvision's on-disk CIFAR format."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from medunlearn.data.cifar import load_cifar, stratified_holdout
from medunlearn.data.dataset import DataError

CIFAR10 = "cifar-10-batches-py"
CIFAR100 = "cifar-100-python"


def _dump(path: Path, content: object) -> None:
    """Pickle as the official files are: protocol 2, byte-string keys."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as file:
        pickle.dump(content, file, protocol=2)


def _batch(n: int, n_classes: int, seed: int, labels_key: bytes) -> dict[bytes, object]:
    """A data batch dict with balanced labels and random pixels."""
    rng = np.random.default_rng(seed)
    return {
        b"batch_label": b"fixture batch",
        labels_key: [int(i % n_classes) for i in range(n)],
        b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8),
        b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)],
    }


def _write_cifar10(root: Path, per_batch: int = 20, n_test: int = 20) -> Path:
    """Five train batches, a test batch and batches.meta under root/cifar-10-batches-py."""
    folder = root / CIFAR10
    for i in range(1, 6):
        _dump(folder / f"data_batch_{i}", _batch(per_batch, 10, i, b"labels"))
    _dump(folder / "test_batch", _batch(n_test, 10, 99, b"labels"))
    names = [f"class{k}".encode() for k in range(10)]
    _dump(folder / "batches.meta", {b"num_cases_per_batch": per_batch, b"label_names": names})
    return folder


def _write_cifar100(root: Path, n_train: int = 1000, n_test: int = 200) -> Path:
    """train, test and meta under root/cifar-100-python."""
    folder = root / CIFAR100
    for name, n, seed in (("train", n_train, 1), ("test", n_test, 2)):
        content = _batch(n, 100, seed, b"fine_labels")
        content[b"coarse_labels"] = [k // 5 for k in content[b"fine_labels"]]
        _dump(folder / name, content)
    meta = {
        b"fine_label_names": [f"fine{k}".encode() for k in range(100)],
        b"coarse_label_names": [f"coarse{k}".encode() for k in range(20)],
    }
    _dump(folder / "meta", meta)
    return folder


def test_cifar10_splits_shapes_and_names(tmp_path: Path) -> None:
    _write_cifar10(tmp_path)
    dataset = load_cifar("cifar10", tmp_path)
    assert (dataset.name, dataset.size, dataset.channels, dataset.n_classes) == (
        "cifar10",
        32,
        3,
        10,
    )
    assert dataset.label_names == [f"class{k}" for k in range(10)]
    assert (len(dataset.train), len(dataset.val), len(dataset.test)) == (90, 10, 20)
    for split in (dataset.train, dataset.val, dataset.test):
        assert split.images.dtype == torch.uint8 and split.images.shape[1:] == (3, 32, 32)
        assert split.labels.dtype == torch.int64


def test_images_are_rgb_planes_row_by_row(tmp_path: Path) -> None:
    folder = _write_cifar10(tmp_path)
    with (folder / "test_batch").open("rb") as file:
        raw = pickle.load(file, encoding="bytes")
    dataset = load_cifar("cifar10", tmp_path)
    k, channel, row, col = 7, 1, 5, 30
    assert (
        dataset.test.images[k, channel, row, col]
        == raw[b"data"][k, 1024 * channel + 32 * row + col]
    )
    assert torch.equal(dataset.test.labels, torch.tensor(raw[b"labels"]))
    assert np.array_equal(dataset.test.images.numpy().reshape(-1, 3072), raw[b"data"])


def test_val_is_a_fixed_stratified_tenth_of_train(tmp_path: Path) -> None:
    _write_cifar10(tmp_path)
    first, second = load_cifar("cifar10", tmp_path), load_cifar("cifar10", tmp_path)
    assert first.fingerprint == second.fingerprint
    assert torch.bincount(first.val.labels, minlength=10).tolist() == [1] * 10
    assert torch.bincount(first.train.labels, minlength=10).tolist() == [9] * 10
    all_images = torch.cat([first.train.images, first.val.images]).reshape(100, -1)
    assert torch.unique(all_images, dim=0).shape[0] == 100  # disjoint and complete


def test_stratified_holdout_is_pinned_and_proportional() -> None:
    labels = np.repeat(np.arange(3), 20)
    held = stratified_holdout(labels, 0.1, 0)
    assert held.tolist() == [10, 18, 21, 33, 41, 48]  # fixed by design: never changes
    assert np.bincount(labels[held]).tolist() == [2, 2, 2]
    assert np.array_equal(held, np.sort(held))
    assert np.array_equal(held, stratified_holdout(labels, 0.1, 0))
    assert not np.array_equal(held, stratified_holdout(labels, 0.1, 1))
    official = np.repeat(np.arange(10), 5000)
    assert len(stratified_holdout(official, 0.1, 0)) == 5000


def test_cifar100_fine_labels(tmp_path: Path) -> None:
    _write_cifar100(tmp_path)
    dataset = load_cifar("cifar100", tmp_path)
    assert dataset.n_classes == 100 and dataset.label_names[3] == "fine3"
    assert (len(dataset.train), len(dataset.val), len(dataset.test)) == (900, 100, 200)
    assert torch.bincount(dataset.val.labels, minlength=100).tolist() == [1] * 100


def test_str_keys_of_python3_pickles_are_read(tmp_path: Path) -> None:
    folder = _write_cifar10(tmp_path)
    content = _batch(20, 10, 3, b"labels")
    _dump(folder / "test_batch", {key.decode(): value for key, value in content.items()})
    assert len(load_cifar("cifar10", tmp_path).test) == 20


def test_missing_file_names_file_folder_and_download(tmp_path: Path) -> None:
    folder = _write_cifar10(tmp_path)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DataError) as error:
        load_cifar("cifar10", tmp_path)
    message = str(error.value)
    assert "data_batch_3" in message and str(folder) in message and "download=True" in message


def test_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cifar-100-python"):
        load_cifar("cifar100", tmp_path)


@pytest.mark.parametrize(
    ("key", "value", "match"),
    [
        (b"data", np.zeros((20, 3000), dtype=np.uint8), "shape"),
        (b"data", np.zeros((20, 3072), dtype=np.int32), "uint8"),
        (b"labels", [0] * 19, "20 integers"),
        (b"labels", [10] * 20, "labels must lie"),
        (b"labels", [-1] * 20, "labels must lie"),
    ],
)
def test_malformed_content(tmp_path: Path, key: bytes, value: object, match: str) -> None:
    folder = _write_cifar10(tmp_path)
    content = _batch(20, 10, 1, b"labels")
    content[key] = value
    _dump(folder / "data_batch_1", content)
    with pytest.raises(DataError, match=match):
        load_cifar("cifar10", tmp_path)


def test_unreadable_and_hostile_pickles(tmp_path: Path) -> None:
    folder = _write_cifar10(tmp_path)
    (folder / "test_batch").write_bytes(b"not a pickle")
    with pytest.raises(DataError, match="not a readable"):
        load_cifar("cifar10", tmp_path)
    marker = tmp_path / "ran"
    _dump(folder / "test_batch", _Hostile(str(marker)))
    with pytest.raises(DataError, match="refusing"):
        load_cifar("cifar10", tmp_path)
    assert not marker.exists()


class _Hostile:
    """A pickle that would create a file when loaded by an unrestricted unpickler."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[Path]]:
        return (Path.touch, (Path(self.path),))


def test_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="cifar10"):
        load_cifar("cifar5", tmp_path)
