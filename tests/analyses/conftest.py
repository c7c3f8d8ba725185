"""Synthetic studies for the analyses: rows as a study writes them (each with its role), built
so that every registered analysis applies, and an augmentation study whose two modes differ
clearly in every value the figures draw."""

from __future__ import annotations

import pytest

from medunlearn.analyses.base import Study
from medunlearn.config import ForgetConfig

MODES = ("crop-flip", "none")
SPECS = [
    ForgetConfig("random", 0.1),
    ForgetConfig("random", 0.5),
    ForgetConfig("easy", 0.1),
    ForgetConfig("hard", 0.1),
]
SEEDS = (0, 1)
METHODS = {"original": "original", "retrain": "retrain", "ft": "method", "salun": "method"}
# the rich study has an exact deletion too (SISA's rows record what it retrained)
RICH_METHODS = {**METHODS, "sisa": "method"}
N_CLASSES = 3
FPR = [0.0, 0.001, 0.01, 0.1, 0.5, 1.0]
EDGES = [0.0, 0.25, 0.5, 0.75, 1.0]


def attack_columns(name: str, auc: float) -> dict:
    """An attack's ROC columns and AUC interval."""
    return {f"{name}_auc": auc, f"{name}_tpr1": auc / 10, f"{name}_tpr01": auc / 100,
            f"{name}_auc_low": auc - 0.05, f"{name}_auc_high": auc + 0.05}  # fmt: skip


def curve(power: float) -> dict[str, list[float]]:
    """A thinned ROC: TPR = FPR ** power (above chance for a power below 1)."""
    return {"fpr": FPR, "tpr": [f**power for f in FPR]}


def histogram(shift: int) -> dict[str, list]:
    """Score counts of forget and test samples over shared bins."""
    return {"edges": EDGES, "forget": [1 + shift, 2, 3, 4], "test": [4, 3, 2, 1 + shift]}


def rich_row(aug: str, forget: str, seed: int, method: str, level: float) -> dict:
    """One row with every kind of column an analysis reads: core and clinical metrics, attacks
    with their curves and histograms, per-class accuracies."""
    i = list(RICH_METHODS).index(method)
    value = level + i + seed
    row = {"method": method, "role": RICH_METHODS[method], "aug": aug, "forget": forget,
           "seed": seed, "ua": value, "ra": 99.0 - i, "ta": 90.0 - value / 10, "mia": value,
           "ag": 0.0 if method == "retrain" else value / 4, "rte_min": 1.0 + i,
           "ubac": value, "rbac": 98.0, "tbac": 88.0, "fnr": value, "risk_1": value / 100,
           "risk_2": value / 20}  # fmt: skip
    row |= attack_columns("pop_phi", 0.5 + value / 100) | attack_columns("lira", 0.6)
    row["curves"] = {"pop_phi": curve(0.5 + i / 10), "lira": curve(0.7)}
    row["histograms"] = {"pop_phi": histogram(i), "lira": histogram(seed)}
    row |= {f"ua_c{c}": value * c for c in range(N_CLASSES)}
    row |= {f"ta_c{c}": 90.0 - value - c for c in range(N_CLASSES)}
    if method == "sisa":
        row |= deletion_columns(shards=2, share=0.1 * (1 + seed))
    return row


def deletion_columns(shards: int, share: float) -> dict:
    """What an exact deletion's row records: its shards and slices, what it retrained and what
    a random request of its size is expected to."""
    return {"shards": shards, "slices": 4, "shards_retrained": 1, "slices_retrained": 3,
            "shards_expected": 1.0, "retrain_share": share, "retrain_share_expected": share,
            "exact": True}  # fmt: skip


def tuning_summary(method: str, rte: float, tune_min: float) -> dict:
    """What `medunlearn tune` records of one method: its cost and held-out entries."""
    held_out = [
        {"method": "retrain", "role": "retrain", "rte_min": 10.0, "ag": 0.0},
        {"method": f"{method}-untuned", "role": "method", "rte_min": rte, "ag": 3.0},
        {"method": f"{method}-tuned", "role": "method", "rte_min": rte, "ag": 1.0},
    ]
    return {"method": method, "cost": {"tune_min": tune_min, "trials": 8}, "held_out": held_out}


