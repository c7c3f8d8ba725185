"""Figures, PNG: clinical safety (FNR, Global Risk), the augmentation study (AG by mode), the
attacks (ROC, scores), and the analyses of Nasirigerdeh et al.: per-class gaps to Retrain, TA
against forget size, easy / random / hard forget sets.

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

    from medunlearn.config import ForgetConfig

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


def _annotate(axes: Axes, matrix: np.ndarray) -> None:
    """Each heatmap cell's value printed in it ('n/a' where undefined)."""
    high = np.nanmax(matrix) if np.isfinite(matrix).any() else 0.0
    for (i, j), value in np.ndenumerate(matrix):
        text = "n/a" if np.isnan(value) else f"{value:.1f}"
        colour = "white" if np.isfinite(value) and value > 0.6 * high else "black"
        axes.text(j, i, text, ha="center", va="center", fontsize=6, color=colour)


def subgroups_figure(
    rows: list[dict], path: Path, title: str = "Per-class gaps to Retrain"
) -> None:
    """Heatmaps of |UA_c - UA_c(Retrain)| and |TA_c - TA_c(Retrain)| per method and class (mean
    over seeds), one row of panels per (augmentation, forget set): a method that forgets one
    class's patients worse, or loses one class's test accuracy, stands out."""
    from medunlearn.report import CLASS_METRICS, by_scenario, class_gaps

    found = [(key, gaps) for key, members in by_scenario(rows).items()
             if (gaps := class_gaps(members)) is not None]  # fmt: skip
    if not found:
        raise ValueError("no per-class metrics with a Retrain row to draw: run an experiment first")
    n_methods = max(len(gaps.methods) for _, gaps in found)
    n_classes = max(matrix.shape[1] for _, gaps in found for matrix in gaps.gaps.values())
    figure = _grid_figure(len(found), len(CLASS_METRICS), 1.6 + 0.45 * n_classes,
                          1.2 + 0.3 * n_methods)  # fmt: skip
    axes_grid = figure.subplots(len(found), len(CLASS_METRICS), squeeze=False)
    several_modes = len({aug for (aug, _), _ in found}) > 1
    for axes_row, ((aug, forget), gaps) in zip(axes_grid, found, strict=True):
        for axes, (metric, header) in zip(axes_row, CLASS_METRICS, strict=True):
            matrix = gaps.gaps[metric]
            image = axes.imshow(np.ma.masked_invalid(matrix), cmap="Reds", vmin=0, aspect="auto")
            _annotate(axes, matrix)
            axes.set_xticks(range(matrix.shape[1]), [str(c) for c in range(matrix.shape[1])])
            axes.set_yticks(range(len(gaps.methods)), gaps.methods, fontsize=7)
            axes.set_xlabel("class")
            where = f"forget {forget}" + (f", {aug}" if several_modes else "")
            axes.set_title(f"|{header}_c − Retrain|, {where}", fontsize=9)
            figure.colorbar(image, ax=axes, shrink=0.8, label="points")
    figure.suptitle(f"{title} — mean over seeds", fontsize=10)
    save_png(figure, Path(path))


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


def forget_size_figure(
    rows: list[dict],
    specs: Sequence[ForgetConfig],
    path: Path,
    title: str = "Generalisation and forget size",
) -> None:
    """TA(method) - TA(original model) and TA(method) - TA(Retrain) against the forget fraction
    of the random forget sets (mean over seeds), one line per method, Retrain dashed; one row of
    panels per augmentation mode."""
    from matplotlib import colormaps

    from medunlearn.report import forget_size_gaps

    found = forget_size_gaps(rows, specs)
    if not found:
        raise ValueError("no random forget sets of two or more sizes to draw")
    methods = list(dict.fromkeys(m for gaps in found for m in gaps.to_original))
    colours = _colours(methods, colormaps["tab10"])
    figure = _grid_figure(len(found), 2, 4.6, 3.6)
    axes_grid = figure.subplots(len(found), 2, squeeze=False)
    for axes_row, gaps in zip(axes_grid, found, strict=True):
        panels = (("original model", gaps.to_original), ("Retrain", gaps.to_retrain))
        for axes, (name, series) in zip(axes_row, panels, strict=True):
            for method, values in series.items():
                points = [(100 * f, v) for f, v in zip(gaps.fractions, values, strict=True)
                          if v is not None]  # fmt: skip
                if not points:
                    continue
                style = ({"color": "black", "linestyle": "--"} if method == REFERENCE
                         else {"color": colours[method]})  # fmt: skip
                axes.plot(*zip(*points, strict=True), marker="o", markersize=3, label=method,
                          linewidth=1.2, **style)  # fmt: skip
            _fraction_axis(axes, gaps.fractions, f"TA − {name} (points)")
            axes.set_title(f"TA − {name}, augmentation {gaps.aug}", fontsize=9)
    n_seeds = len({r["seed"] for r in rows})
    seeds = f" — mean over {n_seeds} seeds" if n_seeds > 1 else ""
    _finish(figure, list(axes_grid.flat), 6, f"{title}{seeds}; below 0: generalises worse", path)


