"""MedMNIST npz loading: the official layout, validation errors, refusals, resizing."""

import hashlib

import numpy as np
import pytest
import torch

from medunlearn.config import DataConfig
from medunlearn.data import load_dataset
from medunlearn.data.dataset import DataError
from medunlearn.data.medmnist import load_medmnist, npz_name


def test_load_colour_fixture(write_npz):
    path = write_npz("bloodmnist", 40, 16, 12)
    raw = np.load(path)
    dataset = load_medmnist("bloodmnist", 28, root=path.parent, download=False)
    assert (dataset.name, dataset.size, dataset.n_classes, dataset.channels) == (
        "bloodmnist", 28, 8, 3,
    )  # fmt: skip
    assert dataset.task == "multi-class"
    assert len(dataset.label_names) == 8
    assert (len(dataset.train), len(dataset.val), len(dataset.test)) == (40, 16, 12)
    for name in ("train", "val", "test"):
        split = getattr(dataset, name)
        assert split.images.dtype == torch.uint8
        assert split.images.shape[1:] == (3, 28, 28)
        assert split.labels.dtype == torch.int64
        # channels-last file layout -> (N, C, H, W), pixels unchanged
        expected = torch.from_numpy(raw[f"{name}_images"]).permute(0, 3, 1, 2)
        assert torch.equal(split.images, expected)
        assert split.labels.tolist() == raw[f"{name}_labels"][:, 0].tolist()


def test_load_grey_binary_fixture(write_npz):
    path = write_npz("breastmnist", 20, 8, 8)
    raw = np.load(path)
    dataset = load_medmnist("breastmnist", 28, root=path.parent, download=False)
    assert (dataset.n_classes, dataset.channels, dataset.task) == (2, 1, "binary")
    assert dataset.train.images.shape == (20, 1, 28, 28)
    assert torch.equal(dataset.train.images[:, 0], torch.from_numpy(raw["train_images"]))


def test_fingerprint_depends_on_content(write_npz, tmp_path):
    first = write_npz("bloodmnist", 16, 8, 8, seed=0, folder=tmp_path / "a")
    second = write_npz("bloodmnist", 16, 8, 8, seed=1, folder=tmp_path / "b")
    a1 = load_medmnist("bloodmnist", 28, root=first.parent, download=False)
    a2 = load_medmnist("bloodmnist", 28, root=first.parent, download=False)
    b = load_medmnist("bloodmnist", 28, root=second.parent, download=False)
    assert a1.fingerprint == a2.fingerprint
    assert a1.fingerprint != b.fingerprint


def test_fingerprint_is_the_hash_of_every_split_in_order(write_npz):
    path = write_npz("bloodmnist", 16, 8, 8)
    dataset = load_medmnist("bloodmnist", 28, root=path.parent, download=False)
    digest = hashlib.sha256()
    for split in (dataset.train, dataset.val, dataset.test):
        digest.update(split.images.numpy().tobytes())
        digest.update(split.labels.numpy().tobytes())
    assert dataset.fingerprint == digest.hexdigest()[:16]
    # a non-contiguous view of the same pixels hashes alike
    dataset.__dict__.pop("fingerprint")
    dataset.train.images = dataset.train.images.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    assert not dataset.train.images.is_contiguous()
    assert dataset.fingerprint == digest.hexdigest()[:16]


def test_load_dataset_from_config(write_npz):
    path = write_npz("bloodmnist", 16, 8, 8)
    dataset = load_dataset(DataConfig(dataset="bloodmnist", root=str(path.parent)), download=False)
    assert len(dataset.train) == 16


def _drop(key):
    def mutate(arrays):
        del arrays[key]

    return mutate


