"""The registry of metrics and attacks: each declares its name, what it needs, its columns, its
label for tables and figures, and how the report treats it; nothing else lists their names.

A metric is one file and one `@register_metric(...)` on its function, which reads an
`Evidence` (a model's logits per split and, where declared, a bank of reference models, the
method's repeated runs, or the model itself) and returns an `Output`: its columns and, for an
attack that scores examples, each member's and non-member's score. For such an attack
(`roc=True`) the evaluator adds the ROC columns `<name>_auc`, `<name>_tpr1` and `<name>_tpr01`,
its thinned ROC and score histogram (`curve=True`, for the figures), and on the reference rows
the AUC's bootstrap interval (`checked=True`, read by the report's sanity checks).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from medunlearn.metrics.evidence import Evidence

# the splits a metric may read: forget and retain rows of the training split, test, validation
SPLITS = ("forget", "retain", "test", "val")
ROC_SUFFIXES = ("auc", "tpr1", "tpr01")
INTERVAL_SUFFIXES = ("auc_low", "auc_high")


@dataclass(frozen=True)
class Column:
    """A table column: the row key, its header, its decimals (attack AUCs and TPRs are
    fractions, so three), whether its gap to Retrain is shown, and whether the over-seeds table
    gives its paired difference to Retrain."""

    key: str
    header: str
    digits: int = 2
    gap: bool = True
    paired: bool = False


@dataclass(frozen=True)
class Needs:
    """What a metric reads: its `splits`, a reference `bank` (LiRA, RMIA), the method's
    `repeats` (the two-bank tests), the `model` itself (a metric that trains on it), a `binary`
    task with a positive class; and the evaluation `option` that turns it on (opt-in metrics)."""

    splits: frozenset[str] = frozenset({"forget", "retain", "test"})
    bank: bool = False
    repeats: bool = False
    model: bool = False
    binary: bool = False
    option: str | None = None

    def __post_init__(self) -> None:
        if unknown := set(self.splits) - set(SPLITS):
            raise ValueError(f"unknown split(s) {sorted(unknown)}; splits are {SPLITS}")


@dataclass
class Output:
    """What a metric gives for one model: its columns and, for an attack that scores
    examples, the scores of the members (higher: more likely a member) and non-members."""

    columns: dict[str, Any]
    members: np.ndarray | None = None
    nonmembers: np.ndarray | None = None


@dataclass(frozen=True)
class Deferred:
    """A metric computed after a forget set's trainings, on saved inputs (the SVC attack:
    fitted in threads, never beside a training whose run time it would inflate): `prepare`
    reads the evidence into arrays, `finish` computes the output from them."""

    prepare: Callable[[Evidence], dict[str, np.ndarray]]
    finish: Callable[[Mapping[str, np.ndarray]], Output]


@dataclass(frozen=True)
class Metric:
    """A registered metric or attack (see the module docstring).

    `columns` are the row keys it returns (a function of the number of classes where it has one
    per class), `tables` the columns it shows in each analysis table by section ("core",
    "clinical", "privacy"), `strength` orders the attacks drawn in the figures (strongest
    first), `scores` says that its output scores members and non-members without ROC columns
    (the SVC attack, U-LiRA), `against_retrain` derives columns of a row from Retrain's row of its forget set
    (e.g. the anamnesis index, listed in `derived`), `timing` names its columns that are
    seconds, and `separation` reads, for a test without per-example scores, how well it tells
    its two groups apart on the AUC's scale (0.5: not at all, 1: perfectly)."""

    name: str
    label: str
    compute: Callable[[Evidence], Output]
    needs: Needs
    columns: tuple[str, ...] | Callable[[int], tuple[str, ...]] = ()
    tables: Mapping[str, tuple[Column, ...]] = field(default_factory=dict)
    roc: bool = False
    scores: bool = False
    curve: bool = False
    checked: bool = False
    strength: int = 0
    deferred: Deferred | None = None
    against_retrain: Callable[[Mapping, Mapping], dict[str, Any]] | None = None
    derived: tuple[str, ...] = ()
    timing: tuple[str, ...] = ()
    separation: Callable[[Mapping], float] | None = None

    def declared(self, n_classes: int, intervals: bool = False) -> set[str]:
        """Every column this metric writes into a row for a task of `n_classes` (with the AUC
        intervals of a checked attack when `intervals`)."""
        own = self.columns(n_classes) if callable(self.columns) else self.columns
        keys = set(own)
        if self.roc:
            keys |= {f"{self.name}_{suffix}" for suffix in ROC_SUFFIXES}
        if self.checked and intervals:
            keys |= {f"{self.name}_{suffix}" for suffix in INTERVAL_SUFFIXES}
        return keys

    @property
    def scored(self) -> bool:
        """Whether its output scores members and non-members (its AUC is defined): every
        attack with ROC columns, and those that say so (`scores`)."""
        return self.roc or self.scores

    @property
    def attack(self) -> bool:
        """Whether it tells two groups apart (members and non-members, or unlearned and
        retrained models): scored, or with a `separation`."""
        return self.scored or self.separation is not None


METRICS: dict[str, Metric] = {}


def register_metric(name: str, label: str, needs: Needs = Needs(), **spec: Any):
    """Register the decorated `compute(evidence) -> Output` as metric `name` (see `Metric`)."""

    def add(compute: Callable[[Evidence], Output]) -> Callable[[Evidence], Output]:
        if name in METRICS:
            raise ValueError(f"a metric named {name!r} is registered already")
        METRICS[name] = Metric(name, label, compute, needs, **spec)
        return compute

    return add


def registered() -> dict[str, Metric]:
    """Every registered metric: the built-in ones in the catalog's order (imported, and so
    registered, on first use, so that low modules may import a metric's helpers freely), then
    any other in registration order."""
    from medunlearn.metrics.catalog import MODULES

    order = [module.__name__ for module in MODULES]

    def rank(metric: Metric) -> int:
        module = metric.compute.__module__
        return order.index(module) if module in order else len(order)

    return {m.name: m for m in sorted(METRICS.values(), key=rank)}


def get_metric(name: str) -> Metric:
    """The metric registered under `name`, or an error listing the known ones."""
    metrics = registered()
    if name not in metrics:
        raise KeyError(f"unknown metric {name!r}; known metrics: {sorted(metrics)}")
    return metrics[name]


def table_columns(section: str) -> list[Column]:
    """The columns of an analysis table, in registration order of the metrics showing them."""
    return [c for metric in registered().values() for c in metric.tables.get(section, ())]


def paired_columns() -> list[Column]:
    """The columns whose paired difference to Retrain the over-seeds table gives."""
    seen: dict[str, Column] = {}
    for metric in registered().values():
        for columns in metric.tables.values():
            for column in columns:
                if column.paired:
                    seen.setdefault(column.key, column)
    return list(seen.values())


def checked_attacks() -> list[Metric]:
    """The attacks whose AUC interval the report's sanity checks read."""
    return [metric for metric in registered().values() if metric.checked]


def drawn_attacks() -> list[Metric]:
    """The attacks whose ROC and score histogram the figures draw, strongest first."""
    return sorted((m for m in registered().values() if m.curve), key=lambda m: -m.strength)


def timing_columns() -> set[str]:
    """Every metric's columns that are seconds (they differ between two runs of one config)."""
    return {key for metric in registered().values() for key in metric.timing}
