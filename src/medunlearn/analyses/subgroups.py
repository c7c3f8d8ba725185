"""Subgroup bias (Nasirigerdeh et al. 2024): each method's UA and TA gap to Retrain within each
class (MedMNIST files carry no patient attributes, so the subgroups are the classes)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from medunlearn.analyses.base import (
    Analysis,
    Scenario,
    Study,
    by_role,
    mean_paired_gap,
    register_analysis,
    where,
)
from medunlearn.analyses.plots import grid_figure, panels
from medunlearn.analyses.tables import Table, fmt
from medunlearn.metrics.accuracy import CLASS_METRICS, class_key
from medunlearn.metrics.registry import Column
from medunlearn.roles import RETRAIN, row_role

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

HEADERS = {"ua": "UA", "ta": "TA"}


@dataclass(frozen=True)
class ClassGaps:
    """For one scenario: per method (Retrain aside) and class, the mean over seeds of
    |metric_c - Retrain's metric_c| for UA and TA (NaN where undefined)."""

    methods: list[str]
    gaps: dict[str, np.ndarray]  # metric -> (methods, classes)


def _n_classes(rows: Sequence[dict]) -> int:
    """How many classes the rows have per-class metrics for."""
    n = 0
    while any(class_key("ta", n) in r for r in rows):
        n += 1
    return n


def class_gaps(rows: Sequence[dict]) -> ClassGaps | None:
    """The per-class gaps to Retrain of one scenario's rows (None without Retrain or per-class
    metrics)."""
    retrain, n_classes = by_role(rows, RETRAIN), _n_classes(rows)
    if not retrain or not n_classes:
        return None
    methods = list(dict.fromkeys(r["method"] for r in rows if row_role(r) != RETRAIN))

    def gap(method: str, metric: str, c: int) -> float | None:
        mine = [r for r in rows if r["method"] == method]
        return mean_paired_gap(mine, retrain, class_key(metric, c))

    gaps = {
        metric: np.array(
            [[gap(m, metric, c) for c in range(n_classes)] for m in methods], dtype=float
        )
        for metric in CLASS_METRICS
    }
    return ClassGaps(methods, gaps)


def _found(study: Study) -> list[tuple[Scenario, ClassGaps]]:
    """Each scenario with per-class gaps."""
    found = [(s, class_gaps(study.scenario_rows(s))) for s in study.groups]
    return [(scenario, gaps) for scenario, gaps in found if gaps is not None]


def _worst(gaps: np.ndarray) -> float | None:
    """The largest defined gap (None where none is)."""
    return float(np.nanmax(gaps)) if np.isfinite(gaps).any() else None


def _annotate(axes: Axes, matrix: np.ndarray) -> None:
    """Each heatmap cell's value printed in it ('n/a' where undefined)."""
    high = np.nanmax(matrix) if np.isfinite(matrix).any() else 0.0
    for (i, j), value in np.ndenumerate(matrix):
        colour = "white" if np.isfinite(value) and value > 0.6 * high else "black"
        axes.text(j, i, fmt(value, 1), ha="center", va="center", fontsize=6, color=colour)


@register_analysis
class Subgroups(Analysis):
    """Per-class UA and TA gaps to Retrain, per scenario, and their heatmaps."""

    name = "subgroups"
    title = "Subgroups: per-class gaps to Retrain"
    legend = (
        "|UA_c - UA_c(Retrain)| and |TA_c - TA_c(Retrain)| within each class c, mean over "
        "seeds of each seed's gap, and the worst class: a method that forgets one class's "
        "patients worse, or loses one class's test accuracy, stands out. subgroups.png draws "
        "them as heatmaps."
    )
    figures = ("subgroups.png",)

    def applies(self, study: Study) -> bool:
        return bool(_found(study))

    def tables(self, study: Study) -> list[Table]:
        tables = []
        for scenario, found in _found(study):
            n_classes = next(iter(found.gaps.values())).shape[1]
            columns = [Column(f"c{c}", f"class {c}") for c in range(n_classes)]
            columns.append(Column("max", "worst"))
            for metric in CLASS_METRICS:
                cells = [[method, *(fmt(v) for v in line), fmt(_worst(line))]
                         for method, line in zip(found.methods, found.gaps[metric], strict=True)]  # fmt: skip
                title = f"{where(scenario)} — per-class {HEADERS[metric]} gap to Retrain"
                tables.append(Table(title, columns, cells))
        return tables

    def draw(self, study: Study) -> dict[str, Figure]:
        """Heatmaps per method and class (mean over seeds), one row of panels per scenario."""
        found = _found(study)
        n_methods = max(len(gaps.methods) for _, gaps in found)
        n_classes = max(m.shape[1] for _, gaps in found for m in gaps.gaps.values())
        figure = grid_figure(len(found), len(CLASS_METRICS), 1.6 + 0.45 * n_classes,
                             1.2 + 0.3 * n_methods)  # fmt: skip
        grid = panels(figure, len(found), len(CLASS_METRICS))
        for axes_row, (scenario, gaps) in zip(grid, found, strict=True):
            for axes, metric in zip(axes_row, CLASS_METRICS, strict=True):
                matrix = gaps.gaps[metric]
                image = axes.imshow(np.ma.masked_invalid(matrix), cmap="Reds", vmin=0,
                                    aspect="auto")  # fmt: skip
                _annotate(axes, matrix)
                axes.set_xticks(range(matrix.shape[1]), [str(c) for c in range(matrix.shape[1])])
                axes.set_yticks(range(len(gaps.methods)), gaps.methods, fontsize=7)
                axes.set_xlabel("class")
                axes.set_title(f"|{HEADERS[metric]}_c − Retrain|, {where(scenario)}", fontsize=8)
                figure.colorbar(image, ax=axes, shrink=0.8, label="points")
        figure.suptitle(f"{study.title}: per-class gaps to Retrain — mean over seeds", fontsize=10)
        return {"subgroups.png": figure}