def _set(key, value_of):
    def mutate(arrays):
        arrays[key] = value_of(arrays[key])

    return mutate


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (_drop("val_labels"), "missing key 'val_labels'"),
        (_drop("test_images"), "missing key 'test_images'"),
        (_set("train_images", lambda a: a.astype(np.float32)), "train_images must be uint8"),
        (_set("train_images", lambda a: a[..., 0]), "train_images must be uint8 shaped"),
        (_set("val_images", lambda a: a[:, :20, :20]), "val_images must be uint8 shaped"),
        (_set("train_labels", lambda a: a[:, 0]), "train_labels must be shaped"),
        (_set("test_labels", lambda a: a[:-1]), "test_labels must be shaped"),
        (_set("train_labels", lambda a: a.astype(np.float32)), "train_labels must be integers"),
        (_set("train_labels", lambda a: np.where(a == 0, 8, a).astype(np.uint8)), r"\[0, 7\]"),
        (_set("val_labels", lambda a: a.astype(np.int64) - 1), r"\[0, 7\]"),
    ],
)
def test_malformed_npz(write_npz, mutate, message):
    path = write_npz("bloodmnist", 16, 8, 8, mutate=mutate)
    with pytest.raises(DataError, match=message) as raised:
        load_medmnist("bloodmnist", 28, root=path.parent, download=False)
    assert str(path) in str(raised.value)


def test_empty_split(write_npz):
    path = write_npz("bloodmnist", 16, 0, 8)
    with pytest.raises(DataError, match="val split is empty"):
        load_medmnist("bloodmnist", 28, root=path.parent, download=False)


@pytest.mark.parametrize("content", [b"definitely not a zip file", b"PK\x03\x04 truncated"])
def test_not_an_npz(tmp_path, content):
    (tmp_path / "bloodmnist.npz").write_bytes(content)
    with pytest.raises(DataError, match="not a readable npz"):
        load_medmnist("bloodmnist", 28, root=tmp_path, download=False)


def test_unknown_flag(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'nosuchmnist'") as raised:
        load_medmnist("nosuchmnist", 28, root=tmp_path, download=False)
    assert "bloodmnist" in str(raised.value)


def test_multi_label_refused(write_npz):
    path = write_npz("chestmnist", 8, 4, 4)
    with pytest.raises(DataError, match="multi-label"):
        load_medmnist("chestmnist", 28, root=path.parent, download=False)


def test_3d_refused(tmp_path):
    with pytest.raises(DataError, match="3D"):
        load_medmnist("organmnist3d", 28, root=tmp_path, download=False)


def test_missing_file_without_download_names_file_and_folder(tmp_path):
    folder = tmp_path / "empty-folder"
    folder.mkdir()
    with pytest.raises(DataError) as raised:
        load_medmnist("bloodmnist", 28, root=folder, download=False)
    assert "bloodmnist.npz" in str(raised.value)
    assert str(folder) in str(raised.value)
    with pytest.raises(DataError, match=r"bloodmnist_64\.npz"):
        load_medmnist("bloodmnist", 64, root=folder, download=False)


def test_unsupported_size(write_npz):
    path = write_npz("bloodmnist", 8, 4, 4)
    with pytest.raises(DataError, match="size 32"):
        load_medmnist("bloodmnist", 32, root=path.parent, download=False)


def test_resize_28_to_64(write_npz):
    path = write_npz("bloodmnist", 12, 4, 4)
    small = load_medmnist("bloodmnist", 28, root=path.parent, download=False)
    big = load_medmnist("bloodmnist", 64, root=path.parent, file_size=28, download=False)
    assert big.size == 64
    for name in ("train", "val", "test"):
        split, source = getattr(big, name), getattr(small, name)
        assert split.images.dtype == torch.uint8
        assert split.images.shape == (len(source), 3, 64, 64)
        assert torch.equal(split.labels, source.labels)
    # the content survives: per-image mean brightness barely moves
    diff = big.train.images.float().mean((1, 2, 3)) - small.train.images.float().mean((1, 2, 3))
    assert diff.abs().max() < 2


def test_64px_file_name(write_npz):
    assert npz_name("bloodmnist", 64) == "bloodmnist_64.npz"
    path = write_npz("breastmnist", 8, 4, 4, size=64)
    assert path.name == "breastmnist_64.npz"
    dataset = load_medmnist("breastmnist", 64, root=path.parent, download=False)
    assert dataset.train.images.shape == (8, 1, 64, 64)


def test_data_root_from_environment(write_npz, monkeypatch):
    path = write_npz("bloodmnist", 8, 4, 4)
    monkeypatch.setenv("MEDUNLEARN_DATA", str(path.parent))
    assert len(load_medmnist("bloodmnist", 28, download=False).train) == 8
