"""Which patient each training image belongs to: a seeded synthetic mapping for studies
(MedMNIST files carry no patient ids), read by sharded training, patient forget sets and the
sequential-requests study."""

from __future__ import annotations

import numpy as np

from medunlearn.config import UserError

# a synthetic patient has 1 to this many images, each size equally likely
MOST_IMAGES = 5
# the seed of the synthetic mapping: a property of the data, the same for every run
MAPPING_SEED = 0


def _sizes(n_images: int, rng: np.random.Generator, least: int, most: int) -> list[int]:
    """Patient sizes of `least` to `most` images (drawn uniformly) summing to `n_images`; a
    short last patient takes images from larger ones, or is spread over smaller ones."""
    if not 1 <= least <= most:
        raise UserError(f"images per patient must satisfy 1 <= min <= max; got ({least}, {most})")
    if n_images < least:
        raise UserError(f"{n_images} training images cannot make a patient of {least} or more")
    sizes: list[int] = []
    while sum(sizes) < n_images:
        sizes.append(int(rng.integers(least, most + 1)))
    sizes[-1] -= sum(sizes) - n_images
    while sizes[-1] < least:
        donors = [i for i in range(len(sizes) - 1) if sizes[i] > least]
        if donors:
            sizes[donors[-1]] -= 1
            sizes[-1] += 1
            continue
        short = sizes.pop()
        room = [i for i, size in enumerate(sizes) if size < most]
        if len(room) < short:
            raise UserError(
                f"{n_images} training images cannot be cut into patients of {least} to {most} "
                "images"
            )
        for i in room[-short:]:
            sizes[i] += 1
    return sizes


def synthetic_patients(
    n_images: int, seed: int = MAPPING_SEED, least: int = 1, most: int = MOST_IMAGES
) -> np.ndarray:
    """A patient index per image, numbered from 0: the images in a seeded random order, cut
    into consecutive patients of `least` to `most` images each (sizes drawn uniformly)."""
    rng = np.random.default_rng(seed)
    sizes = _sizes(n_images, rng, least, most)
    patients = np.empty(n_images, dtype=np.int64)
    patients[rng.permutation(n_images)] = np.repeat(np.arange(len(sizes)), sizes)
    return patients
