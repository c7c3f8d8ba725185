"""Per-sample statistics of one model's logits, one pass feeding every attack: the loss, the
true-class confidence and LiRA's logit-scaled confidence phi."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.special import expit


@dataclass(frozen=True)
class SampleScores:
    """Per-sample cross-entropy loss, softmax probability of the true class, and phi (float64)."""

    loss: np.ndarray
    confidence: np.ndarray
    phi: np.ndarray

    def select(self, rows: np.ndarray) -> SampleScores:
        """The scores of the given samples."""
        return SampleScores(self.loss[rows], self.confidence[rows], self.phi[rows])

    def join(self, other: SampleScores) -> SampleScores:
        """These samples' scores followed by `other`'s."""
        return SampleScores(*(np.concatenate(pair) for pair in zip(
            (self.loss, self.confidence, self.phi), (other.loss, other.confidence, other.phi),
            strict=True)))  # fmt: skip


def logit_scaled_confidence(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """phi = log p_y - log(1 - p_y) = z_y - logsumexp_{j != y} z_j, in float64 from the logits.

    Never formed from p_y, so it stays exact where a softmax rounds p_y to 1 (p_y = 1 - 1e-12
    in float32) or to 0 (confident wrong predictions). A row with a NaN logit (a diverged model)
    gives -inf, the limit p_y -> 0, as the MIA's confidence 0 (`mia.true_class_confidence`).
    """
    z = logits.double()
    index = labels.view(-1, 1)
    others = z.scatter(1, index, float("-inf"))
    phi = (z.gather(1, index).squeeze(1) - torch.logsumexp(others, dim=1)).numpy()
    return np.where(np.isnan(phi), -np.inf, phi)


def per_sample_scores(logits: torch.Tensor, labels: torch.Tensor) -> SampleScores:
    """Loss, confidence and phi of each sample, the first two derived from phi without loss of
    precision: p_y = sigmoid(phi) and CE = -log p_y = log(1 + exp(-phi))."""
    phi = logit_scaled_confidence(logits, labels)
    return SampleScores(loss=np.logaddexp(0.0, -phi), confidence=expit(phi), phi=phi)
