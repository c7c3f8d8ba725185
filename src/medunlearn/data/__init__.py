"""Datasets: MedMNIST and CIFAR loading, validation and binary task mapping."""

from __future__ import annotations

from medunlearn.config import DataConfig
from medunlearn.data.dataset import DataError, Dataset, Split

CIFAR_NAMES = ("cifar10", "cifar100")


def load_dataset(
    config: DataConfig, download: bool = True, cache_dir: str | None = None
) -> Dataset:
    """The dataset a config names, at its size, mapped to a binary task when asked.

    `cache_dir` (`runtime.cache_dir`) is where large sets are memory-mapped from."""
    if config.dataset in CIFAR_NAMES:
        from medunlearn.data.cifar import load_cifar
        from medunlearn.data.medmnist import data_root, resize_images

        dataset = load_cifar(config.dataset, data_root(config.root))
        if config.size != dataset.size:
            for split in (dataset.train, dataset.val, dataset.test):
                split.images = resize_images(split.images, config.size)
            dataset.size = config.size
    else:
        from medunlearn.data.medmnist import load_medmnist

        dataset = load_medmnist(
            config.dataset, config.size, config.root, config.file_size, download=download,
            cache_dir=cache_dir,
        )  # fmt: skip
    if config.binary:
        from medunlearn.data.binary import positive_classes_for, to_binary

        dataset = to_binary(dataset, positive_classes_for(config.dataset, config.positive))
    if config.patients == "synthetic":
        from medunlearn.data.patients import synthetic_patients

        dataset.patients = synthetic_patients(len(dataset.train))
    return dataset


__all__ = ["DataError", "Dataset", "Split", "load_dataset"]
