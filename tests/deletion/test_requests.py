"""What a request forgets: the patient map and its refusals, patients to ids, the closure over
exact duplicates (train: forgotten; test: reported), the perceptual hash and its neighbours, the
class-emptying refusal, the ids' digest; and the closure on the real MedMNIST duplicates."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from medunlearn.data import Split
from medunlearn.data.medmnist import load_medmnist
from medunlearn.deletion.requests import (
    RequestError,
    check_classes_remain,
    close_request,
    digest,
    image_digests,
    patients_to_ids,
    perceptual_hashes,
    read_patient_map,
    read_patients,
    request_ids,
)

N_TRAIN = 12


def _write_map(path: Path, rows: list[tuple], header: str = "train_id,patient_id") -> Path:
    """A patient-map CSV of (train id, patient id) rows."""
    path.write_text("\n".join([header, *(f"{a},{b}" for a, b in rows)]) + "\n")
    return path


def _three_per_patient() -> list[tuple[int, str]]:
    """Twelve training ids, patient p{k} owning ids 3k, 3k + 1, 3k + 2 (listed shuffled)."""
    rows = [(i, f"p{i // 3}") for i in range(N_TRAIN)]
    order = np.random.default_rng(0).permutation(N_TRAIN)
    return [rows[i] for i in order]


def test_patient_map_maps_patients_to_their_ids(tmp_path):
    mapping = read_patient_map(_write_map(tmp_path / "map.csv", _three_per_patient()), N_TRAIN)
    assert sorted(mapping) == ["p0", "p1", "p2", "p3"]
    assert mapping["p2"].tolist() == [6, 7, 8]
    assert patients_to_ids(["p3", "p0"], mapping).tolist() == [0, 1, 2, 9, 10, 11]
    assert patients_to_ids(["p1", "p1"], mapping).tolist() == [3, 4, 5]


def _bad_maps() -> dict[str, tuple[list[tuple], str, str]]:
    """Malformed maps of 12 training ids: (rows, header, the words the refusal must hold)."""
    good = [(i, f"p{i // 3}") for i in range(N_TRAIN)]
    header = "train_id,patient_id"
    return {
        "missing ids": (good[:-2], header, "misses 2 training id(s), e.g. [10, 11]"),
        "an id twice": ([*good, (4, "p9")], header, "more than once"),
        "id out of range": ([*good, (12, "p9")], header, "out of range [0, 11], e.g. [12]"),
        "negative id": ([*good, (-1, "p9")], header, "out of range"),
        "not a number": ([*good[:-1], ("eleven", "p3")], header, "whole numbers"),
        "missing columns": (good, "train_id,patient", "needs the columns train_id and patient_id"),
        "no header": (good[1:], "0,p0", "needs the columns"),
    }


@pytest.mark.parametrize("case", list(_bad_maps()))
def test_patient_map_errors_are_one_clear_line(tmp_path, case):
    rows, header, words = _bad_maps()[case]
    path = _write_map(tmp_path / "map.csv", rows, header)
    with pytest.raises(RequestError) as error:
        read_patient_map(path, N_TRAIN)
    message = str(error.value)
    assert words in message
    assert "\n" not in message and str(path) in message


def test_absent_patient_map_is_refused(tmp_path):
    with pytest.raises(RequestError, match="patient map not found"):
        read_patient_map(tmp_path / "nowhere.csv", N_TRAIN)


def test_unknown_patients_are_refused_by_name(tmp_path):
    mapping = read_patient_map(_write_map(tmp_path / "map.csv", _three_per_patient()), N_TRAIN)
    with pytest.raises(RequestError) as error:
        patients_to_ids(["p1", "ghost-7", "ghost-3"], mapping)
    message = str(error.value)
    assert "2 unknown patient(s)" in message and "ghost-3" in message and "ghost-7" in message
    assert "\n" not in message
    with pytest.raises(RequestError, match="names no patient"):
        patients_to_ids([], mapping)


def test_patient_list_skips_blanks_and_comments(tmp_path):
    path = tmp_path / "patients.txt"
    path.write_text("# a request\np3\n\n  p0  # her second visit\n")
    assert read_patients(path) == ["p3", "p0"]
    with pytest.raises(RequestError, match="patient list not found"):
        read_patients(tmp_path / "nowhere.txt")


def test_request_ids_are_checked_and_unique(tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("7 3\n3, 11\n")
    assert request_ids(path, N_TRAIN).tolist() == [3, 7, 11]
    path.write_text("3 12 40\n")
    with pytest.raises(RequestError, match=r"2 id\(s\) out of range \[0, 11\], e.g. \[12, 40\]"):
        request_ids(path, N_TRAIN)
    path.write_text("# nothing\n")
    with pytest.raises(RequestError, match="names no id"):
        request_ids(path, N_TRAIN)


def test_digest_is_order_independent():
    assert digest(np.array([53, 37, 41])) == digest(np.array([37, 41, 53]))
    assert digest(np.array([37, 41, 53], dtype=np.int32)) == digest([41, 53, 37])
    assert digest(np.array([37, 41, 53])) != digest(np.array([37, 41, 54]))


# --- the closure over exact duplicates ------------------------------------------------------

# train ids 3 and 30 each have copies elsewhere in train; test image 5 is a copy of train 3
COPIES = {3: [10, 20], 30: [31]}
TEST_COPY = (5, 3)


def _with_copies(arrays: dict) -> None:
    """Put exact copies of train images 3 and 30 elsewhere in train, and one of 3 in test."""
    for source, copies in COPIES.items():
        for copy in copies:
            arrays["train_images"][copy] = arrays["train_images"][source]
            arrays["train_labels"][copy] = arrays["train_labels"][source]
    test, train = TEST_COPY
    arrays["test_images"][test] = arrays["train_images"][train]
    arrays["test_labels"][test] = arrays["train_labels"][train]


@pytest.fixture
def copies(write_npz):
    """The tiny BloodMNIST fixture with the exact copies of `_with_copies`."""
    path = write_npz("bloodmnist", 64, 24, 24, mutate=_with_copies)
    return load_medmnist("bloodmnist", 28, root=path.parent, download=False)


def test_exact_train_duplicates_are_forgotten_and_test_copies_reported(copies):
    closure = close_request(copies, np.array([3, 7]))
    assert closure.named.tolist() == [3, 7]
    assert closure.duplicates.tolist() == [10, 20]
    assert closure.test_duplicates.tolist() == [TEST_COPY[0]]
    assert closure.ids.tolist() == [3, 7, 10, 20]
    assert closure.neighbours.size == 0  # no perceptual hash asked for


def test_naming_a_copy_forgets_the_original(copies):
    closure = close_request(copies, np.array([20, 31]))
    assert closure.duplicates.tolist() == [3, 10, 30]
    assert closure.ids.tolist() == [3, 10, 20, 30, 31]
    assert closure.test_duplicates.tolist() == [TEST_COPY[0]]


def test_images_without_copies_close_over_nothing(copies):
    closure = close_request(copies, np.array([0, 1, 2]))
    assert closure.duplicates.size == 0 and closure.test_duplicates.size == 0
    assert closure.ids.tolist() == [0, 1, 2]


# --- the perceptual hash ----------------------------------------------------------------------


def _blobs(n: int, seed: int = 0) -> np.ndarray:
    """n smooth grey 28 x 28 images (a few Gaussian blobs on a background, a little noise),
    never saturated: like a cell or an organ, unlike the fixture's pure noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:28, 0:28]
    images = []
    for _ in range(n):
        image = np.full((28, 28), 40.0)
        for _ in range(4):
            cy, cx = rng.uniform(4, 24, 2)
            spread, height = rng.uniform(2, 6), rng.uniform(40, 90)
            image += height * np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * spread**2))
        images.append(image + rng.normal(0, 3, image.shape))
    return np.clip(np.stack(images).round(), 0, 255).astype(np.uint8)


