"""Exact deletion by sharding (SISA, Bourtoule et al. 2021) against Retrain: what training in
shards costs in accuracy (the price of sharding), and what an exact deletion costs in time
against a full Retrain, each beside what a random request of its size is expected to cost."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from medunlearn.analyses.base import (
    Analysis,
    Study,
    reference_entry,
    register_analysis,
    where,
)
from medunlearn.analyses.plots import colours, finish, grid_figure, panels, seeds_suffix
from medunlearn.analyses.tables import Table, fmt
from medunlearn.metrics.accuracy import class_key
from medunlearn.metrics.registry import Column
from medunlearn.roles import ORIGINAL, RETRAIN

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

PRICE = (
    Column("shards", "S", digits=0),
    Column("slices", "R", digits=0),
    Column("ta", "TA"),
    Column("ba", "BA"),
    Column("fnr_macro", "macro FNR"),
    Column("fnr_worst", "worst-class FNR"),
    Column("ta_diff", "TA − Retrain"),
    Column("ba_diff", "BA − Retrain"),
)
COST = (
    Column("shards", "S", digits=0),
    Column("slices", "R", digits=0),
    Column("shards_retrained", "shards retrained"),
    Column("shards_expected", "expected"),
    Column("slices_retrained", "slices retrained"),
    Column("retrain_share", "work share"),
    Column("retrain_share_expected", "expected"),
    Column("rte_min", "RTE (min)"),
    Column("retrain_min", "Retrain (min)"),
    Column("time_share", "time share"),
    Column("speedup", "speed-up"),
)
# a deletion that took this many times its expected share of the work (plus 5% of a Retrain)
# is flagged: its fixed costs, not its retraining, set its time
SLOW = 2.0


def is_deletion(entry: dict) -> bool:
    """Whether a row (or mean entry) is an exact deletion that recorded what it retrained."""
    return entry.get("shards_retrained") is not None


def class_values(entry: dict, metric: str) -> list[float]:
    """A metric's defined values within each class (`ta_c0`, `ta_c1` ...)."""
    values, c = [], 0
    while (key := class_key(metric, c)) in entry:
        if entry[key] is not None:
            values.append(float(entry[key]))
        c += 1
    return values


def accuracies(entry: dict) -> dict[str, float | None]:
    """TA, balanced accuracy (the mean of the per-class test accuracies), the macro FNR (the
    mean per-class miss rate: 100 - BA) and the worst class's miss rate."""
    per_class = class_values(entry, "ta")
    if not per_class:
        return {"ta": entry.get("ta"), "ba": None, "fnr_macro": None, "fnr_worst": None}
    ba = float(np.mean(per_class))
    return {"ta": entry.get("ta"), "ba": ba, "fnr_macro": 100 - ba,
            "fnr_worst": 100 - float(min(per_class))}  # fmt: skip


def _mean(values: Sequence[float | None]) -> float | None:
    """The mean of the defined values (None where there is none)."""
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def price_lines(study: Study, aug: str) -> list[dict]:
    """Per method of one augmentation mode (the original model, Retrain and each exact
    deletion), its accuracies over the forget sets and seeds, and a deletion's difference to
    Retrain's."""
    lines: dict[str, list[dict]] = {}
    for (mode, _), entries in study.summary.items():
        if mode != aug:
            continue
        retrain = accuracies(reference_entry(entries) or {})
        for entry in entries:
            if entry["role"] in (ORIGINAL, RETRAIN) or is_deletion(entry):
                values = accuracies(entry)
                for key in ("ta", "ba"):
                    both = values[key] is not None and retrain[key] is not None
                    values[f"{key}_diff"] = values[key] - retrain[key] if both else None
                lines.setdefault(entry["method"], []).append({**entry, **values})
    return [
        {"method": method, "role": found[0]["role"],
         **{c.key: _mean([e.get(c.key) for e in found]) for c in PRICE}}
        for method, found in lines.items()
    ]  # fmt: skip


def cost_lines(entries: list[dict]) -> list[dict]:
    """The exact deletions of one scenario with their cost against the scenario's Retrain: its
    run time and the deletion's share of it."""
    retrain = (reference_entry(entries) or {}).get("rte_min")
    lines = []
    for entry in filter(is_deletion, entries):
        share = entry["rte_min"] / retrain if retrain else None
        lines.append({**entry, "retrain_min": retrain, "time_share": share})
    return lines


def _cells(line: dict, columns: Sequence[Column]) -> list[str]:
    """A line's cells: whole numbers for S and R, the columns' digits elsewhere."""
    return [line["method"], *(fmt(line.get(c.key), c.digits) for c in columns)]


def _modes(study: Study) -> list[str]:
    """The augmentation modes that have an exact deletion, in first-seen order."""
    return list(dict.fromkeys(aug for (aug, _), entries in study.summary.items()
                              if any(map(is_deletion, entries))))  # fmt: skip


