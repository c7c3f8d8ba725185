"""Membership inference as SalUn measures it (MIA-efficacy): an RBF SVC on the true-class
confidence, trained on retain (members) vs test (non-members), asked about the forget samples.

Kept for comparison with the published tables: a population attack, it overestimates
forgetting, and on small sets it is noise. It is deferred: fitted on saved inputs once a forget
set's methods have trained (in threads, never beside a training whose run time it would
inflate)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.svm import SVC

from medunlearn.metrics.evidence import Evidence
from medunlearn.metrics.registry import Column, Deferred, Output, register_metric


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


# confidences at which a fitted attack is probed: its one feature lies in [0, 1]
PROBE = np.linspace(0.0, 1.0, 1001).reshape(-1, 1)


@dataclass(frozen=True)
class MiaResult:
    """MIA-efficacy (percent), and whether the attack was constant: an SVC that gives one
    answer for every confidence in [0, 1] learned nothing, and its efficacy (0 or 100) says
    nothing about forgetting."""

    efficacy: float
    constant: bool


def judge(attack: SVC, forget_conf: np.ndarray) -> MiaResult:
    """Percent of forget samples a fitted attack calls non-members, and whether it is constant."""
    if len(forget_conf) == 0:
        return MiaResult(0.0, False)
    predicted_member = attack.predict(np.asarray(forget_conf).reshape(-1, 1))
    constant = len(np.unique(attack.predict(PROBE))) == 1
    return MiaResult(100.0 * float(1.0 - predicted_member.mean()), constant)


def mia_attack(
    retain_conf: np.ndarray, test_conf: np.ndarray, forget_conf: np.ndarray, seed: int = 0
) -> MiaResult:
    """Percent of forget samples the attack (trained on retain vs test) calls non-members."""
    return judge(fit_attack(retain_conf, test_conf, seed), forget_conf)


def svc_inputs(evidence: Evidence) -> dict[str, np.ndarray]:
    """The attack's inputs: the true-class confidences of retain, test and forget, its seed."""
    confidence = {
        split: true_class_confidence(evidence.logits_of(split), evidence.labels_of(split))
        for split in ("retain", "test", "forget")
    }
    return {**confidence, "seed": np.array(evidence.seed)}


def svc_attack(inputs: Mapping[str, np.ndarray]) -> Output:
    """MIA-efficacy and whether the attack was constant; as scores, the SVC's decision value
    (higher: member) of the forget and test samples."""
    retain, test, forget = inputs["retain"], inputs["test"], inputs["forget"]
    attack = fit_attack(retain, test, int(inputs["seed"]))
    result = judge(attack, forget)
    scores = [attack.decision_function(np.asarray(x).reshape(-1, 1)) for x in (forget, test)]
    return Output({"mia": result.efficacy, "mia_constant": result.constant}, *scores)


@register_metric(
    "svc",
    "the SVC attack (MIA)",
    columns=("mia", "mia_constant"),
    deferred=Deferred(svc_inputs, svc_attack),
    scores=True,
    tables={
        "core": (Column("mia", "MIA", paired=True),),
        "privacy": (Column("mia", "SVC MIA"),),
    },
)
def svc(evidence: Evidence) -> Output:
    """The SVC attack computed at once (where no training waits for it)."""
    return svc_attack(svc_inputs(evidence))