KIND_COLOURS = {"easy": "tab:green", "random": "0.55", "hard": "tab:red"}
KIND_PANELS = (
    Panel("ua", "UA", "UA (%)"),
    Panel("ra", "RA", "RA (%)"),
    Panel("ta", "TA", "TA (%)"),
    Panel("mia", "MIA", "MIA (%)"),
    Panel("ag", "AG (lower: closer to Retrain)", "AG (points)"),
)


def forget_kinds_figure(
    rows: list[dict],
    specs: Sequence[ForgetConfig],
    path: Path,
    title: str = "Easy, random and hard forget sets",
) -> None:
    """Grouped bars of UA, RA, TA, MIA and AG per method, one bar per forget kind (easiest,
    random, hardest samples of one size; mean ± std over seeds), one row of panels per
    augmentation mode and forget fraction."""
    from medunlearn.report import forget_kinds

    groups = [(aug, kinds) for aug in dict.fromkeys(r.get("aug", "") for r in rows)
              for kinds in forget_kinds(specs).values()]  # fmt: skip
    if not groups:
        raise ValueError("no easy or hard forget sets to draw")
    methods = list(dict.fromkeys(r["method"] for r in rows))
    figure = _grid_figure(len(groups), len(KIND_PANELS), 1.2 + 0.7 * len(methods), 3.6)
    axes_grid = figure.subplots(len(groups), len(KIND_PANELS), squeeze=False)
    for axes_row, (aug, kinds) in zip(axes_grid, groups, strict=True):
        labels = [kind.display_name for kind in kinds]
        width = 0.8 / len(labels)
        for axes, panel in zip(axes_row, KIND_PANELS, strict=True):
            for g, method in enumerate(methods):
                for k, (kind, label) in enumerate(zip(kinds, labels, strict=True)):
                    members = [r for r in rows if (r.get("aug", ""), r["forget"], r["method"])
                               == (aug, label, method)]  # fmt: skip
                    stat = seed_stat(members, panel.key)
                    if stat.mean is not None:
                        x = g - 0.4 + width * (k + 0.5)
                        _bar(axes, x, width, stat, KIND_COLOURS[kind.mode], label)
            axes.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=7)
            _style(axes, f"{panel.title}, {aug}", panel.unit)
    n_seeds = len({r["seed"] for r in rows})
    _finish(figure, list(axes_grid.flat), 3, f"{title}{_seeds_suffix(n_seeds)}", path)


def trials_figure(trials: list[dict], path: Path, title: str = "Tuning trials") -> None:
    """Each trial's objective in order (pruned trials hollow, at their last epoch's value),
    and the best so far: how fast the search converged."""
    figure, (axes,) = _figure(6.0, 1)
    numbers = [t["trial"] for t in trials]
    values = [t["objective"] for t in trials]
    complete = [t["state"] == "complete" for t in trials]
    done = [
        (n, v) for n, v, c in zip(numbers, values, complete, strict=True) if c and v is not None
    ]
    pruned = [
        (n, v) for n, v, c in zip(numbers, values, complete, strict=True) if not c and v is not None
    ]
    if done:
        axes.scatter(*zip(*done, strict=True), label="complete", color="tab:blue")
        best = np.minimum.accumulate([v for _, v in done])
        axes.step(
            [n for n, _ in done],
            best,
            where="post",
            color="tab:blue",
            alpha=0.5,
            label="best so far",
        )
    if pruned:
        axes.scatter(
            *zip(*pruned, strict=True), label="pruned", facecolors="none", edgecolors="tab:red"
        )
    axes.set_xlabel("trial")
    axes.legend(frameon=False, fontsize=7)
    _style(axes, title, "objective (lower is better)")
    save_png(figure, path)


def overhead_figure(rows: list[dict], path: Path, title: str = "Run time and tuning cost") -> None:
    """Per tuned method: its run time, and its run time plus the search's cost, against
    Retrain's run time (a dashed line): the cost Nasirigerdeh et al. say RTE hides."""
    figure, (axes,) = _figure(max(4.0, 1.2 * len(rows) + 2), 1)
    for x, row in enumerate(rows):
        axes.bar(x - 0.2, row["rte_min"], 0.4, color="tab:blue", label="RTE")
        axes.bar(
            x + 0.2, row["rte_min"] + row["tune_min"], 0.4, color="tab:orange", label="RTE + tuning"
        )
    retrain = float(np.mean([row["retrain_min"] for row in rows]))
    axes.axhline(retrain, color="black", linestyle="--", linewidth=1, label="Retrain")
    axes.set_xticks(range(len(rows)), [row["method"] for row in rows])
    handles, labels = axes.get_legend_handles_labels()
    unique = dict(zip(labels, handles, strict=True))
    axes.legend(unique.values(), unique.keys(), frameon=False, fontsize=7)
    _style(axes, title, "minutes")
    save_png(figure, path)