@register_analysis
class Sharding(Analysis):
    """The price of sharding and the cost of an exact deletion, per augmentation mode."""

    name = "sharding"
    title = "Exact deletion by sharding (SISA)"
    legend = (
        "An exact deletion (‡) retrains only the shards that held a forgotten image, each from "
        "the slice checkpoint before the first slice that held one: its model is the one "
        "trained from the start without the images (its own Retrain, AG 0 to it). Price of "
        "sharding: test accuracy (TA), balanced accuracy (BA, the mean per-class accuracy), "
        "macro FNR (the mean per-class miss rate, 100 - BA) and the worst class's miss rate, "
        "mean over forget sets and seeds, and the difference to the study's Retrain. Cost: the "
        "shards and slices retrained against the number a random request of as many images "
        "(patients where the data has them) is expected to touch; the share of the sharded "
        "training's work (image-epochs) retrained against its expected share; the run time "
        "against a full Retrain's (time share = RTE / Retrain's RTE, speed-up its inverse). "
        "sisa.png draws both against the number of shards."
    )
    figures = ("sisa.png",)

    def applies(self, study: Study) -> bool:
        return any(is_deletion(row) for row in study.rows)

    def tables(self, study: Study) -> list[Table]:
        tables = []
        for aug in _modes(study):
            cells = [_cells(line, PRICE) for line in price_lines(study, aug)]
            tables.append(Table(f"Price of sharding, augmentation {aug}", PRICE, cells))
        for scenario, entries in study.summary.items():
            if lines := cost_lines(entries):
                cells = [_cells(line, COST) for line in lines]
                tables.append(Table(f"Cost of an exact deletion, {where(scenario)}", COST, cells))
        return tables

    def checks(self, study: Study) -> list[tuple[str, list[str]]]:
        found = []
        for scenario, entries in study.summary.items():
            lines = [
                f"{line['method']}: its run time was {fmt(line['time_share'])} of Retrain's for "
                f"{fmt(line['retrain_share_expected'])} of the work expected: its fixed costs "
                "(checking and reading the slice checkpoints), not its retraining, set its time."
                for line in cost_lines(entries)
                if line["time_share"] is not None
                and line["time_share"] > SLOW * line["retrain_share_expected"] + 0.05
            ]
            if lines:
                found.append((where(scenario), lines))
        return found

    def draw(self, study: Study) -> dict[str, Figure]:
        """Per augmentation mode: TA and BA against S, the study's Retrain dashed; and each
        forget set's time share against S, its expected work share dotted."""
        modes = _modes(study)
        figure = grid_figure(len(modes), 2, 4.6, 3.6)
        grid = panels(figure, len(modes), 2)
        for (price, cost), aug in zip(grid, modes, strict=True):
            _draw_price(price, price_lines(study, aug), aug)
            _draw_cost(cost, study, aug)
        title = f"{study.title}: exact deletion by sharding{seeds_suffix(study.n_seeds, 'mean')}"
        return {"sisa.png": finish(figure, list(grid.flat), 6, title)}


def _shards_axis(axes: Axes, shards: Sequence[float], unit: str) -> None:
    """A log-2 x axis of the shard counts, the labels, a light grid."""
    axes.set_xscale("log", base=2)
    axes.set_xticks(list(shards), [f"{s:g}" for s in shards])
    axes.minorticks_off()
    axes.set_xlabel("shards S")
    axes.set_ylabel(unit)
    axes.grid(alpha=0.3)


def _draw_price(axes: Axes, lines: list[dict], aug: str) -> None:
    """TA and BA of each deletion against its shards; Retrain's as dashed lines."""
    deletions = sorted((line for line in lines if line.get("shards") is not None),
                       key=lambda line: line["shards"])  # fmt: skip
    retrain = next((line for line in lines if line["role"] == RETRAIN), None)
    for key, colour in (("ta", "tab:blue"), ("ba", "tab:orange")):
        points = [(line["shards"], line[key]) for line in deletions if line[key] is not None]
        if points:
            axes.plot(*zip(*points, strict=True), marker="o", color=colour, label=key.upper())
        if retrain is not None and retrain[key] is not None:
            axes.axhline(retrain[key], color=colour, linestyle="--", linewidth=1,
                         label=f"{key.upper()}, Retrain")  # fmt: skip
    _shards_axis(axes, sorted({line["shards"] for line in deletions}), "percent")
    axes.set_title(f"Price of sharding, augmentation {aug}", fontsize=9)


def _draw_cost(axes: Axes, study: Study, aug: str) -> None:
    """Each forget set's time share against the shards, its expected work share dotted."""
    series = {forget: sorted(cost_lines(entries), key=lambda line: line["shards"])
              for (mode, forget), entries in study.summary.items() if mode == aug}  # fmt: skip
    palette = colours(list(series))
    shards: set[float] = set()
    for forget, lines in series.items():
        measured = [(line["shards"], line["time_share"]) for line in lines
                    if line["time_share"] is not None]  # fmt: skip
        expected = [(line["shards"], line["retrain_share_expected"]) for line in lines]
        shards |= {s for s, _ in expected}
        if measured:
            axes.plot(*zip(*measured, strict=True), marker="o", color=palette[forget],
                      label=forget)  # fmt: skip
        if expected:
            axes.plot(*zip(*expected, strict=True), linestyle=":", color=palette[forget],
                      label=f"{forget}, expected work")  # fmt: skip
    _shards_axis(axes, sorted(shards), "share of a full Retrain")
    axes.set_ylim(bottom=0)
    axes.set_title(f"Cost of a deletion, augmentation {aug}", fontsize=9)
