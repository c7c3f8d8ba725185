"""Membership inference (MIA-efficacy of SalUn): an SVC on the true-class confidence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.svm import SVC


def true_class_confidence(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Softmax probability of each sample's true class: the attack's one feature.

    A diverged model (NaN logits, e.g. after too strong gradient ascent) gives confidence 0.
    """
    probabilities = torch.softmax(logits.float(), dim=1)
    confidence = probabilities.gather(1, labels.view(-1, 1)).squeeze(1).numpy()
    return np.nan_to_num(confidence, nan=0.0)


def fit_attack(member: np.ndarray, non_member: np.ndarray, seed: int = 0) -> SVC:
    """RBF SVC (C=3, gamma='auto') on members (1) vs non-members (0), n = min of both sizes.

    Drawing the same number of each (seeded) keeps the attack balanced and avoids the
    reference code's crash when the retain set is smaller than the test set.
    """
    n = min(len(member), len(non_member))
    if n == 0:
        raise ValueError("the MIA needs at least one member and one non-member sample")
    rng = np.random.default_rng(seed)
    member = rng.choice(member, n, replace=False)
    non_member = rng.choice(non_member, n, replace=False)
    features = np.concatenate([member, non_member]).reshape(-1, 1)
    targets = np.concatenate([np.ones(n), np.zeros(n)])
    return SVC(C=3, gamma="auto", kernel="rbf").fit(features, targets)


def mia_efficacy(
    retain_conf: np.ndarray, test_conf: np.ndarray, forget_conf: np.ndarray, seed: int = 0
) -> float:
    """Percent of forget samples the attack (trained on retain vs test) calls non-members."""
    if len(forget_conf) == 0:
        return 0.0
    attack = fit_attack(retain_conf, test_conf, seed)
    predicted_member = attack.predict(np.asarray(forget_conf).reshape(-1, 1))
    return 100.0 * float(1.0 - predicted_member.mean())


@dataclass(frozen=True)
class MiaInputs:
    """All one model's MIA needs: true-class confidences of retain, test and forget, the seed.

    Kept apart from the logits, so that the attack can run later (e.g. after a grid's trainings)
    from 4 bytes per train and test sample.
    """

    retain: np.ndarray
    test: np.ndarray
    forget: np.ndarray
    seed: int = 0

    def efficacy(self) -> float:
        """The model's MIA-efficacy (percent)."""
        return mia_efficacy(self.retain, self.test, self.forget, self.seed)
