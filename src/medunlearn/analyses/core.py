"""The core table of the published studies: UA, RA, TA and MIA with each gap to Retrain in
parentheses, AG and run time; over several seeds, AG's interval and each metric's paired
difference to Retrain."""

from __future__ import annotations

import numpy as np

from medunlearn.analyses.base import (
    Analysis,
    Study,
    by_role,
    no_better_than_nothing,
    reference_entry,
    register_analysis,
    where,
)
from medunlearn.analyses.tables import NA, Table, cell, fmt
from medunlearn.metrics.registry import Column, paired_columns, table_columns
from medunlearn.metrics.stats import paired_difference, summarise
from medunlearn.roles import RETRAIN, row_role

TAIL = (Column("ag", "AG", gap=False), Column("rte_min", "RTE (min)", gap=False))


def core_columns() -> list[Column]:
    """The registry's core columns (UA, RA, TA, MIA), then AG and the run time."""
    return [*table_columns("core"), *TAIL]


def method_cells(entries: list[dict], columns: list[Column]) -> list[list[str]]:
    """One line per method of a scenario, a method no closer to Retrain than the original
    model marked with a dagger, an exact deletion with a double dagger."""
    reference = reference_entry(entries)
    flagged = {e["method"] for e in no_better_than_nothing(entries)}

    def name(entry: dict) -> str:
        mark = " †" if entry["method"] in flagged else " ‡" if entry.get("exact") else ""
        return entry["method"] + mark

    return [[name(e), *(cell(e, reference, c) for c in columns)] for e in entries]


def _interval(values: list[float], digits: int = 2) -> str:
    """'mean [low, high]', or the mean alone where one value gives no interval."""
    summary = summarise(np.array(values))
    if summary.ci_low is None:
        return fmt(summary.mean, digits)
    return f"{fmt(summary.mean, digits)} [{fmt(summary.ci_low, digits)}, {fmt(summary.ci_high, digits)}]"


def _paired_cell(rows: list[dict], retrain: dict[int, dict], column: Column) -> str:
    """method - Retrain over matched seeds with its 95% interval; '≈' where it covers 0."""
    key = column.key
    pairs = [(r[key], retrain[r["seed"]][key]) for r in rows
             if r.get(key) is not None and retrain.get(r["seed"], {}).get(key) is not None]  # fmt: skip
    if not pairs:
        return NA
    method, reference = zip(*pairs, strict=True)
    difference = paired_difference(np.array(method), np.array(reference))
    mean, digits = difference.difference, column.digits
    text = fmt(mean.mean, digits, signed=True)
    if mean.ci_low is not None:
        text += f" [{fmt(mean.ci_low, digits, True)}, {fmt(mean.ci_high, digits, True)}]"
    return text + (" ≈" if difference.within_noise else "")


def statistics_table(title: str, rows: list[dict]) -> Table:
    """Per method: AG's mean with its 95% t interval over seeds, and each paired column's
    difference to Retrain (same seeds) with its interval, '≈' marking one within noise."""
    retrain = by_role(rows, RETRAIN)
    paired = [c for c in paired_columns() if any(r.get(c.key) is not None for r in rows)]
    columns = [Column("ag", "AG [95% CI]"), *(Column(c.key, f"{c.header} − Retrain", c.digits)
                                              for c in paired)]  # fmt: skip
    cells = []
    for method in dict.fromkeys(r["method"] for r in rows if row_role(r) != RETRAIN):
        members = [r for r in rows if r["method"] == method]
        ag = [r["ag"] for r in members if r.get("ag") is not None]
        line = [method, _interval(ag) if ag else NA]
        cells.append(line + [_paired_cell(members, retrain, c) for c in paired])
    return Table(title, columns, cells)


@register_analysis
class Core(Analysis):
    """The unlearning table of every scenario, and its statistics over seeds."""

    name = "core"
    title = "Unlearning against Retrain"
    legend = (
        "Metrics in percent (mean±std over seeds where several ran); the gap to Retrain "
        "(|method - Retrain|) in parentheses; AG = mean gap over UA, RA, TA, MIA; RTE in "
        "minutes (for `original`, its training time). Over-seeds tables: AG's 95% t interval, "
        "and each metric's paired difference to Retrain over the same seeds with its interval; "
        "'≈' marks a difference within noise. † marks a method no closer to Retrain than the "
        "untouched original. ‡ marks an exact deletion (SISA): the model trained from the start "
        "without the forget set, in shards, is its result (its own Retrain, AG 0 to it by "
        "construction); its gaps to the study's Retrain are those of its training (its shards, "
        "its seed), not forgetting left undone."
    )

    def applies(self, study: Study) -> bool:
        return bool(study.rows)

    def tables(self, study: Study) -> list[Table]:
        columns, tables = core_columns(), []
        for scenario, entries in study.summary.items():
            tables.append(Table(where(scenario), columns, method_cells(entries, columns)))
            if any(e["n_seeds"] > 1 for e in entries):
                title = f"{where(scenario)} — over seeds"
                tables.append(statistics_table(title, study.scenario_rows(scenario)))
        return tables

    def checks(self, study: Study) -> list[tuple[str, list[str]]]:
        found = []
        for scenario, entries in study.summary.items():
            original = reference_entry(entries, "original") or {}
            lines = [
                f"† {e['method']}: AG {fmt(e['ag'])} is not below the original model's own "
                f"{fmt(original.get('ag'))}: no closer to Retrain than doing nothing."
                for e in no_better_than_nothing(entries)
            ]
            if lines:
                found.append((where(scenario), lines))
        return found
