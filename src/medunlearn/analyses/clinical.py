"""Clinical safety on binary malignant-vs-benign tasks (Falcao & Cordeiro 2026): balanced
accuracies, the SVC MIA, the false-negative rate and Global Risk, against Retrain."""

from __future__ import annotations

from typing import TYPE_CHECKING

from medunlearn.analyses.base import Analysis, Study, register_analysis, where
from medunlearn.analyses.core import method_cells
from medunlearn.analyses.plots import (
    Panel,
    bar,
    colours,
    finish,
    grid_figure,
    panels,
    seed_stat,
    seeds_suffix,
    style,
)
from medunlearn.analyses.tables import Table
from medunlearn.metrics.registry import table_columns
from medunlearn.roles import RETRAIN, row_role

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PANELS = (
    Panel("fnr", "False-negative rate", "FNR (%)"),
    Panel("risk_1", "Global Risk, scenario I (C_FN = C_FP = 1)", "risk"),
    Panel("risk_2", "Global Risk, scenario II (C_FN = 20, C_FP = 1)", "risk"),
)


@register_analysis
class Clinical(Analysis):
    """The clinical table of every scenario, and FNR and Global Risk per method."""

    name = "clinical"
    title = "Clinical safety"
    legend = (
        "Binary tasks (positive = malignant / abnormal): UBAC = 100 - balanced accuracy on the "
        "forget set, RBAC and TBAC on retain and test, MIA, the false-negative rate on test and "
        "Global Risk (C_FP FP + C_FN FN) / N on test, scenario I (equal costs) and II (a missed "
        "malignancy costs 20 false alarms); gap to Retrain in parentheses. clinical.png draws "
        "FNR and the risks per scenario and method, Retrain dashed."
    )
    figures = ("clinical.png",)

    def applies(self, study: Study) -> bool:
        return any(row.get("fnr") is not None or "tbac" in row for row in study.rows)

    def tables(self, study: Study) -> list[Table]:
        columns = table_columns("clinical")
        return [
            Table(f"{where(scenario)} — clinical", columns, method_cells(entries, columns))
            for scenario, entries in study.summary.items()
        ]

    def draw(self, study: Study) -> dict[str, Figure]:
        """FNR and Global Risk (scenarios I, II) per scenario and method, mean±std over seeds:
        one group of bars per (augmentation, forget set)."""
        scenarios = study.groups
        methods = list(dict.fromkeys(r["method"] for r in study.rows if row_role(r) != RETRAIN))
        palette = colours(methods)
        figure = grid_figure(1, len(PANELS), 4.2, 3.8)
        axes_row = panels(figure, 1, len(PANELS))[0]
        width = 0.8 / max(len(methods), 1)
        several_modes = len({aug for aug, _ in scenarios}) > 1
        for axes, panel in zip(axes_row, PANELS, strict=True):
            for g, by_method in enumerate(scenarios.values()):
                for m, method in enumerate(methods):
                    x = g - 0.4 + width * (m + 0.5)
                    stat = seed_stat(by_method.get(method, []), panel.key)
                    if stat.mean is None:
                        axes.text(x, 0, "n/a", ha="center", va="bottom", fontsize=7, rotation=90)
                        continue
                    bar(axes, x, width, stat, palette[method], method)
                retrain = [r for rows in by_method.values() for r in rows if row_role(r) == RETRAIN]
                reference = seed_stat(retrain, panel.key)
                if reference.mean is not None:
                    axes.hlines(reference.mean, g - 0.45, g + 0.45, colors="black",
                                linestyles="--", linewidth=1.2, label="retrain (reference)")  # fmt: skip
            labels = [f"forget {forget}" + (f"\n{aug}" if several_modes else "")
                      for aug, forget in scenarios]  # fmt: skip
            axes.set_xticks(range(len(scenarios)), labels)
            axes.set_xlim(-0.5, len(scenarios) - 0.5)
            style(axes, panel.title, panel.unit)
        title = (f"{study.title}: clinical safety on test{seeds_suffix(study.n_seeds)}; Retrain "
                 "dashed; n/a: undefined")  # fmt: skip
        return {"clinical.png": finish(figure, list(axes_row), 7, title)}
