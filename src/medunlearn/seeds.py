"""The separate seeds of one experiment seed: each random step of a run draws from its own."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass


def derived_seed(seed: int, role: str) -> int:
    """A seed for one role, fixed by the experiment seed and the role's name (31 bits)."""
    digest = hashlib.sha256(f"{role}:{seed}".encode()).digest()
    return int.from_bytes(digest[:4], "big") >> 1


@dataclass(frozen=True)
class Seeds:
    """What each random step of one experiment seed uses.

    The original model trains with the experiment seed itself and the forget set is drawn with
    it (so `seed: 0` means what it always meant); unlearning, Retrain, the reference bank and
    the attacks' sampling each get a seed of their own, so no two of them share an
    initialisation or a data order (a Retrain seeded like the original would start from the
    original's initial weights, correlating the two)."""

    seed: int

    @property
    def train(self) -> int:
        """The original model's initialisation and data order."""
        return self.seed

    @property
    def forget(self) -> int:
        """The forget set's selection."""
        return self.seed

    @property
    def unlearn(self) -> int:
        """Every unlearning method's data order and random draws."""
        return derived_seed(self.seed, "unlearn")

    @property
    def retrain(self) -> int:
        """Retrain's initialisation and data order."""
        return derived_seed(self.seed, "retrain")

    @property
    def attack(self) -> int:
        """The attacks' sampling (balancing, bootstrap)."""
        return derived_seed(self.seed, "attack")

    def bank(self, index: int) -> int:
        """The initialisation and data order of reference model `index` of the bank."""
        return derived_seed(self.seed, f"bank-{index}")

    def repeat(self, index: int) -> int:
        """The seed of unlearning run `index` of the repeats behind the forgetting score."""
        return derived_seed(self.seed, f"repeat-{index}")

    def record(self) -> dict[str, int]:
        """The seeds a result row records."""
        return {
            "train_seed": self.train,
            "forget_seed": self.forget,
            "unlearn_seed": self.unlearn,
            "retrain_seed": self.retrain,
            "attack_seed": self.attack,
        }
