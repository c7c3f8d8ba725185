"""The cost the run-time column hides (Nasirigerdeh et al. 2024): each tuned method's run time
beside its search's cost and Retrain's run time, the speed-up with and without the search
counted, and how many deletion requests repay the search."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from medunlearn.analyses.base import Analysis, Study, register_analysis
from medunlearn.analyses.plots import grid_figure, panels, style
from medunlearn.analyses.tables import Table, fmt
from medunlearn.metrics.registry import Column
from medunlearn.roles import RETRAIN

if TYPE_CHECKING:
    from matplotlib.figure import Figure

COLUMNS = (
    Column("ag", "held-out AG", gap=False),
    Column("rte_min", "RTE (min)", gap=False),
    Column("retrain_min", "Retrain (min)", gap=False),
    Column("tune_min", "tuning (min)", gap=False),
    Column("trials", "trials", digits=0, gap=False),
    Column("speedup", "speed-up", digits=1, gap=False),
    Column("speedup_tuned", "speed-up, tuning counted", gap=False),
    Column("break_even", "requests to repay tuning", digits=1, gap=False),
)


def overhead_rows(summaries: Sequence[dict]) -> list[dict]:
    """Each tuned method's run time beside its tuning cost and Retrain's (held-out means, in
    minutes): the speed-up over Retrain with and without the search counted, and how many
    deletion requests it takes for the search to pay for itself."""
    rows = []
    for summary in summaries:
        held_out = summary["held_out"]
        tuned = next(e for e in held_out if e["method"].endswith("-tuned"))
        retrain = next(e for e in held_out if e["role"] == RETRAIN)
        retrain_min, rte, tune_min = (
            retrain["rte_min"],
            tuned["rte_min"],
            summary["cost"]["tune_min"],
        )
        saving = retrain_min - rte
        rows.append({
            "method": summary["method"],
            "ag": tuned.get("ag"),
            "rte_min": rte,
            "retrain_min": retrain_min,
            "tune_min": tune_min,
            "trials": summary["cost"]["trials"],
            "speedup": retrain_min / rte if rte > 0 else None,
            "speedup_tuned": retrain_min / (rte + tune_min),
            "break_even": tune_min / saving if saving > 0 else None,
        })  # fmt: skip
    return rows


@register_analysis
class TuningOverhead(Analysis):
    """The tuning overhead table of a `medunlearn tune` of several methods, and its figure."""

    name = "tuning_overhead"
    title = "Tuning overhead"
    legend = (
        "Each tuned method's held-out AG and run time (RTE) beside Retrain's run time and the "
        "search's cost (its Retrain reference and every trial, pruned ones included): the "
        "speed-up over Retrain without and with the search counted, and how many deletion "
        "requests it takes for the search to pay for itself. overhead.png draws RTE and "
        "RTE + tuning against Retrain (dashed)."
    )
    figures = ("overhead.png",)

    def applies(self, study: Study) -> bool:
        return bool(study.tunings)

    def tables(self, study: Study) -> list[Table]:
        rows = overhead_rows(study.tunings)
        cells = [[r["method"], *(fmt(r.get(c.key), c.digits) for c in COLUMNS)] for r in rows]
        return [Table("tuning overhead", COLUMNS, cells)]

    def draw(self, study: Study) -> dict[str, Figure]:
        """Per tuned method: its run time, and its run time plus the search's cost, against
        Retrain's run time (a dashed line)."""
        rows = overhead_rows(study.tunings)
        figure = grid_figure(1, 1, max(4.0, 1.2 * len(rows) + 2), 3.8)
        (axes,) = panels(figure, 1, 1)[0]
        for x, row in enumerate(rows):
            axes.bar(x - 0.2, row["rte_min"], 0.4, color="tab:blue", label="RTE")
            axes.bar(x + 0.2, row["rte_min"] + row["tune_min"], 0.4, color="tab:orange",
                     label="RTE + tuning")  # fmt: skip
        retrain = float(np.mean([row["retrain_min"] for row in rows]))
        axes.axhline(retrain, color="black", linestyle="--", linewidth=1, label="Retrain")
        axes.set_xticks(range(len(rows)), [row["method"] for row in rows])
        handles, labels = axes.get_legend_handles_labels()
        unique = dict(zip(labels, handles, strict=True))
        axes.legend(unique.values(), unique.keys(), frameon=False, fontsize=7)
        style(axes, f"{study.title}: run time and tuning cost", "minutes")
        return {"overhead.png": figure}