def step_row(method: str, step: int, ta: float, sets: dict[int, tuple[float, float]]) -> dict:
    """A sequential study's row: its role, request number, TA, and per request j its accuracy
    and phi attack AUC (the AUC's interval +-0.05), as `deletion.sequential` writes it."""
    role = METHODS.get(method, "method")
    entries = [{"request": j, "acc": acc, "auc": auc, "auc_low": auc - 0.05,
                "auc_high": auc + 0.05} for j, (acc, auc) in sorted(sets.items())]  # fmt: skip
    return {"method": method, "role": role, "aug": "crop-flip", "forget": f"request-{step}",
            "seed": 0, "step": step, "ta": ta, "ua": 100.0 - ta, "miss_rate": 100.0 - ta,
            "miss_rate_kind": "macro", "debt_images": 10 * step if role == "method" else 0,
            "forgotten": 10 * step, "rte_min": 0.1, "drift_bound": 1.0,
            "reversal_margin": 0.1, "sets": entries}  # fmt: skip


def sequential_study_rows(n_steps: int = 4) -> list[dict]:
    """The original at request 0, two methods over `n_steps` requests (ft drifting, salun's
    first request's images coming back), the exact Retrain at every second request."""
    unseen = {j: (80.0, 0.5) for j in range(1, n_steps + 1)}
    rows = [step_row("original", 0, 90.0, {j: (95.0, 0.6) for j in unseen})]
    for step in range(1, n_steps + 1):
        seen = {j: unseen[j] for j in range(1, step + 1)}
        rows.append(step_row("ft", step, 90.0 - 0.6 * step, seen))
        back = {j: (99.0, 0.7) if j == 1 and step >= 3 else value for j, value in seen.items()}
        rows.append(step_row("salun", step, 90.0, back))
        if step % 2 == 0:
            rows.append(step_row("retrain", step, 90.0, seen))
    return rows


@pytest.fixture
def rich_study() -> Study:
    """Two augmentation modes, random forget sets of two sizes and easy / hard ones, two seeds,
    a binary task's clinical columns, attacks with curves and histograms, per-class columns,
    the summaries of two tunings, and a sequential study's rows: every registered analysis
    applies."""
    rows = [
        rich_row(aug, spec.display_name, seed, method, level=5.0 * a + s)
        for a, aug in enumerate(MODES)
        for s, spec in enumerate(SPECS)
        for seed in SEEDS
        for method in RICH_METHODS
    ]
    rows += sequential_study_rows()
    tunings = [tuning_summary("salun", 2.0, 30.0), tuning_summary("rl", 1.0, 12.0)]
    return Study(rows, "synthetic", list(SPECS), tunings)


def two_mode_row(aug: str, method: str, seed: int) -> dict:
    """A row of one augmentation mode of the same forget set: every value the figures draw is
    far apart between the modes ('none' 40 points above 'crop-flip')."""
    i = list(METHODS).index(method)
    level = {"crop-flip": 0.0, "none": 40.0}[aug] + 3 * i + seed
    power = {"crop-flip": 0.3, "none": 0.9}[aug] + 0.01 * i + 0.05 * seed
    row = {"method": method, "role": METHODS[method], "aug": aug, "forget": "random-10pct",
           "seed": seed, "fnr": level, "risk_1": level / 100, "risk_2": level / 20,
           "tbac": 90.0, "pop_phi_auc": 0.5 + power / 10}  # fmt: skip
    row["curves"] = {"pop_phi": {"fpr": FPR, "tpr": [f**power for f in FPR]}}
    shift = {"crop-flip": 0, "none": 20}[aug]
    row["histograms"] = {"pop_phi": histogram(shift + i)}
    return row


@pytest.fixture
def two_modes() -> Study:
    """An augmentation study of one forget set: two modes, the same methods, two seeds, values
    clearly different per mode."""
    rows = [two_mode_row(aug, method, seed) for aug in MODES for seed in SEEDS
            for method in METHODS]  # fmt: skip
    return Study(rows, "two modes")


@pytest.fixture
def sequential_rows() -> list[dict]:
    """A sequential study's rows over four requests (see `sequential_study_rows`)."""
    return sequential_study_rows()


@pytest.fixture
def make_step_row():
    """The factory of one sequential study row (see `step_row`)."""
    return step_row
