"""Figures: clinical safety (FNR, Global Risk) and the augmentation study (AG by mode), PNG.

matplotlib is imported only when a figure is drawn, and only its Agg canvas is used (no pyplot,
no global backend state), so the module costs nothing to import and works without a display.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from medunlearn.metrics.stats import summarise
from medunlearn.store import atomic_write

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

REFERENCE = "retrain"
ORIGINAL = "original"


@dataclass(frozen=True)
class Panel:
    """One metric of the figure: its row key and its axis label."""

    key: str
    title: str
    unit: str


CLINICAL_PANELS = (
    Panel("fnr", "False-negative rate", "FNR (%)"),
    Panel("risk_1", "Global Risk, scenario I (C_FN = C_FP = 1)", "risk"),
    Panel("risk_2", "Global Risk, scenario II (C_FN = 20, C_FP = 1)", "risk"),
)


@dataclass(frozen=True)
class Stat:
    """Mean and standard deviation over seeds (std None for a single seed; all None: no value)."""

    mean: float | None
    std: float | None


def seed_stat(rows: Sequence[dict], key: str) -> Stat:
    """Mean and sample std of the defined values of `key` (None values are skipped)."""
    values = [float(r[key]) for r in rows if isinstance(r.get(key), int | float)]
    if not values:
        return Stat(None, None)
    summary = summarise(np.array(values))
    return Stat(summary.mean, summary.std)


def _groups(rows: Sequence[dict]) -> dict[str, dict[str, list[dict]]]:
    """forget set -> method -> its rows (one per seed), both in first-seen order."""
    groups: dict[str, dict[str, list[dict]]] = {}
    for row in rows:
        groups.setdefault(str(row.get("forget", "")), {}).setdefault(row["method"], []).append(row)
    return groups


def _methods(rows: Sequence[dict]) -> list[str]:
    """The methods drawn as bars: every method but Retrain (drawn as a line), first-seen order."""
    return [m for m in dict.fromkeys(r["method"] for r in rows) if m != REFERENCE]


def _colours(methods: list[str], palette: Callable[[int], object]) -> dict[str, object]:
    """A colour per method: grey for the original model, the palette in turn for the others."""
    others = [m for m in methods if m != ORIGINAL]
    colours: dict[str, object] = {m: palette(i % 10) for i, m in enumerate(others)}
    return {ORIGINAL: "0.6", **colours}


def _bar_label(stat: Stat) -> str:
    """The number printed above a bar."""
    return "" if stat.mean is None else f"{stat.mean:.2f}" if stat.mean < 10 else f"{stat.mean:.1f}"


def _figure(width: float, n_panels: int) -> tuple[Figure, Sequence[Axes]]:
    """A figure of n panels side by side, 3.8 in high, on matplotlib's Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, 3.8), layout="constrained")
    FigureCanvasAgg(figure)
    return figure, figure.subplots(1, n_panels, squeeze=False)[0]


def _bar(axes: Axes, x: float, width: float, stat: Stat, colour: object, label: str) -> None:
    """One bar at the mean with its std error bar, its value printed above it."""
    bar = axes.bar(x, stat.mean, width, yerr=stat.std, capsize=2, color=colour, label=label)
    axes.bar_label(bar, labels=[_bar_label(stat)], fontsize=6, padding=1)


def _style(axes: Axes, title: str, unit: str) -> None:
    """Panel title and axis label, the y axis from 0 with headroom for the labels, a light grid."""
    axes.set_title(title, fontsize=9)
    axes.set_ylabel(unit)
    axes.set_ylim(bottom=0)
    axes.margins(y=0.15)
    axes.grid(axis="y", alpha=0.3)


def _seeds_suffix(n_seeds: int) -> str:
    """What the title says about seeds: their number when the bars are means over several."""
    return f" — mean ± std over {n_seeds} seeds" if n_seeds > 1 else ""


def _finish(figure: Figure, axes_list: Sequence[Axes], max_columns: int, title: str, path: Path):
    """One legend for all panels below them, the title above, then the PNG written atomically."""
    handles, labels = _legend_entries(axes_list)
    if handles:
        figure.legend(handles, labels, loc="outside lower center",
                      ncols=min(len(labels), max_columns))  # fmt: skip
    figure.suptitle(title, fontsize=10)
    save_png(figure, Path(path))


