"""A search's own report: its trials as a table (trials.csv, tuning.md) and a figure
(trials.png), its cost and the held-out table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from medunlearn.analyses.base import Study
from medunlearn.analyses.core import core_columns, method_cells
from medunlearn.analyses.plots import grid_figure, panels, save_png, style
from medunlearn.analyses.tables import Table, fmt
from medunlearn.metrics.registry import Column
from medunlearn.tuning.heldout import Tuning
from medunlearn.tuning.trial import TRIAL_METRICS


def trial_rows(tuning: Tuning) -> list[dict]:
    """The trials table: one row a trial, its params as columns."""
    rows = []
    for trial in tuning.trials:
        row = {"trial": trial["number"] + 1, **trial["params"], "state": trial["state"]}
        row.update(objective=trial["value"], epochs=trial["epochs"], minutes=trial["seconds"] / 60)
        rows.append({**row, **{k: trial.get(k) for k in TRIAL_METRICS if k in trial}})
    return rows


def held_out_entries(rows: list[dict], tuning: Tuning) -> list[dict]:
    """The held-out table's entries (means over the held-out seeds), with the tuning's cost
    beside the tuned method's run time."""
    entries = [e for scenario in Study(rows).summary.values() for e in scenario]
    for entry in entries:
        if entry["method"].endswith("-tuned"):
            entry["tune_min"] = tuning.cost["tune_min"]
    return entries


def tuning_markdown(summary: dict, trials: list[dict]) -> str:
    """tuning.md: the best params, the search's cost, the held-out table and the trials."""
    cost = summary["cost"]
    lines = [
        f"# Tuning {summary['method']}",
        "",
        f"Best params {summary['best_params']} ({summary['objective']} "
        f"{fmt(summary['best_objective'], 3)} on the tuning seeds {summary['tuning_seeds']}, "
        f"mean over them). Search cost: {fmt(cost['tune_min'], 1)} min "
        f"({fmt(cost['reference_min'], 1)} min of Retrain references, "
        f"{fmt(cost['trials_min'], 1)} min of {cost['trials']} trials, {cost['pruned']} pruned, "
        f"{cost['trial_epochs']} epochs), {cost['trainings']} trainings.",
        "",
        f"Held-out seeds {summary['held_out_seeds']}: other originals, forget sets and "
        "Retrains than the search saw. `-untuned` is the config's params, `-tuned` the best "
        "found; tuning (min) is the search's cost, paid once, beside the run time (RTE).",
    ]
    columns = [*core_columns(), Column("tune_min", "tuning (min)", gap=False)]
    held_out = summary["held_out"]
    for forget in dict.fromkeys(e["forget"] for e in held_out):
        entries = [e for e in held_out if e["forget"] == forget]
        lines += Table(f"held out: {forget}", columns, method_cells(entries, columns)).markdown()
    trial_columns = [Column(k, k, digits=None, gap=False) for k in trials[0] if k != "trial"]
    cells = [[str(t["trial"]), *(fmt(t.get(c.key), None) for c in trial_columns)] for t in trials]
    lines += Table("trials", trial_columns, cells, first="trial").markdown()
    return "\n".join(lines) + "\n"


def _points(trials: list[dict], complete: bool) -> list[tuple[Any, Any]]:
    """(trial number, objective) of the complete or the pruned trials with a value."""
    return [(t["trial"], t["objective"]) for t in trials
            if (t["state"] == "complete") == complete and t["objective"] is not None]  # fmt: skip


def trials_figure(trials: list[dict], path: Path, title: str) -> None:
    """Each trial's objective in order (pruned trials hollow, at their last epoch's value),
    and the best so far: how fast the search converged."""
    figure = grid_figure(1, 1, 6.0, 3.8)
    (axes,) = panels(figure, 1, 1)[0]
    done, pruned = _points(trials, True), _points(trials, False)
    if done:
        axes.scatter(*zip(*done, strict=True), label="complete", color="tab:blue")
        best = np.minimum.accumulate([v for _, v in done])
        axes.step([n for n, _ in done], best, where="post", color="tab:blue", alpha=0.5,
                  label="best so far")  # fmt: skip
    if pruned:
        axes.scatter(*zip(*pruned, strict=True), label="pruned", facecolors="none",
                     edgecolors="tab:red")  # fmt: skip
    axes.set_xlabel("trial")
    axes.legend(frameon=False, fontsize=7)
    style(axes, title, "objective (lower is better)")
    save_png(figure, path)
