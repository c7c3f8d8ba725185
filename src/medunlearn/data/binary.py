"""Turn a multi-class dataset into a binary clinical task: positive (malignant / abnormal) vs rest.

The default mappings are the ones of the SalUn-CRA study. Native binary sets are mapped the
same way, so that label 1 always means positive: BreastMNIST's class 0 is malignant, so its
labels flip (malignant -> 1); PneumoniaMNIST's class 1 (pneumonia) stays 1.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import torch

from medunlearn.data.dataset import DataError, Dataset, Split

DEFAULT_POSITIVE: dict[str, tuple[int, ...]] = {
    "dermamnist": (0, 1, 4),  # akiec, bcc, mel
    "pathmnist": (7, 8),  # cancer-associated stroma, colorectal adenocarcinoma epithelium
    "bloodmnist": (2, 3),  # erythroblast, immature granulocyte ("abnormal")
    "breastmnist": (0,),  # malignant
    "pneumoniamnist": (1,),  # pneumonia
}


def positive_classes_for(name: str, positive: Sequence[int] | None) -> tuple[int, ...]:
    """The positive classes of a dataset: the explicit list if given, else the default mapping."""
    if positive is not None:
        return tuple(int(c) for c in positive)
    key = name.lower()
    if key not in DEFAULT_POSITIVE:
        known = ", ".join(f"{n} {list(c)}" for n, c in DEFAULT_POSITIVE.items())
        raise DataError(
            f"no default positive classes for {name!r}; defaults exist for: {known}. "
            "Give the mapping explicitly as a list of the original class indices that count "
            "as positive (e.g. positive=[7, 8])."
        )
    return DEFAULT_POSITIVE[key]


def _validated(positive: Sequence[int], n_classes: int) -> tuple[int, ...]:
    """Sorted, de-duplicated positive classes; DataError if empty, out of range or all classes."""
    classes = tuple(sorted({int(c) for c in positive}))
    if not classes:
        raise DataError("the positive class list is empty: name at least one original class")
    out_of_range = [c for c in classes if not 0 <= c < n_classes]
    if out_of_range:
        raise DataError(
            f"positive classes {out_of_range} are out of range: the dataset has classes "
            f"0..{n_classes - 1}"
        )
    if len(classes) == n_classes:
        raise DataError(
            f"positive classes {list(classes)} cover every class, leaving no negatives: "
            "leave at least one class out"
        )
    return classes


def _binary_split(split: Split, positive: torch.Tensor) -> Split:
    """The split with labels 1 where the original class is positive, 0 elsewhere."""
    labels = torch.isin(split.labels, positive).to(torch.int64)
    return Split(split.images, labels, split.labels.clone())


def _label_names(label_names: Sequence[str], classes: tuple[int, ...]) -> list[str]:
    """["negative (…)", "positive (…)"] listing the original names on each side."""
    negative = [n for i, n in enumerate(label_names) if i not in classes]
    positive = [n for i, n in enumerate(label_names) if i in classes]
    return [f"negative ({', '.join(negative)})", f"positive ({', '.join(positive)})"]


def to_binary(dataset: Dataset, positive: Sequence[int]) -> Dataset:
    """A new Dataset labelled 1 for the `positive` original classes and 0 for the others."""
    if any(s.original_labels is not None for s in (dataset.train, dataset.val, dataset.test)):
        raise DataError(
            f"{dataset.name} is already binarised (its splits keep original labels); "
            "binarise the original dataset instead"
        )
    classes = _validated(positive, dataset.n_classes)
    positive_tensor = torch.tensor(classes, dtype=torch.int64)
    return replace(
        dataset,
        name=f"{dataset.name}-binary",
        n_classes=2,
        label_names=_label_names(dataset.label_names, classes),
        train=_binary_split(dataset.train, positive_tensor),
        val=_binary_split(dataset.val, positive_tensor),
        test=_binary_split(dataset.test, positive_tensor),
        task="binary",
        positive_class=1,
    )
