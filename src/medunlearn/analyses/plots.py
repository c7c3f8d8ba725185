"""Figure helpers: matplotlib's Agg canvas only (no pyplot, no global backend state, imported
when a figure is drawn), bars with their spread, a colour per method, one legend, PNG files
written atomically."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medunlearn.analyses.base import numbers
from medunlearn.metrics.stats import summarise
from medunlearn.roles import ORIGINAL
from medunlearn.store import atomic_write

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class Panel:
    """One metric drawn in a panel: its row key, its title and its axis label."""

    key: str
    title: str
    unit: str


@dataclass(frozen=True)
class Stat:
    """Mean and standard deviation over seeds (std None for a single seed; all None: no value)."""

    mean: float | None
    std: float | None


def seed_stat(rows: Sequence[dict], key: str) -> Stat:
    """Mean and sample std of the defined values of `key` (None values are skipped)."""
    values = numbers(rows, key)
    if not values:
        return Stat(None, None)
    summary = summarise(np.array(values))
    return Stat(summary.mean, summary.std)


def grid_figure(n_rows: int, n_columns: int, width: float, height: float) -> Figure:
    """An empty figure for a grid of panels of the given size, on matplotlib's Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * n_columns, height * n_rows), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def panels(figure: Figure, n_rows: int, n_columns: int) -> np.ndarray:
    """The figure's grid of axes (always two-dimensional)."""
    return figure.subplots(n_rows, n_columns, squeeze=False)


def colours(methods: Sequence[str], palette_name: str = "tab10") -> dict[str, object]:
    """A colour per method: grey for the original model, the palette in turn for the others."""
    from matplotlib import colormaps

    palette: Callable[[int], object] = colormaps[palette_name]
    others = [m for m in methods if m != ORIGINAL]
    return {ORIGINAL: "0.6", **{m: palette(i % 10) for i, m in enumerate(others)}}


def bar_label(stat: Stat) -> str:
    """The number printed above a bar."""
    if stat.mean is None:
        return ""
    return f"{stat.mean:.2f}" if stat.mean < 10 else f"{stat.mean:.1f}"


def bar(axes: Axes, x: float, width: float, stat: Stat, colour: object, label: str) -> None:
    """One bar at the mean with its std error bar, its value printed above it."""
    drawn = axes.bar(x, stat.mean, width, yerr=stat.std, capsize=2, color=colour, label=label)
    axes.bar_label(drawn, labels=[bar_label(stat)], fontsize=6, padding=1)


def style(axes: Axes, title: str, unit: str) -> None:
    """Panel title and axis label, the y axis from 0 with headroom for the labels, a light grid."""
    axes.set_title(title, fontsize=9)
    axes.set_ylabel(unit)
    axes.set_ylim(bottom=0)
    axes.margins(y=0.15)
    axes.grid(axis="y", alpha=0.3)


def seeds_suffix(n_seeds: int, what: str = "mean ± std") -> str:
    """What a title says about seeds: their number when the values are means over several."""
    return f" — {what} over {n_seeds} seeds" if n_seeds > 1 else ""


def legend_entries(axes_list: Sequence[Axes]) -> tuple[list, list[str]]:
    """Handles and labels of all panels, one per label."""
    entries: dict[str, object] = {}
    for axes in axes_list:
        for handle, label in zip(*axes.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    return list(entries.values()), list(entries)


def finish(figure: Figure, axes_list: Sequence[Axes], max_columns: int, title: str) -> Figure:
    """One legend for all panels below them and the title above."""
    handles, labels = legend_entries(axes_list)
    if handles:
        figure.legend(handles, labels, loc="outside lower center",
                      ncols=min(len(labels), max_columns))  # fmt: skip
    figure.suptitle(title, fontsize=10)
    return figure


def save_png(figure: Figure, path: Path) -> None:
    """Save a figure as PNG atomically: a temporary file in the same folder, then a rename."""
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=150, bbox_inches="tight"))
