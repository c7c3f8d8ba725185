"""Forget sets: random, balanced, class and id-file selection, saved form, and refusals."""

import json

import numpy as np
import pytest

from medunlearn.config import ConfigError, DataConfig, ForgetConfig
from medunlearn.data import load_dataset
from medunlearn.data.medmnist import load_medmnist
from medunlearn.forget import ForgetError, ForgetSet, load_forget_set, read_ids, select_forget


@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.9])
def test_random_fraction(blood, fraction):
    n = len(blood.train)
    forget_set = select_forget(blood, ForgetConfig(mode="random", fraction=fraction), seed=0)
    ids = forget_set.forget_ids
    assert len(ids) == round(fraction * n)
    assert len(np.unique(ids)) == len(ids)
    assert np.all(np.diff(ids) > 0)
    assert ids.min() >= 0 and ids.max() < n
    # the retain set is the complement
    retain = forget_set.retain_ids
    assert len(retain) + len(ids) == n
    assert np.intersect1d(retain, ids).size == 0
    assert forget_set.forget_index.tolist() == ids.tolist()
    assert forget_set.retain_index.tolist() == retain.tolist()


def test_balanced_takes_the_fraction_of_every_class(blood):
    labels = blood.train.labels.numpy()
    forget_set = select_forget(blood, ForgetConfig(mode="balanced", fraction=0.25), seed=0)
    chosen = labels[forget_set.forget_ids]
    for c in range(blood.n_classes):
        assert (chosen == c).sum() == round(0.25 * (labels == c).sum())
    assert np.all(np.diff(forget_set.forget_ids) > 0)


def test_class_mode_takes_every_sample_of_the_classes(blood):
    labels = blood.train.labels.numpy()
    forget_set = select_forget(blood, ForgetConfig(mode="class", classes=[2, 5]))
    assert forget_set.forget_ids.tolist() == np.flatnonzero(np.isin(labels, [2, 5])).tolist()
    assert not np.isin(labels[forget_set.retain_ids], [2, 5]).any()


def test_class_mode_errors(blood):
    with pytest.raises(ForgetError, match=r"forget\.classes"):
        select_forget(blood, ForgetConfig(mode="class", classes=[]))
    with pytest.raises(ForgetError, match=r"\[8\]"):
        select_forget(blood, ForgetConfig(mode="class", classes=[8]))
    with pytest.raises(ForgetError, match="retain set is empty"):
        select_forget(blood, ForgetConfig(mode="class", classes=list(range(8))))


@pytest.mark.parametrize(
    "text", ["3 1 7\n12", "3,1,7,12\n", "3\n1\n7\n12\n", "3; 1;7 ,12", "# ids\n3 1 7 12 # end"]
)
def test_ids_file_text(blood, tmp_path, text):
    path = tmp_path / "ids.txt"
    path.write_text(text)
    assert read_ids(path).tolist() == [3, 1, 7, 12]
    forget_set = load_forget_set(path, blood)
    assert sorted(forget_set.forget_ids.tolist()) == [1, 3, 7, 12]
    assert forget_set.n_train == len(blood.train)
    assert forget_set.data_fingerprint == blood.fingerprint
    assert 3 not in forget_set.retain_ids and len(forget_set.retain_ids) == len(blood.train) - 4
    # the same file through a config
    by_config = select_forget(blood, ForgetConfig(mode="ids", ids_file=str(path)))
    assert sorted(by_config.forget_ids.tolist()) == [1, 3, 7, 12]


def test_ids_file_comment_line(blood, tmp_path):
    path = tmp_path / "ids.txt"
    path.write_text("# ids of the patients who withdrew consent\n3\n1\n")
    assert read_ids(path).tolist() == [3, 1]


def test_ids_file_errors(blood, tmp_path):
    with pytest.raises(ForgetError, match="not found"):
        read_ids(tmp_path / "nope.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("1 2 three")
    with pytest.raises(ForgetError, match="whole numbers"):
        read_ids(bad)
    with pytest.raises(ForgetError, match="ids_file"):
        select_forget(blood, ForgetConfig(mode="ids"))
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(ForgetError, match="not a saved forget set"):
        read_ids(broken)


def test_saved_json_round_trip(blood, tmp_path):
    forget_set = select_forget(blood, ForgetConfig(mode="random", fraction=0.25), seed=7)
    path = tmp_path / "sets" / "forget_set.json"
    forget_set.save(path)
    data = json.loads(path.read_text())
    assert data["n_forget"] == len(forget_set.forget_ids)
    assert data["dataset"] == "bloodmnist"
    loaded = load_forget_set(path, blood)
    assert loaded.forget_ids.tolist() == forget_set.forget_ids.tolist()
    assert (loaded.seed, loaded.spec, loaded.n_train) == (7, forget_set.spec, len(blood.train))
    assert loaded.data_fingerprint == blood.fingerprint


def test_saved_json_refused_on_other_data(blood, write_npz, tmp_path):
    forget_set = select_forget(blood, ForgetConfig(mode="random", fraction=0.25), seed=0)
    path = tmp_path / "forget_set.json"
    forget_set.save(path)
    # same name and size, other pixels
    other_path = write_npz("bloodmnist", 64, 24, 24, seed=99, folder=tmp_path / "other")
    other = load_medmnist("bloodmnist", 28, root=other_path.parent, download=False)
    with pytest.raises(ForgetError, match="fingerprint"):
        load_forget_set(path, other)
    with pytest.raises(ForgetError, match="fingerprint"):
        forget_set.check_matches(other)
    forget_set.check_matches(blood)


@pytest.mark.parametrize(
    ("ids", "message"),
    [
        ([0, 64], "out of range"),
        ([-1, 3], "out of range"),
        ([1, 2, 2], "duplicate"),
        ([], "empty"),
        (list(range(64)), "retain set is empty"),
    ],
)
def test_bad_ids(blood, tmp_path, ids, message):
    with pytest.raises(ForgetError, match=message):
        ForgetSet(np.asarray(ids, dtype=np.int64), len(blood.train), "bloodmnist", "x")
    path = tmp_path / "ids.txt"
    path.write_text(" ".join(map(str, ids)))
    with pytest.raises(ForgetError, match=message):
        load_forget_set(path, blood)


@pytest.mark.parametrize("mode", ["random", "balanced"])
@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_fraction_must_be_strictly_between_0_and_1(mode, fraction):
    with pytest.raises(ConfigError, match=r"fraction must be in \(0, 1\); got"):
        ForgetConfig(mode=mode, fraction=fraction)


def test_unknown_mode():
    with pytest.raises(ConfigError, match="mode must be one of"):
        ForgetConfig(mode="stratified")


def test_skewed_needs_a_binary_task(blood, data_root):
    with pytest.raises(ForgetError, match="binary"):
        select_forget(blood, ForgetConfig(mode="skewed", fraction=0.2, positive_share=0.5))
    breast = load_medmnist("breastmnist", 28, root=data_root, download=False)
    forget_set = select_forget(
        breast, ForgetConfig(mode="skewed", fraction=0.25, positive_share=0.8)
    )
    labels = breast.train.labels.numpy()[forget_set.forget_ids]
    assert len(labels) == 10
    assert (labels == 0).sum() == 8  # native BreastMNIST: class 0 is malignant, the positive
    binary = load_dataset(DataConfig("breastmnist", root=str(data_root), binary=True))
    forget_set = select_forget(
        binary, ForgetConfig(mode="skewed", fraction=0.25, positive_share=0.8)
    )
    assert (binary.train.original_labels.numpy()[forget_set.forget_ids] == 0).sum() == 8