def _draw_panel(
    axes: Axes,
    panel: Panel,
    groups: dict[str, dict[str, list[dict]]],
    methods: list[str],
    colours: dict[str, object],
) -> None:
    """Grouped bars (one group per forget set, one bar per method) and Retrain's dashed line."""
    width = 0.8 / max(len(methods), 1)
    for g, by_method in enumerate(groups.values()):
        for m, method in enumerate(methods):
            x = g - 0.4 + width * (m + 0.5)
            stat = seed_stat(by_method.get(method, []), panel.key)
            if stat.mean is None:
                axes.text(x, 0, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
                continue
            _bar(axes, x, width, stat, colours[method], method)
        reference = seed_stat(by_method.get(REFERENCE, []), panel.key)
        if reference.mean is not None:
            axes.hlines(
                reference.mean, g - 0.45, g + 0.45, colors="black", linestyles="--",
                linewidth=1.2, label=f"{REFERENCE} (reference)",
            )  # fmt: skip
    axes.set_xticks(range(len(groups)), [f"forget {f}" for f in groups])
    axes.set_xlim(-0.5, len(groups) - 0.5)
    _style(axes, panel.title, panel.unit)


def _legend_entries(axes_list: Sequence[Axes]) -> tuple[list, list[str]]:
    """Handles and labels of all panels, one per label."""
    entries: dict[str, object] = {}
    for axes in axes_list:
        for handle, label in zip(*axes.get_legend_handles_labels(), strict=True):
            entries.setdefault(label, handle)
    return list(entries.values()), list(entries)


def save_png(figure: Figure, path: Path) -> None:
    """Save a figure as PNG atomically: a temporary file in the same folder, then a rename."""
    atomic_write(path, lambda tmp: figure.savefig(tmp, format="png", dpi=150, bbox_inches="tight"))


def clinical_figure(
    rows: list[dict], path: Path, title: str = "Clinical safety on the test set"
) -> None:
    """FNR and Global Risk (scenarios I, II) per forget set and method, mean±std over seeds."""
    if not rows:
        raise ValueError("no result rows to draw: run an experiment first")
    from matplotlib import colormaps

    groups, methods = _groups(rows), _methods(rows)
    colours = _colours(methods, colormaps["tab10"])
    figure, axes_list = _figure(4.2 * len(CLINICAL_PANELS), len(CLINICAL_PANELS))
    for axes, panel in zip(axes_list, CLINICAL_PANELS, strict=True):
        _draw_panel(axes, panel, groups, methods, colours)
    n_seeds = max(len(by_seed) for by_method in groups.values() for by_seed in by_method.values())
    heading = f"{title}{_seeds_suffix(n_seeds)}; Retrain dashed; n/a: undefined"
    _finish(figure, axes_list, 7, heading, path)


def _by_aug(rows: Sequence[dict], forget: str) -> dict[str, dict[str, list[dict]]]:
    """For one forget set: method -> augmentation mode -> its rows (one per seed)."""
    table: dict[str, dict[str, list[dict]]] = {}
    for row in rows:
        if row.get("forget") == forget and row["method"] not in (REFERENCE, ORIGINAL):
            table.setdefault(row["method"], {}).setdefault(row["aug"], []).append(row)
    return table


def ag_by_aug_figure(rows: list[dict], path: Path, title: str = "AG by augmentation") -> None:
    """Grouped bars of AG (lower: closer to Retrain) per method and mode, one panel per forget set."""
    if not rows:
        raise ValueError("no result rows to draw: run an experiment first")
    from matplotlib import colormaps

    forgets = list(dict.fromkeys(str(r.get("forget", "")) for r in rows))
    modes = list(dict.fromkeys(r["aug"] for r in rows))
    palette = colormaps["tab10"]
    figure, axes_list = _figure(max(4.5, 2.2 + 1.1 * len(modes)) * len(forgets), len(forgets))
    width = 0.8 / len(modes)
    for axes, forget in zip(axes_list, forgets, strict=True):
        table = _by_aug(rows, forget)
        for g, by_mode in enumerate(table.values()):
            for m, mode in enumerate(modes):
                stat = seed_stat(by_mode.get(mode, []), "ag")
                if stat.mean is None:
                    continue
                _bar(axes, g - 0.4 + width * (m + 0.5), width, stat, palette(m % 10), mode)
        axes.set_xticks(range(len(table)), list(table))
        _style(axes, f"forget {forget}", "AG (points)")
    n_seeds = len({r["seed"] for r in rows})
    _finish(figure, axes_list, 4, f"{title}{_seeds_suffix(n_seeds)}", path)


# the attacks drawn, strongest first: the first one the rows have is the histograms' score
ROC_ATTACKS = (("lira", "offline LiRA"), ("rmia", "offline RMIA"), ("pop_phi", "phi threshold"))
HISTOGRAM_COLUMNS = 6


def _attacks(rows: Sequence[dict]) -> list[tuple[str, str]]:
    """The attacks whose curves the rows hold."""
    return [(k, name) for k, name in ROC_ATTACKS if any(k in r.get("curves", {}) for r in rows)]


def _mean_curve(rows: Sequence[dict], attack: str) -> tuple[list[float], list[float]] | None:
    """FPR and the mean TPR over seeds at each (the curves share their FPR points)."""
    curves = [r["curves"][attack] for r in rows if attack in r.get("curves", {})]
    if not curves:
        return None
    tpr = [statistics.fmean(values) for values in zip(*(c["tpr"] for c in curves), strict=True)]
    return curves[0]["fpr"], tpr


def _roc_panel(axes: Axes, by_method: dict[str, list[dict]], attack: str, colours: dict) -> None:
    """ROC curves on log-log axes, one per method, Retrain dashed, chance dotted."""
    for method, rows in by_method.items():
        curve = _mean_curve(rows, attack)
        if curve is None:
            continue
        fpr, tpr = curve
        points = [(f, t) for f, t in zip(fpr, tpr, strict=True) if f > 0]
        style = {"color": "black", "linestyle": "--", "linewidth": 1.6} if method == REFERENCE else {
            "color": colours[method], "linewidth": 1.0}  # fmt: skip
        axes.plot(*zip(*points, strict=True), label=method, **style)
    axes.plot([1e-4, 1], [1e-4, 1], color="0.7", linestyle=":", linewidth=0.8, label="chance")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlim(1e-3, 1)
    axes.set_ylim(1e-3, 1)
    axes.set_xlabel("false-positive rate")
    axes.set_ylabel("true-positive rate")
    axes.grid(alpha=0.3, which="both")


def roc_figure(rows: list[dict], path: Path, title: str = "Membership attacks") -> None:
    """ROC of each attack on forget vs test samples, per method (mean over seeds), log-log axes
    where the low false-positive rates that matter for privacy are visible; one row of panels
    per forget set, one panel per attack."""
    if not rows:
        raise ValueError("no result rows to draw: run an experiment first")
    from matplotlib import colormaps

    attacks, groups = _attacks(rows), _groups(rows)
    colours = _colours([m for m in dict.fromkeys(r["method"] for r in rows)], colormaps["tab20"])
    figure = _grid_figure(len(groups), len(attacks), 4.0, 3.8)
    axes_grid = figure.subplots(len(groups), len(attacks), squeeze=False)
    for axes_row, (forget, by_method) in zip(axes_grid, groups.items(), strict=True):
        for axes, (attack, name) in zip(axes_row, attacks, strict=True):
            _roc_panel(axes, by_method, attack, colours)
            axes.set_title(f"{name}, forget {forget}", fontsize=9)
    n_seeds = len({r["seed"] for r in rows})
    seeds = f" — mean TPR over {n_seeds} seeds" if n_seeds > 1 else ""
    _finish(
        figure, list(axes_grid.flat), 6, f"{title}: forget vs test{seeds}; Retrain dashed", path
    )


def _grid_figure(n_rows: int, n_columns: int, width: float, height: float) -> Figure:
    """An empty figure for a grid of panels of the given size, on matplotlib's Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width * n_columns, height * n_rows), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def scores_figure(rows: list[dict], path: Path, title: str = "Per-example attack scores") -> None:
    """Histograms of the strongest attack's per-example scores, forget vs test samples, one
    panel per forget set and method (its first seed): where the two overlap, the attack cannot
    tell the forgotten samples from unseen ones."""
    attacks = _attacks(rows)
    if not attacks:
        raise ValueError("no attack scores in the rows: run an experiment first")
    attack, name = attacks[0]
    panels = [(forget, method, members[0]) for forget, by_method in _groups(rows).items()
              for method, members in by_method.items() if attack in members[0].get("histograms", {})]  # fmt: skip
    n_columns = min(len(panels), HISTOGRAM_COLUMNS)
    n_rows = -(-len(panels) // n_columns)
    figure = _grid_figure(n_rows, n_columns, 2.6, 2.2)
    axes_grid = figure.subplots(n_rows, n_columns, squeeze=False)
    for axes, (forget, method, row) in zip(axes_grid.flat, panels, strict=False):
        histogram = row["histograms"][attack]
        edges = histogram["edges"]
        for group, colour, label in (("test", "0.55", "test"), ("forget", "tab:red", "forget")):
            counts = histogram[group]
            total = max(sum(counts), 1)
            axes.stairs([c / total for c in counts], edges, color=colour, label=label)
        axes.set_title(f"{method} ({forget}, seed {row['seed']})", fontsize=7)
        axes.tick_params(labelsize=6)
    for axes in list(axes_grid.flat)[len(panels) :]:
        axes.set_visible(False)
    _finish(figure, [axes_grid.flat[0]], 2, f"{title}: {name}, share of samples per bin", path)
