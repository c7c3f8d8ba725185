"""What every analysis shares: the study it reads, the one grouping of rows by augmentation,
forget set and method (with means over seeds), and the registry of analyses.

An analysis is one file and one `@register_analysis` on its class: it says when it applies,
gives its tables, its figures and its legend (how to read them), and may add sanity checks.
The report writes the analyses that apply, in registration order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from medunlearn.analyses.tables import Table
from medunlearn.config import ForgetConfig
from medunlearn.metrics.stats import summarise
from medunlearn.roles import ORIGINAL, RETRAIN, row_role

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# (augmentation mode, forget set): the unit every table and figure panel is drawn for
Scenario = tuple[str, str]
# the keys that identify a row rather than measure it
IDENTITY = ("method", "role", "aug", "forget", "seed")


def scenario_of(row: dict) -> Scenario:
    """The augmentation mode and forget set of a row."""
    return str(row.get("aug", "")), str(row.get("forget", ""))


def groups(rows: Sequence[dict]) -> dict[Scenario, dict[str, list[dict]]]:
    """(augmentation, forget set) -> method -> its rows (one per seed), in first-seen order:
    the one grouping of every table and figure, so no two augmentation modes are ever pooled."""
    found: dict[Scenario, dict[str, list[dict]]] = {}
    for row in rows:
        found.setdefault(scenario_of(row), {}).setdefault(row["method"], []).append(row)
    return found


def numbers(rows: Sequence[dict], key: str) -> list[float]:
    """The defined numeric values of `key` across rows."""
    return [
        float(r[key])
        for r in rows
        if isinstance(r.get(key), int | float) and not isinstance(r[key], bool)
    ]


def mean_entry(members: Sequence[dict]) -> dict:
    """One method's rows of one scenario as the mean and std over seeds of every number."""
    first = members[0]
    entry: dict = {key: first.get(key) for key in IDENTITY if key != "seed"}
    entry["role"] = row_role(first)
    entry["n_seeds"] = len(members)
    if first.get("exact"):
        entry["exact"] = True
    for key in first:
        values = numbers(members, key)
        if key in IDENTITY or not values:
            continue
        stats = summarise(np.array(values))
        entry[key], entry[f"{key}_std"] = stats.mean, stats.std or 0.0
    return entry


def by_role(rows: Sequence[dict], role: str) -> dict[int, dict]:
    """The rows of one role (the original model's or Retrain's) by seed."""
    return {r["seed"]: r for r in rows if row_role(r) == role}


def mean_paired_gap(
    rows: Sequence[dict], references: dict[int, dict], key: str, absolute: bool = True
) -> float | None:
    """The mean over seeds of row[key] - reference[key] (its absolute value, as AG takes it,
    unless `absolute` is False), each row against the reference row of its own seed; None where
    no seed has both."""
    pairs = [(r[key], references[r["seed"]][key]) for r in rows
             if r.get(key) is not None and references.get(r["seed"], {}).get(key) is not None]  # fmt: skip
    if not pairs:
        return None
    differences = np.array([value - reference for value, reference in pairs], dtype=float)
    return summarise(np.abs(differences) if absolute else differences).mean


@dataclass
class Study:
    """What the analyses read: a run's rows, its title and forget specs, and for the tuning
    overhead the summaries of its searches."""

    rows: list[dict]
    title: str = "results"
    specs: list[ForgetConfig] = field(default_factory=list)
    tunings: list[dict] = field(default_factory=list)

    @cached_property
    def groups(self) -> dict[Scenario, dict[str, list[dict]]]:
        """The rows by scenario and method (see `groups`)."""
        return groups(self.rows)

    @cached_property
    def summary(self) -> dict[Scenario, list[dict]]:
        """Per scenario, each method's mean entry over seeds, in first-seen order."""
        return {
            scenario: [mean_entry(members) for members in methods.values()]
            for scenario, methods in self.groups.items()
        }

    def scenario_rows(self, scenario: Scenario) -> list[dict]:
        """Every row of one scenario, in first-seen order."""
        return [row for members in self.groups[scenario].values() for row in members]

    @property
    def n_seeds(self) -> int:
        """How many seeds the rows span."""
        return len({row["seed"] for row in self.rows})


def reference_entry(entries: Sequence[dict], role: str = RETRAIN) -> dict | None:
    """The mean entry of a reference row (Retrain by default) among a scenario's entries."""
    return next((e for e in entries if e["role"] == role), None)


def no_better_than_nothing(entries: Sequence[dict]) -> list[dict]:
    """The methods whose mean AG is not below the original model's own (doing nothing); an
    exact deletion (SISA) is not one: its distance to Retrain is its training's, not
    forgetting left undone."""
    original = reference_entry(entries, ORIGINAL)
    if original is None or original.get("ag") is None:
        return []
    return [
        e for e in entries
        if e["role"] not in (ORIGINAL, RETRAIN) and e.get("ag") is not None
        and e["ag"] >= original["ag"] and not e.get("exact")
    ]  # fmt: skip


def where(scenario: Scenario) -> str:
    """'forget set X, augmentation Y': how tables and checks name a scenario."""
    aug, forget = scenario
    return f"forget set {forget}, augmentation {aug}"


class Analysis:
    """One analysis of a study: when it applies, its tables, figures, legend and checks."""

    name: ClassVar[str]
    title: ClassVar[str]
    legend: ClassVar[str]
    figures: ClassVar[tuple[str, ...]] = ()

    def applies(self, study: Study) -> bool:
        """Whether the study has what this analysis needs."""
        raise NotImplementedError

    def tables(self, study: Study) -> list[Table]:
        """Its tables."""
        raise NotImplementedError

    def draw(self, study: Study) -> dict[str, Figure]:
        """Its figures, by the file name each is written to (one per name in `figures`)."""
        return {}

    def checks(self, study: Study) -> list[tuple[str, list[str]]]:
        """Sanity checks per scenario: (where, the lines), nothing where all is well."""
        return []


ANALYSES: dict[str, Analysis] = {}


def register_analysis(cls: type[Analysis]) -> type[Analysis]:
    """Register an analysis class (one instance) under its `name`."""
    if cls.name in ANALYSES:
        raise ValueError(f"an analysis named {cls.name!r} is registered already")
    ANALYSES[cls.name] = cls()
    return cls


def registered() -> dict[str, Analysis]:
    """Every registered analysis in report order: the built-in ones in the catalog's order
    (imported on first use), then any other in registration order."""
    from medunlearn.analyses.catalog import MODULES

    order = [module.__name__ for module in MODULES]

    def rank(analysis: Analysis) -> int:
        module = type(analysis).__module__
        return order.index(module) if module in order else len(order)

    return {a.name: a for a in sorted(ANALYSES.values(), key=rank)}
