"""Membership inference (MIA-efficacy of SalUn): an SVC on the true-class confidence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from sklearn.svm import SVC

# the reference's gamma="auto" is 1 / n_features, and the attack has one feature
GAMMA = 1.0
# the attack's kernel matrix is computed once, in float64, when it takes at most this many bytes
# (up to 2 x 4096 samples; BloodMNIST's 2 x 3421 take 375 MB): fit and predict then run about
# 30% faster than when libsvm computes kernel columns itself, as it still does for larger
# attacks (at 2 x 5500 samples the precomputed matrix was already the slower)
KERNEL_BYTES = 512 << 20
# rows of kernel computed at a time when predicting on a precomputed kernel
PREDICT_BYTES = 64 << 20


def true_class_confidence(logits: torch.Tensor, labels: torch.Tensor) -> np.ndarray:
    """Softmax probability of each sample's true class: the attack's one feature.

    A diverged model (NaN logits, e.g. after too strong gradient ascent) gives confidence 0.
    """
    probabilities = torch.softmax(logits.float(), dim=1)
    confidence = probabilities.gather(1, labels.view(-1, 1)).squeeze(1).numpy()
    return np.nan_to_num(confidence, nan=0.0)


def rbf_kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The SVC's RBF kernel exp(-GAMMA (a_i - b_j)^2) of two sets of 1-D features, float64."""
    rows = torch.as_tensor(np.asarray(a, np.float64)).view(-1, 1)
    columns = torch.as_tensor(np.asarray(b, np.float64)).view(1, -1)
    kernel = torch.empty(rows.shape[0], columns.shape[1], dtype=torch.float64)
    torch.sub(rows, columns, out=kernel)
    return kernel.square_().mul_(-GAMMA).exp_().numpy()


@dataclass(frozen=True)
class Attack:
    """A fitted attack: the SVC, and its training features when it was fitted on their kernel."""

    svc: SVC
    features: np.ndarray | None = None

    def predict(self, confidence: np.ndarray) -> np.ndarray:
        """1 for each sample the attack calls a member, 0 for a non-member."""
        confidence = np.asarray(confidence, np.float64)
        if self.features is None:
            return self.svc.predict(confidence.reshape(-1, 1))
        rows = max(1, PREDICT_BYTES // (8 * len(self.features)))
        parts = np.split(confidence, np.arange(rows, len(confidence), rows))
        return np.concatenate([self.svc.predict(rbf_kernel(p, self.features)) for p in parts])


def fit_attack(member: np.ndarray, non_member: np.ndarray, seed: int = 0) -> Attack:
    """RBF SVC (C=3, gamma='auto') on members (1) vs non-members (0), n = min of both sizes.

    Drawing the same number of each (seeded) keeps the attack balanced and avoids the
    reference code's crash when the retain set is smaller than the test set. The SVC is fitted
    on the precomputed kernel matrix when it takes at most KERNEL_BYTES: the same problem,
    solved faster.
    """
    n = min(len(member), len(non_member))
    if n == 0:
        raise ValueError("the MIA needs at least one member and one non-member sample")
    rng = np.random.default_rng(seed)
    member = rng.choice(member, n, replace=False)
    non_member = rng.choice(non_member, n, replace=False)
    features = np.concatenate([member, non_member]).astype(np.float64)
    targets = np.concatenate([np.ones(n), np.zeros(n)])
    if 8 * len(features) ** 2 <= KERNEL_BYTES:
        svc = SVC(C=3, kernel="precomputed").fit(rbf_kernel(features, features), targets)
        return Attack(svc, features)
    return Attack(SVC(C=3, gamma=GAMMA, kernel="rbf").fit(features.reshape(-1, 1), targets))


def mia_efficacy(
    retain_conf: np.ndarray, test_conf: np.ndarray, forget_conf: np.ndarray, seed: int = 0
) -> float:
    """Percent of forget samples the attack (trained on retain vs test) calls non-members."""
    if len(forget_conf) == 0:
        return 0.0
    predicted_member = fit_attack(retain_conf, test_conf, seed).predict(forget_conf)
    return 100.0 * float(1.0 - predicted_member.mean())
