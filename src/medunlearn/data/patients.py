"""Which patient each training image belongs to: a seeded synthetic mapping for studies
(MedMNIST files carry no patient ids), read by sharded training and patient forget sets."""

from __future__ import annotations

import numpy as np

# a synthetic patient has 1 to this many images, each size equally likely
MOST_IMAGES = 5
# the seed of the synthetic mapping: a property of the data, the same for every run
MAPPING_SEED = 0


def synthetic_patients(
    n_images: int, seed: int = MAPPING_SEED, most: int = MOST_IMAGES
) -> np.ndarray:
    """A patient index per image: the images in a seeded random order, cut into consecutive
    patients of 1 to `most` images each (sizes drawn uniformly), numbered from 0."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, most + 1, size=n_images)
    ends = np.cumsum(sizes)
    count = int(np.searchsorted(ends, n_images)) + 1
    patient_of_slot = np.repeat(np.arange(count), sizes[:count])[:n_images]
    patients = np.empty(n_images, dtype=np.int64)
    patients[rng.permutation(n_images)] = patient_of_slot
    return patients
