"""Easy, random and hard forget sets (Nasirigerdeh et al. 2024): UA, RA, TA, MIA and AG of each
method on the training samples of lowest and highest difficulty (the original model's mean
training loss) against a random forget set of the same size."""

from __future__ import annotations

from typing import TYPE_CHECKING

from medunlearn.analyses.base import Analysis, Study, reference_entry, register_analysis
from medunlearn.analyses.core import core_columns
from medunlearn.analyses.forget_size import percent
from medunlearn.analyses.plots import (
    Panel,
    bar,
    finish,
    grid_figure,
    panels,
    seed_stat,
    seeds_suffix,
    style,
)
from medunlearn.analyses.tables import Table, cell
from medunlearn.config import ForgetConfig
from medunlearn.metrics.registry import Column

if TYPE_CHECKING:
    from matplotlib.figure import Figure

KIND_ORDER = ("easy", "random", "hard")
KIND_COLOURS = {"easy": "tab:green", "random": "0.55", "hard": "tab:red"}
PANELS = (
    Panel("ua", "UA", "UA (%)"),
    Panel("ra", "RA", "RA (%)"),
    Panel("ta", "TA", "TA (%)"),
    Panel("mia", "MIA", "MIA (%)"),
    Panel("ag", "AG (lower: closer to Retrain)", "AG (points)"),
)


def forget_kinds(specs: list[ForgetConfig]) -> dict[float, list[ForgetConfig]]:
    """Fraction -> its easy, random and hard forget sets, for each fraction that has an easy or a
    hard one."""
    fractions = dict.fromkeys(s.fraction for s in specs if s.uses_difficulty)
    return {
        fraction: sorted((s for s in specs if s.fraction == fraction and s.mode in KIND_ORDER),
                         key=lambda s: KIND_ORDER.index(s.mode))
        for fraction in fractions
    }  # fmt: skip


@register_analysis
class Difficulty(Analysis):
    """The easy / random / hard table per augmentation mode and fraction, and its figure."""

    name = "difficulty"
    title = "Easy, random and hard forget sets"
    legend = (
        "Easy / hard forget sets are drawn from the training samples of lowest / highest mean "
        "training loss of the original model (its `pool` share of them), the random one from "
        "all: UA, RA, TA, MIA (gap to that forget set's Retrain in parentheses) and AG of each "
        "method on each. forget_kinds.png draws them."
    )
    figures = ("forget_kinds.png",)

    def applies(self, study: Study) -> bool:
        return bool(forget_kinds(study.specs))

    def tables(self, study: Study) -> list[Table]:
        columns = [c for c in core_columns() if c.key != "rte_min"]
        tables = []
        for aug in dict.fromkeys(aug for aug, _ in study.groups):
            for fraction, kinds in forget_kinds(study.specs).items():
                cells = []
                labels = [kind.display_name for kind in kinds]
                methods = dict.fromkeys(e["method"] for label in labels
                                        for e in study.summary.get((aug, label), []))  # fmt: skip
                for method in methods:
                    for label in labels:
                        entries = study.summary.get((aug, label), [])
                        entry = next((e for e in entries if e["method"] == method), None)
                        if entry is not None:
                            cells.append([method, label, *(cell(entry, reference_entry(entries), c)
                                                           for c in columns)])  # fmt: skip
                title = (f"easy / random / hard forget sets of {percent(fraction)}, augmentation "
                         f"{aug}")  # fmt: skip
                tables.append(Table(title, [Column("forget", "forget set", gap=False), *columns],
                                    cells))  # fmt: skip
        return tables

    def draw(self, study: Study) -> dict[str, Figure]:
        """Grouped bars of UA, RA, TA, MIA and AG per method, one bar per forget kind (mean ±
        std over seeds), one row of panels per augmentation mode and forget fraction."""
        rows_of = [(aug, kinds) for aug in dict.fromkeys(aug for aug, _ in study.groups)
                   for kinds in forget_kinds(study.specs).values()]  # fmt: skip
        methods = list(dict.fromkeys(r["method"] for r in study.rows))
        figure = grid_figure(len(rows_of), len(PANELS), 1.2 + 0.7 * len(methods), 3.6)
        grid = panels(figure, len(rows_of), len(PANELS))
        for axes_row, (aug, kinds) in zip(grid, rows_of, strict=True):
            width = 0.8 / len(kinds)
            for axes, panel in zip(axes_row, PANELS, strict=True):
                for g, method in enumerate(methods):
                    for k, kind in enumerate(kinds):
                        members = study.groups.get((aug, kind.display_name), {}).get(method, [])
                        stat = seed_stat(members, panel.key)
                        if stat.mean is not None:
                            bar(axes, g - 0.4 + width * (k + 0.5), width, stat,
                                KIND_COLOURS[kind.mode], kind.display_name)  # fmt: skip
                axes.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize=7)
                style(axes, f"{panel.title}, {aug}", panel.unit)
        title = f"{study.title}: forget kinds{seeds_suffix(study.n_seeds)}"
        return {"forget_kinds.png": finish(figure, list(grid.flat), 3, title)}