def _split(grey: np.ndarray | torch.Tensor) -> Split:
    """A colour split of grey images (N, 28, 28)."""
    images = torch.as_tensor(grey)[:, None].repeat(1, 3, 1, 1)
    return Split(images, torch.zeros(len(images), dtype=torch.long))


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamming distance between the hashes of two equally long sets of images."""
    return (perceptual_hashes(_split(a)) != perceptual_hashes(_split(b))).sum(axis=1)


def test_phash_ignores_a_slight_brightness_change():
    images = _blobs(20)
    assert perceptual_hashes(_split(images)).shape == (20, 64)
    assert images.max() <= 247
    brighter = images + np.uint8(8)
    assert _distances(images, brighter).tolist() == [0] * 20
    scaled = np.clip(np.round(images * 1.06), 0, 255).astype(np.uint8)
    assert _distances(images, scaled).tolist() == [0] * 20


def test_phash_survives_a_resize_round_trip():
    images = _blobs(20)
    grey = torch.from_numpy(images)[:, None].float()
    up = F.interpolate(grey, size=56, mode="bilinear", align_corners=False)
    back = F.interpolate(up, size=28, mode="area").round().clamp(0, 255).to(torch.uint8)[:, 0]
    assert not torch.equal(back, torch.from_numpy(images))  # the pixels did change
    distances = _distances(images, back.numpy())
    # equal for most images; a coefficient at the median may swap with its neighbour (2 bits)
    assert (distances == 0).sum() >= 15 and distances.max() <= 2


def test_phash_tells_unrelated_images_apart():
    hashes = perceptual_hashes(_split(_blobs(20)))
    distances = (hashes[:, None, :] != hashes[None, :, :]).sum(axis=2)
    assert distances[np.triu_indices(20, 1)].min() >= 10


# train 8 holds a smooth image, train 40 the same image slightly brighter (not an exact copy)
NEAR, NEIGHBOUR = 8, 40


def _with_neighbour(arrays: dict) -> None:
    """A smooth image at train NEAR and its brightened twin at NEIGHBOUR (same label)."""
    image = _blobs(1)[0]
    arrays["train_images"][NEAR] = image[..., None]
    arrays["train_images"][NEIGHBOUR] = (image + np.uint8(5))[..., None]
    arrays["train_labels"][NEIGHBOUR] = arrays["train_labels"][NEAR]


@pytest.fixture
def near(write_npz):
    """The tiny BloodMNIST fixture with a near-duplicate pair in train."""
    path = write_npz("bloodmnist", 64, 24, 24, mutate=_with_neighbour)
    return load_medmnist("bloodmnist", 28, root=path.parent, download=False)


def test_phash_neighbours_are_reported_and_forgotten_only_when_asked(near):
    closure = close_request(near, np.array([NEAR, 2]), phash_distance=2)
    assert closure.duplicates.size == 0  # not an exact copy
    assert closure.neighbours.tolist() == [NEIGHBOUR]
    assert closure.ids.tolist() == [2, NEAR]  # reported, not forgotten
    forgetting = close_request(near, np.array([NEAR, 2]), 2, forget_neighbours=True)
    assert forgetting.ids.tolist() == [2, NEAR, NEIGHBOUR]
    assert close_request(near, np.array([NEAR]), None, True).ids.tolist() == [NEAR]
    assert close_request(near, np.array([2]), 2).neighbours.size == 0


# --- a class emptied --------------------------------------------------------------------------


def test_a_request_that_empties_a_class_is_refused(blood):
    labels = blood.train.labels.numpy()
    class_three = np.flatnonzero(labels == 3)
    with pytest.raises(RequestError) as error:
        check_classes_remain(blood, class_three)
    message = str(error.value)
    assert blood.label_names[3] in message and "every training image" in message
    assert "\n" not in message
    check_classes_remain(blood, class_three[:-1])  # one image of the class left: served


def test_a_class_absent_from_train_is_not_a_refusal(write_npz):
    def no_class_seven(arrays: dict) -> None:
        labels = arrays["train_labels"]
        labels[labels == 7] = 6

    path = write_npz("bloodmnist", 64, 24, 24, mutate=no_class_seven)
    dataset = load_medmnist("bloodmnist", 28, root=path.parent, download=False)
    check_classes_remain(dataset, np.array([0, 1]))


# --- the real MedMNIST duplicates (REFERENCE.md section 9) ------------------------------------


def _groups(digests: list[str]) -> list[list[int]]:
    """The training ids of each image that occurs more than once."""
    counts = Counter(digests)
    found: dict[str, list[int]] = {}
    for i, key in enumerate(digests):
        if counts[key] > 1:
            found.setdefault(key, []).append(i)
    return list(found.values())


@pytest.mark.realdata
@pytest.mark.parametrize(
    ("flag", "extra", "in_test"), [("bloodmnist", 8, 5), ("pneumoniamnist", 18, 0)]
)
def test_real_duplicates_are_closed_over(realdata, flag, extra, in_test):
    dataset = load_medmnist(flag, 28, root=realdata, download=False)
    train = image_digests(dataset.train)
    groups = _groups(train)
    assert sum(len(group) - 1 for group in groups) == extra
    first = np.array([group[0] for group in groups])
    closure = close_request(dataset, first)
    assert closure.duplicates.size == extra
    assert sorted(closure.ids.tolist()) == sorted(i for group in groups for i in group)
    # the train images some test image copies: naming them reports every such test image
    test = set(image_digests(dataset.test))
    copied = np.array([i for i, key in enumerate(train) if key in test], dtype=np.int64)
    if in_test:
        assert close_request(dataset, copied).test_duplicates.size == in_test
    assert len({train[i] for i in copied}) == in_test
