"""Calibration: the expected calibration error of the top-class confidence on the test split
(15 equal-width bins, as Guo et al. 2017), in percent. A deletion that leaves accuracy but
makes the model over- or under-confident changes what a clinician reads from its scores."""

from __future__ import annotations

import numpy as np
import torch

from medunlearn.metrics.evidence import Evidence
from medunlearn.metrics.registry import Needs, Output, register_metric

ECE_BINS = 15


def expected_calibration_error(probabilities: np.ndarray, labels: np.ndarray) -> float | None:
    """sum over bins of (share of samples) x |accuracy - mean confidence|, in percent, the top
    class's probability binned in [0, 1] (`probabilities` n x C; None for no samples)."""
    if len(labels) == 0:
        return None
    confidence, predicted = probabilities.max(1), probabilities.argmax(1)
    correct = predicted == labels
    bins = np.minimum((confidence * ECE_BINS).astype(int), ECE_BINS - 1)
    gaps = [(bins == b).mean() * abs(correct[bins == b].mean() - confidence[bins == b].mean())
            for b in np.unique(bins)]  # fmt: skip
    return 100.0 * float(np.sum(gaps))


@register_metric(
    "calibration",
    "calibration",
    Needs(splits=frozenset({"test"}), option="calibration"),
    columns=("ece",),
)
def calibration(evidence: Evidence) -> Output:
    """The expected calibration error on the test split."""
    probabilities = torch.softmax(evidence.logits_of("test").double(), 1).numpy()
    labels = evidence.labels_of("test").numpy()
    return Output({"ece": expected_calibration_error(probabilities, labels)})
