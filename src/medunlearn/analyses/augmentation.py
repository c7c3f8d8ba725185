"""The augmentation study (Falcao & Cordeiro 2025): each method's AG under each augmentation
mode, and its change against crop-flip, the default."""

from __future__ import annotations

from typing import TYPE_CHECKING

from medunlearn.analyses.base import Analysis, Study, register_analysis
from medunlearn.analyses.plots import (
    bar,
    finish,
    grid_figure,
    panels,
    seed_stat,
    seeds_suffix,
    style,
)
from medunlearn.analyses.tables import NA, Table, fmt
from medunlearn.metrics.registry import Column
from medunlearn.roles import METHOD, row_role

if TYPE_CHECKING:
    from matplotlib.figure import Figure

BASELINE = "crop-flip"


def relative_change(baseline: float, value: float) -> float:
    """Percent change of value against baseline (negative: AG reduced)."""
    return 100.0 * (value - baseline) / baseline


def _ag_cell(entry: dict | None, baseline: dict | None) -> str:
    """AG (±std) and its relative change against the crop-flip baseline."""
    if entry is None or entry.get("ag") is None:
        return NA
    text = fmt(entry["ag"])
    if entry.get("n_seeds", 1) > 1:
        text += f"±{fmt(entry.get('ag_std', 0.0))}"
    if baseline is not None and baseline is not entry and baseline.get("ag"):
        text += f" ({fmt(relative_change(baseline['ag'], entry['ag']), 1, signed=True)}%)"
    return text


def _modes(study: Study) -> list[str]:
    """The augmentation modes of the study, in first-seen order."""
    return list(dict.fromkeys(aug for aug, _ in study.groups))


def _forgets(study: Study) -> list[str]:
    """The forget sets of the study, in first-seen order."""
    return list(dict.fromkeys(forget for _, forget in study.groups))


@register_analysis
class Augmentation(Analysis):
    """AG per method and augmentation mode at each forget set."""

    name = "augmentation"
    title = "AG by augmentation"
    legend = (
        "Each method's AG under each augmentation mode (the mode used in every phase: original, "
        "mask, unlearning, Retrain), and in parentheses its change against crop-flip (negative: "
        "closer to Retrain). ag_by_aug.png draws them, one panel per forget set."
    )
    figures = ("ag_by_aug.png",)

    def applies(self, study: Study) -> bool:
        return len(_modes(study)) > 1

    def tables(self, study: Study) -> list[Table]:
        modes, summary = _modes(study), study.summary
        tables = []
        for forget in _forgets(study):
            index = {(aug, e["method"]): e for (aug, f), entries in summary.items() if f == forget
                     for e in entries if e["role"] == METHOD}  # fmt: skip
            methods = dict.fromkeys(method for _, method in index)
            cells = [[method, *(_ag_cell(index.get((mode, method)), index.get((BASELINE, method)))
                                for mode in modes)] for method in methods]  # fmt: skip
            columns = [Column(mode, mode, gap=False) for mode in modes]
            if cells:  # a forget set with reference rows alone has no AG to show
                tables.append(Table(f"AG by augmentation, forget set {forget}", columns, cells))
        return tables

    def draw(self, study: Study) -> dict[str, Figure]:
        """Grouped bars of AG (lower: closer to Retrain) per method and mode, one panel per
        forget set."""
        from matplotlib import colormaps

        modes, forgets = _modes(study), _forgets(study)
        palette = colormaps["tab10"]
        figure = grid_figure(1, len(forgets), max(4.5, 2.2 + 1.1 * len(modes)), 3.8)
        axes_row = panels(figure, 1, len(forgets))[0]
        width = 0.8 / len(modes)
        for axes, forget in zip(axes_row, forgets, strict=True):
            methods = list(dict.fromkeys(
                r["method"] for r in study.rows if r["forget"] == forget and row_role(r) == METHOD
            ))  # fmt: skip
            for g, method in enumerate(methods):
                for m, mode in enumerate(modes):
                    stat = seed_stat(study.groups.get((mode, forget), {}).get(method, []), "ag")
                    if stat.mean is not None:
                        bar(axes, g - 0.4 + width * (m + 0.5), width, stat, palette(m % 10), mode)
            axes.set_xticks(range(len(methods)), methods)
            style(axes, f"forget {forget}", "AG (points)")
        title = f"{study.title}: AG by augmentation{seeds_suffix(study.n_seeds)}"
        return {"ag_by_aug.png": finish(figure, list(axes_row), 4, title)}
