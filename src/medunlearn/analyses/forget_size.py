"""Generalisation against forget size (Nasirigerdeh et al. 2024): each method's TA minus the
original model's and minus Retrain's at each random forget fraction."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from medunlearn.analyses.base import (
    Analysis,
    Study,
    by_role,
    mean_paired_gap,
    register_analysis,
)
from medunlearn.analyses.plots import colours, finish, grid_figure, panels, seeds_suffix
from medunlearn.analyses.tables import Table, fmt
from medunlearn.metrics.registry import Column
from medunlearn.roles import ORIGINAL, RETRAIN, row_role

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class SizeGaps:
    """For one augmentation mode's random forget sets: per method, TA(method) - TA(original
    model) and TA(method) - TA(Retrain) at each forget fraction, mean over seeds (None where
    undefined)."""

    aug: str
    fractions: list[float]
    to_original: dict[str, list[float | None]]
    to_retrain: dict[str, list[float | None]]


def forget_size_gaps(study: Study) -> list[SizeGaps]:
    """The TA differences of every augmentation mode, when the config has random forget sets of
    two or more fractions (else none)."""
    sizes = sorted((s.fraction, s.display_name) for s in study.specs if s.mode == "random")
    if len({fraction for fraction, _ in sizes}) < 2:
        return []
    found = []
    for aug in dict.fromkeys(aug for aug, _ in study.groups):
        to_original: dict[str, list[float | None]] = {}
        to_retrain: dict[str, list[float | None]] = {}
        for _, label in sizes:
            members = study.scenario_rows((aug, label)) if (aug, label) in study.groups else []
            original, retrain = by_role(members, ORIGINAL), by_role(members, RETRAIN)
            methods = dict.fromkeys(r["method"] for r in members if row_role(r) != ORIGINAL)
            for method in methods:
                mine = [r for r in members if r["method"] == method]
                to_original.setdefault(method, []).append(
                    mean_paired_gap(mine, original, "ta", absolute=False))  # fmt: skip
                to_retrain.setdefault(method, []).append(
                    mean_paired_gap(mine, retrain, "ta", absolute=False))  # fmt: skip
        found.append(SizeGaps(aug, [f for f, _ in sizes], to_original, to_retrain))
    return found


def percent(fraction: float) -> str:
    """A forget fraction as a column header: '5%'."""
    return f"{fraction * 100:g}%"


def _fraction_axis(axes: Axes, fractions: list[float], unit: str) -> None:
    """A log x axis of forget fractions in percent, a line at 0, the labels."""
    percents = [100 * f for f in fractions]
    axes.set_xscale("log")
    axes.set_xticks(percents, [f"{p:g}%" for p in percents])
    axes.minorticks_off()
    axes.axhline(0, color="0.6", linewidth=0.8)
    axes.set_xlabel("forget set (share of the training set)")
    axes.set_ylabel(unit)
    axes.grid(alpha=0.3)


@register_analysis
class ForgetSize(Analysis):
    """TA against forget size, per augmentation mode."""

    name = "forget_size"
    title = "Generalisation against forget size"
    legend = (
        "TA(method) - TA(reference) at each random forget fraction, per seed against that "
        "seed's models, then the mean (below 0: the method generalises worse than the "
        "reference). forget_size.png draws them against the fraction."
    )
    figures = ("forget_size.png",)

    def applies(self, study: Study) -> bool:
        return bool(forget_size_gaps(study))

    def tables(self, study: Study) -> list[Table]:
        tables = []
        for found in forget_size_gaps(study):
            columns = [Column(percent(f), f"forget {percent(f)}") for f in found.fractions]
            for name, gaps in (("original model", found.to_original),
                               ("Retrain", found.to_retrain)):  # fmt: skip
                cells = [[method, *(fmt(v, signed=True) for v in values)]
                         for method, values in gaps.items()]  # fmt: skip
                title = f"TA − {name} by forget size, augmentation {found.aug}"
                tables.append(Table(title, columns, cells))
        return tables

    def draw(self, study: Study) -> dict[str, Figure]:
        """TA - original and TA - Retrain against the fraction, one line per method, Retrain
        dashed; one row of panels per augmentation mode."""
        found = forget_size_gaps(study)
        methods = list(dict.fromkeys(m for gaps in found for m in gaps.to_original))
        palette = colours(methods)
        retrains = {r["method"] for r in study.rows if row_role(r) == RETRAIN}
        figure = grid_figure(len(found), 2, 4.6, 3.6)
        grid = panels(figure, len(found), 2)
        for axes_row, gaps in zip(grid, found, strict=True):
            series = (("original model", gaps.to_original), ("Retrain", gaps.to_retrain))
            for axes, (name, lines) in zip(axes_row, series, strict=True):
                for method, values in lines.items():
                    points = [(100 * f, v) for f, v in zip(gaps.fractions, values, strict=True)
                              if v is not None]  # fmt: skip
                    if not points:
                        continue
                    style = ({"color": "black", "linestyle": "--"} if method in retrains
                             else {"color": palette[method]})  # fmt: skip
                    axes.plot(*zip(*points, strict=True), marker="o", markersize=3, label=method,
                              linewidth=1.2, **style)  # fmt: skip
                _fraction_axis(axes, gaps.fractions, f"TA − {name} (points)")
                axes.set_title(f"TA − {name}, augmentation {gaps.aug}", fontsize=9)
        title = (f"{study.title}: TA by forget size{seeds_suffix(study.n_seeds, 'mean')}; below "
                 "0: generalises worse")  # fmt: skip
        return {"forget_size.png": finish(figure, list(grid.flat), 6, title)}
