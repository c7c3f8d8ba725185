"""Membership inference (MIA-efficacy of SalUn): an SVC on the true-class confidence, its
inputs saved while an attack is pending, and the attacks fitted in threads."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from sklearn.svm import SVC

from medunlearn.engine import Engine, usable_cores
from medunlearn.store import atomic_write

# most MIA attacks fitted at once (each holds up to libsvm's 200 MB kernel cache)
MIA_WORKERS = 4


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


def mia_attack(
    retain_conf: np.ndarray, test_conf: np.ndarray, forget_conf: np.ndarray, seed: int = 0
) -> MiaResult:
    """Percent of forget samples the attack (trained on retain vs test) calls non-members."""
    if len(forget_conf) == 0:
        return MiaResult(0.0, False)
    attack = fit_attack(retain_conf, test_conf, seed)
    predicted_member = attack.predict(np.asarray(forget_conf).reshape(-1, 1))
    constant = len(np.unique(attack.predict(PROBE))) == 1
    return MiaResult(100.0 * float(1.0 - predicted_member.mean()), constant)


def mia_efficacy(
    retain_conf: np.ndarray, test_conf: np.ndarray, forget_conf: np.ndarray, seed: int = 0
) -> float:
    """Percent of forget samples the attack (trained on retain vs test) calls non-members."""
    return mia_attack(retain_conf, test_conf, forget_conf, seed).efficacy


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

    def attack(self) -> MiaResult:
        """The model's MIA-efficacy (percent), and whether its attack was constant."""
        return mia_attack(self.retain, self.test, self.forget, self.seed)

    def efficacy(self) -> float:
        """The model's MIA-efficacy (percent)."""
        return self.attack().efficacy


def timed_attack(inputs: MiaInputs) -> tuple[MiaResult, float]:
    """The attack's result and the seconds it took."""
    started = time.perf_counter()
    return inputs.attack(), time.perf_counter() - started


def save_inputs(path: Path, inputs: MiaInputs) -> None:
    """Write a pending attack's inputs (one npz array per field), atomically."""

    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            np.savez(handle, **dataclasses.asdict(inputs))

    atomic_write(path, write)


def load_inputs(path: Path) -> MiaInputs:
    """Read back the attack inputs `save_inputs` wrote."""
    with np.load(path, allow_pickle=False) as saved:
        fields = {field.name: saved[field.name] for field in dataclasses.fields(MiaInputs)}
    return MiaInputs(**{**fields, "seed": int(fields["seed"])})


# what a finished attack hands its result to: (its result, seconds of the attack)
AttackDone = Callable[[MiaResult, float], None]


def attacks_in_background(engine: Engine) -> bool:
    """Whether attacks may run while methods train: yes when the device is not the CPU."""
    return engine.device.type != "cpu"


class PendingAttacks:
    """MIA attacks on saved inputs, fitted in threads (libsvm releases the GIL).

    On a CPU they wait for `finish`, after the trainings: an SVC beside a training would take a
    core from it and inflate its RTE; together they run 1.8-1.9x faster on 2 cores. When a GPU
    trains, the CPU is free, so each attack starts as soon as it is added and fits while the
    next method trains. Each result goes to its `done` callback, then the inputs are removed;
    leaving the block (a failure, a stop) cancels the attacks not started.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.background = attacks_in_background(engine)
        workers = min(torch.get_num_threads(), usable_cores(), MIA_WORKERS)
        self.pool = ThreadPoolExecutor(workers)
        self.waiting: list[tuple[Path, AttackDone]] = []
        self.futures: list[Future] = []

    def __enter__(self) -> PendingAttacks:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.pool.shutdown(cancel_futures=True)

    def add(self, inputs_path: Path, done: AttackDone) -> None:
        """An attack on the inputs saved at `inputs_path`: started now (GPU) or at `finish`."""
        self.waiting.append((inputs_path, done))
        if self.background:
            for future in self.futures:  # an attack that already failed stops the run now
                if future.done() and future.exception():
                    raise future.exception()
            self._start()

    def _start(self) -> None:
        for inputs_path, done in self.waiting:
            self.futures.append(self.pool.submit(_attack, inputs_path, done))
        self.waiting.clear()

    def finish(self) -> None:
        """Run the attacks still waiting and return once every result is handed over."""
        self._start()
        with self.engine.progress.task("membership inference", len(self.futures)) as task:
            for future in as_completed(self.futures):
                future.result()
                task.advance()


def _attack(inputs_path: Path, done: AttackDone) -> None:
    """Fit one attack on its saved inputs, hand over the result, then remove the inputs."""
    done(*timed_attack(load_inputs(inputs_path)))
    inputs_path.unlink(missing_ok=True)
