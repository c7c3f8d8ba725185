"""Memory-mapped cache of npz sets: same tensors as in memory, built once, rebuilt when broken."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from medunlearn.data import cache
from medunlearn.data.dataset import DataError
from medunlearn.data.medmnist import load_medmnist

SPLITS = ("train", "val", "test")


def _load(root: Path, cache_dir: Path, flag: str = "bloodmnist", size: int = 28, **kwargs):
    return load_medmnist(flag, size, root=root, download=False, cache_dir=cache_dir, **kwargs)


def _assert_same(mapped, loaded) -> None:
    for split in SPLITS:
        a, b = getattr(mapped, split), getattr(loaded, split)
        assert a.images.dtype == torch.uint8 and a.labels.dtype == torch.int64
        assert a.images.shape == b.images.shape
        assert torch.equal(a.images, b.images)
        assert torch.equal(a.labels, b.labels)
    assert mapped.fingerprint == loaded.fingerprint
    for field in ("name", "size", "n_classes", "channels", "label_names", "task"):
        assert getattr(mapped, field) == getattr(loaded, field)


def _folder(cache_dir: Path, name: str = "bloodmnist_28") -> Path:
    return cache_dir / "arrays" / name


@pytest.mark.parametrize(
    ("flag", "file_size", "size"),
    [("bloodmnist", 28, 28), ("breastmnist", 28, 28), ("bloodmnist", 28, 64)],
)
def test_mapped_load_equals_the_in_memory_load(write_npz, cache_dir, flag, file_size, size):
    root = write_npz(flag, 40, 12, 12, size=file_size).parent
    loaded = load_medmnist(flag, size, root=root, file_size=file_size, download=False)
    mapped = _load(root, cache_dir, flag, size, file_size=file_size, mmap=True)
    _assert_same(mapped, loaded)
    name = f"{flag}_{size}" if size == file_size else f"{flag}_{file_size}to{size}"
    folder = _folder(cache_dir, name)
    assert (folder / "meta.json").is_file()
    # the fingerprint was stored at conversion time and equals a fresh hash of the data
    assert json.loads((folder / "meta.json").read_text())["fingerprint"] == loaded.fingerprint
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no temporary files


def test_images_are_memory_mapped_not_loaded(write_npz, cache_dir):
    root = write_npz("bloodmnist", 40, 12, 12).parent
    mapped = _load(root, cache_dir, mmap=True)
    path = _folder(cache_dir) / "train_images.npy"
    mapping = _mapping_of(mapped.train.images.data_ptr())
    if mapping is not None:  # Linux: the tensor's memory is a mapping of the cache file
        assert mapping.endswith(str(path))
    on_disk = np.load(path, mmap_mode="r")
    assert on_disk.shape == (40, 3, 28, 28)  # stored as (N, C, H, W)
    # a write to the tensor is copy-on-write: the cache file keeps its bytes
    before = on_disk[0].copy()
    mapped.train.images[0] = 0
    assert np.array_equal(np.load(path, mmap_mode="r")[0], before)


def _mapping_of(address: int) -> str | None:
    """The file mapped at a memory address, from /proc/self/maps (None without /proc)."""
    maps = Path("/proc/self/maps")
    if not maps.is_file():
        return None
    for line in maps.read_text().splitlines():
        fields = line.split(maxsplit=5)
        low, high = (int(x, 16) for x in fields[0].split("-"))
        if low <= address < high:
            return fields[5] if len(fields) > 5 else ""
    return ""


def test_engine_batches_gather_from_the_map(write_npz, cache_dir, engine):
    root = write_npz("bloodmnist", 40, 12, 12).parent
    mapped = _load(root, cache_dir, mmap=True)
    loaded = load_medmnist("bloodmnist", 28, root=root, download=False)
    rows = torch.arange(40)
    a = list(engine.batches(mapped.train, rows, 16, engine.generator(0)))
    b = list(engine.batches(loaded.train, rows, 16, engine.generator(0)))
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x.images, y.images) and torch.equal(x.labels, y.labels)
    logits = engine.logits(torch.nn.Flatten(), mapped.test.images)
    assert torch.equal(logits, mapped.test.images.flatten(1).float())


def test_second_load_does_not_read_the_npz(write_npz, cache_dir, monkeypatch):
    root = write_npz("bloodmnist", 40, 12, 12).parent
    first = _load(root, cache_dir, mmap=True)
    folder = _folder(cache_dir)
    stamps = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}

    def fail(*args, **kwargs):
        raise AssertionError("the npz was read again")

    monkeypatch.setattr(cache, "_stream_rows", fail)
    monkeypatch.setattr(cache, "_build", fail)
    monkeypatch.setattr(np, "load", _only_mmap(np.load))
    second = _load(root, cache_dir, mmap=True)
    _assert_same(second, first)
    assert {p.name: p.stat().st_mtime_ns for p in folder.iterdir()} == stamps


def _only_mmap(load):
    """np.load that refuses to open anything but a memory map of a .npy (never the npz)."""

    def guarded(path, *args, **kwargs):
        assert str(path).endswith(".npy") and kwargs.get("mmap_mode"), path
        return load(path, *args, **kwargs)

    return guarded


def _truncate(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(path.stat().st_size - 100)


def _garble(path: Path) -> None:
    path.write_bytes(b"not an npy file" * 10)


def _extend(path: Path) -> None:
    with open(path, "ab") as handle:
        handle.write(b"\0" * 64)


def _wrong_meta(path: Path) -> None:
    meta = json.loads((path.parent / "meta.json").read_text())
    meta["shapes"]["train"]["images"][0] += 1
    (path.parent / "meta.json").write_text(json.dumps(meta))


def _drop_meta(path: Path) -> None:
    (path.parent / "meta.json").unlink()


@pytest.mark.parametrize("damage", [_truncate, _garble, _extend, _wrong_meta, _drop_meta])
@pytest.mark.parametrize("name", ["train_images.npy", "test_labels.npy"])
def test_a_broken_cache_is_rebuilt(write_npz, cache_dir, damage, name):
    root = write_npz("bloodmnist", 40, 12, 12).parent
    loaded = load_medmnist("bloodmnist", 28, root=root, download=False)
    _load(root, cache_dir, mmap=True)
    path = _folder(cache_dir) / name
    size = path.stat().st_size
    damage(path)
    _assert_same(_load(root, cache_dir, mmap=True), loaded)
    assert path.stat().st_size == size


def test_a_changed_source_file_is_converted_again(write_npz, cache_dir):
    path = write_npz("bloodmnist", 40, 12, 12, seed=0)
    _load(path.parent, cache_dir, mmap=True)
    write_npz("bloodmnist", 48, 12, 12, seed=1)  # same name, new content
    fresh = load_medmnist("bloodmnist", 28, root=path.parent, download=False)
    mapped = _load(path.parent, cache_dir, mmap=True)
    _assert_same(mapped, fresh)
    assert len(mapped.train) == 48


def test_automatic_above_the_size_threshold(write_npz, cache_dir, monkeypatch):
    root = write_npz("bloodmnist", 40, 12, 12).parent
    _load(root, cache_dir)  # a tiny set stays in memory
    assert not _folder(cache_dir).exists()
    assert cache.image_bytes(root / "bloodmnist.npz", 28) == (40 + 12 + 12) * 3 * 28 * 28
    monkeypatch.setattr(cache, "MMAP_AUTO_BYTES", 1000)
    loaded = load_medmnist("bloodmnist", 28, root=root, download=False, mmap=False)
    _assert_same(_load(root, cache_dir), loaded)
    assert (_folder(cache_dir) / "meta.json").is_file()


def test_default_cache_folder_is_medunlearn_cache(write_npz, tmp_path, monkeypatch):
    root = write_npz("bloodmnist", 40, 12, 12).parent
    monkeypatch.setenv("MEDUNLEARN_CACHE", str(tmp_path / "elsewhere"))
    load_medmnist("bloodmnist", 28, root=root, download=False, mmap=True)
    assert (tmp_path / "elsewhere" / "arrays" / "bloodmnist_28" / "meta.json").is_file()


def test_streaming_conversion_in_small_chunks(write_npz, cache_dir, monkeypatch):
    monkeypatch.setattr(cache, "CHUNK_BYTES", 3 * 28 * 28 * 7)  # 7 rows at a time
    root = write_npz("bloodmnist", 40, 12, 12).parent
    loaded = load_medmnist("bloodmnist", 28, root=root, download=False)
    _assert_same(_load(root, cache_dir, mmap=True), loaded)


def _bad_dtype(arrays: dict) -> None:
    arrays["val_images"] = arrays["val_images"].astype(np.float32)


def _bad_label(arrays: dict) -> None:
    arrays["test_labels"][0] = 99


def _missing_split(arrays: dict) -> None:
    del arrays["test_images"]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [(_bad_dtype, "must be uint8"), (_bad_label, "must lie in"), (_missing_split, "missing key")],
)
def test_malformed_files_raise_as_in_memory(write_npz, cache_dir, mutate, message):
    root = write_npz("bloodmnist", 40, 12, 12, mutate=mutate).parent
    with pytest.raises(DataError, match=message):
        load_medmnist("bloodmnist", 28, root=root, download=False)
    with pytest.raises(DataError, match=message):
        _load(root, cache_dir, mmap=True)
    assert not (_folder(cache_dir) / "meta.json").exists()


def test_unreadable_file_raises_data_error(tmp_path, cache_dir):
    (tmp_path / "bloodmnist.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="not a readable npz"):
        _load(tmp_path, cache_dir, mmap=True)
    with pytest.raises(DataError, match="not a readable npz"):
        _load(tmp_path, cache_dir)
