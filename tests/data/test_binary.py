"""Binarisation of in-memory datasets: label mapping, original labels, native flips, errors."""

import pytest
import torch

from medunlearn.data.binary import DEFAULT_POSITIVE, positive_classes_for, to_binary
from medunlearn.data.dataset import DataError, Dataset, Split


def _split(labels: list[int], seed: int) -> Split:
    """A split of tiny random uint8 images with the given labels."""
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (len(labels), 3, 4, 4), dtype=torch.uint8, generator=generator)
    return Split(images, torch.tensor(labels, dtype=torch.int64))


def _dataset(name: str, label_names: list[str], labels: list[int]) -> Dataset:
    """A tiny dataset whose three splits all hold `labels`."""
    return Dataset(
        name=name,
        size=4,
        n_classes=len(label_names),
        channels=3,
        label_names=label_names,
        train=_split(labels, 0),
        val=_split(labels, 1),
        test=_split(labels, 2),
    )


DERMA_NAMES = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
DERMA_LABELS = [0, 1, 2, 3, 4, 5, 6, 5, 4, 2]


def test_multiclass_mapping_keeps_images_and_original_labels():
    derma = _dataset("dermamnist", DERMA_NAMES, DERMA_LABELS)
    binary = to_binary(derma, positive_classes_for("dermamnist", None))
    for original, split in zip(
        (derma.train, derma.val, derma.test), (binary.train, binary.val, binary.test), strict=True
    ):
        assert split.labels.tolist() == [1, 1, 0, 0, 1, 0, 0, 0, 1, 0]
        assert split.labels.dtype == torch.int64
        assert torch.equal(split.original_labels, original.labels)
        assert torch.equal(split.images, original.images)
        assert original.original_labels is None


def test_metadata_of_the_binary_dataset():
    derma = _dataset("dermamnist", DERMA_NAMES, DERMA_LABELS)
    binary = to_binary(derma, [4, 0, 1, 1])
    assert binary.name == "dermamnist-binary"
    assert (binary.n_classes, binary.task, binary.positive_class) == (2, "binary", 1)
    assert binary.label_names == ["negative (bkl, df, nv, vasc)", "positive (akiec, bcc, mel)"]
    assert (derma.name, derma.n_classes, derma.task) == ("dermamnist", 7, "multi-class")


def test_breastmnist_flips_so_malignant_is_positive():
    breast = _dataset("breastmnist", ["malignant", "normal, benign"], [0, 1, 1, 0, 1])
    binary = to_binary(breast, positive_classes_for("BreastMNIST", None))
    assert binary.test.labels.tolist() == [1, 0, 0, 1, 0]
    assert binary.test.original_labels.tolist() == [0, 1, 1, 0, 1]
    assert binary.label_names == ["negative (normal, benign)", "positive (malignant)"]


def test_pneumoniamnist_keeps_its_labels():
    pneumonia = _dataset("pneumoniamnist", ["normal", "pneumonia"], [0, 1, 1, 0])
    binary = to_binary(pneumonia, positive_classes_for("pneumoniamnist", None))
    assert binary.train.labels.tolist() == [0, 1, 1, 0]


def test_explicit_positive_wins_over_default():
    assert positive_classes_for("pathmnist", [3]) == (3,)
    assert positive_classes_for("pathmnist", None) == DEFAULT_POSITIVE["pathmnist"] == (7, 8)
    assert positive_classes_for("bloodmnist", None) == (2, 3)


def test_unknown_dataset_without_mapping_names_the_defaults():
    with pytest.raises(DataError, match="organamnist") as error:
        positive_classes_for("organamnist", None)
    for name in DEFAULT_POSITIVE:
        assert name in str(error.value)
    assert "explicitly" in str(error.value)


@pytest.mark.parametrize(
    ("positive", "match"),
    [
        ([], "empty"),
        ([7], "out of range"),
        ([-1, 2], "out of range"),
        (list(range(7)), "every class"),
    ],
)
def test_invalid_positive_classes(positive, match):
    derma = _dataset("dermamnist", DERMA_NAMES, DERMA_LABELS)
    with pytest.raises(DataError, match=match):
        to_binary(derma, positive)


def test_binarising_twice_is_refused():
    binary = to_binary(_dataset("dermamnist", DERMA_NAMES, DERMA_LABELS), [0, 1, 4])
    with pytest.raises(DataError, match="already binarised"):
        to_binary(binary, [1])
