"""Privacy: every registered attack's columns against Retrain's, their ROCs on log-log axes
and per-example scores, and what the attacks can tell on this data (their sanity checks)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING

from medunlearn.analyses.base import Analysis, Study, register_analysis, where
from medunlearn.analyses.core import method_cells
from medunlearn.analyses.plots import colours, finish, grid_figure, panels
from medunlearn.analyses.tables import Table, fmt
from medunlearn.metrics.registry import Metric, checked_attacks, drawn_attacks, table_columns
from medunlearn.roles import ORIGINAL, RETRAIN, row_role

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

HISTOGRAM_COLUMNS = 6


def _attacks(rows: Sequence[dict]) -> list[Metric]:
    """The drawn attacks whose curves the rows hold, strongest first."""
    return [a for a in drawn_attacks() if any(a.name in r.get("curves", {}) for r in rows)]


def _mean_curve(rows: Sequence[dict], attack: str) -> tuple[list[float], list[float]] | None:
    """FPR and the mean TPR over seeds at each (the curves share their FPR points)."""
    curves = [r["curves"][attack] for r in rows if attack in r.get("curves", {})]
    if not curves:
        return None
    tpr = [statistics.fmean(values) for values in zip(*(c["tpr"] for c in curves), strict=True)]
    return curves[0]["fpr"], tpr


def _roc_panel(axes: Axes, by_method: dict[str, list[dict]], attack: str, palette: dict) -> None:
    """ROC curves on log-log axes, one per method, Retrain dashed, chance dotted."""
    for method, rows in by_method.items():
        found = _mean_curve(rows, attack)
        if found is None:
            continue
        points = [(f, t) for f, t in zip(*found, strict=True) if f > 0]
        retrain = row_role(rows[0]) == RETRAIN
        style = ({"color": "black", "linestyle": "--", "linewidth": 1.6} if retrain
                 else {"color": palette[method], "linewidth": 1.0})  # fmt: skip
        axes.plot(*zip(*points, strict=True), label=method, **style)
    axes.plot([1e-4, 1], [1e-4, 1], color="0.7", linestyle=":", linewidth=0.8, label="chance")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlim(1e-3, 1)
    axes.set_ylim(1e-3, 1)
    axes.set_xlabel("false-positive rate")
    axes.set_ylabel("true-positive rate")
    axes.grid(alpha=0.3, which="both")


def _seeds_text(rows: Sequence[dict], attack: str) -> str:
    """'seed s: AUC [low, high]' for each row."""
    return "; ".join(
        f"seed {r['seed']}: {fmt(r[attack + '_auc'], 3)} [{fmt(r[attack + '_auc_low'], 3)}, "
        f"{fmt(r[attack + '_auc_high'], 3)}]"
        for r in rows
    )


def attack_checks(rows: Sequence[dict], attack: Metric) -> list[str]:
    """Whether an attack catches the original model on its forget set, and where Retrain is."""
    low, name = f"{attack.name}_auc_low", attack.label
    originals = [r for r in rows if row_role(r) == ORIGINAL and r.get(low) is not None]
    retrains = [r for r in rows if row_role(r) == RETRAIN and r.get(low) is not None]
    lines = []
    if originals and any(r[low] <= 0.5 for r in originals):
        lines.append(
            f"**{name} cannot tell forgetting on this data**: the original model, trained on "
            "its forget set, has a forget-vs-test AUC whose 95% interval reaches 0.5 "
            f"({_seeds_text(originals, attack.name)}); its numbers in the tables say nothing "
            "about forgetting."
        )
    elif originals:
        lines.append(
            f"{name} catches the original model on its forget set "
            f"({_seeds_text(originals, attack.name)}): it can tell forgetting here."
        )
    off = [r for r in retrains if not r[low] <= 0.5 <= r[f"{attack.name}_auc_high"]]
    if off:
        lines.append(
            f"Retrain's forget-vs-test AUC under {name} is not 0.5 "
            f"({_seeds_text(off, attack.name)}): forget and test samples differ by more than "
            "membership, so a method is judged by its distance to Retrain's value, not to 0.5."
        )
    return lines


@register_analysis
class Privacy(Analysis):
    """The attacks' table per scenario, their ROCs and score histograms, their sanity."""

    name = "privacy"
    title = "Privacy: attacks strong enough to trust"
    legend = (
        "SVC MIA in percent; the attacks' AUC and TPR at 1% / 0.1% FPR as fractions, forget "
        "vs test samples (the phi threshold needs no reference model, and a loss threshold "
        "ranks samples as it does, so results.csv's pop_loss_* repeat it; LiRA and RMIA compare "
        "the model with a bank of reference Retrains); the target is Retrain's value, not 0.5. "
        "U-LiRA acc: the per-example test's balanced accuracy between a method's repeated runs "
        "and the bank (0.5: indistinguishable from Retrain). F: the NeurIPS 2023 forgetting "
        "quality (1 = indistinguishable from Retrain), from N unlearning runs against N bank "
        "models (coarse for small N). Relearn epochs: fine-tuning epochs on the forget set until "
        "its accuracy is back near the original model's; AIN: that time against Retrain's "
        "(about 1: relearns like a model that never saw the forget set; far below 1: it was only "
        "hidden). roc.png: each attack's ROC on log-log axes per method (Retrain dashed); "
        "scores.png: the strongest attack's per-example scores, forget vs test."
    )
    figures = ("roc.png", "scores.png")

    def applies(self, study: Study) -> bool:
        return any(row.get("pop_phi_auc") is not None for row in study.rows)

    def tables(self, study: Study) -> list[Table]:
        tables = []
        for scenario, entries in study.summary.items():
            shown = [c for c in table_columns("privacy")
                     if any(e.get(c.key) is not None for e in entries)]  # fmt: skip
            tables.append(Table(f"{where(scenario)} — privacy", shown,
                                method_cells(entries, shown)))  # fmt: skip
        return tables

    def checks(self, study: Study) -> list[tuple[str, list[str]]]:
        found = []
        for scenario in study.groups:
            rows = study.scenario_rows(scenario)
            lines = [line for attack in checked_attacks() for line in attack_checks(rows, attack)]
            if constant := [r for r in rows if r.get("mia_constant")]:
                listed = ", ".join(f"{r['method']} (seed {r['seed']})" for r in constant)
                lines.append(
                    f"The SVC attack (MIA) was constant, one answer for every confidence, for "
                    f"{listed}: its MIA there (0 or 100) says nothing about forgetting."
                )
            if sizes := sorted({r["forget_score_n"] for r in rows if r.get("forget_score_n")}):
                n = sizes[0]
                lines.append(
                    f"The forgetting score F and U-LiRA come from N = {n} unlearning runs and {n} "
                    f"bank models per method: an example's epsilon is resolved only up to "
                    f"ceil(ln(N - 1)) = {math.ceil(math.log(n - 1))}, so F is coarse (the NeurIPS "
                    "2023 challenge used N = 512)."
                )
            if diverged := [r for r in rows if r.get("repeats_diverged")]:
                listed = ", ".join(f"{r['method']} (seed {r['seed']}: {r['repeats_diverged']})"
                                   for r in diverged)  # fmt: skip
                lines.append(
                    f"Repeated runs diverged (NaN outputs) for {listed}: they are left out of F "
                    "and U-LiRA, which come from the runs that did not."
                )
            if lines:
                found.append((where(scenario), lines))
        return found

    def draw(self, study: Study) -> dict[str, Figure]:
        attacks = _attacks(study.rows)
        if not attacks:
            return {}
        return {"roc.png": self._roc(study, attacks), "scores.png": self._scores(study, attacks[0])}

    def _roc(self, study: Study, attacks: list[Metric]) -> Figure:
        """ROC of each attack on forget vs test samples, per method (mean over seeds), on
        log-log axes where the low false-positive rates that matter for privacy show; one row
        of panels per scenario, one panel per attack."""
        scenarios = study.groups
        palette = colours(list(dict.fromkeys(r["method"] for r in study.rows)), "tab20")
        figure = grid_figure(len(scenarios), len(attacks), 4.0, 3.8)
        grid = panels(figure, len(scenarios), len(attacks))
        for axes_row, (scenario, by_method) in zip(grid, scenarios.items(), strict=True):
            for axes, attack in zip(axes_row, attacks, strict=True):
                _roc_panel(axes, by_method, attack.name, palette)
                axes.set_title(f"{attack.label}, {where(scenario)}", fontsize=8)
        seeds = f" — mean TPR over {study.n_seeds} seeds" if study.n_seeds > 1 else ""
        title = f"{study.title}: membership attacks, forget vs test{seeds}; Retrain dashed"
        return finish(figure, list(grid.flat), 6, title)

    def _scores(self, study: Study, attack: Metric) -> Figure:
        """Histograms of the strongest attack's per-example scores, forget vs test samples, one
        panel per scenario and method (its first seed): where the two overlap, the attack
        cannot tell the forgotten samples from unseen ones."""
        shown = [(scenario, method, members[0])
                 for scenario, by_method in study.groups.items()
                 for method, members in by_method.items()
                 if attack.name in members[0].get("histograms", {})]  # fmt: skip
        n_columns = min(len(shown), HISTOGRAM_COLUMNS)
        n_rows = -(-len(shown) // n_columns)
        figure = grid_figure(n_rows, n_columns, 2.6, 2.2)
        grid = panels(figure, n_rows, n_columns)
        for axes, ((aug, forget), method, row) in zip(grid.flat, shown, strict=False):
            histogram = row["histograms"][attack.name]
            for group, colour in (("test", "0.55"), ("forget", "tab:red")):
                counts = histogram[group]
                total = max(sum(counts), 1)
                axes.stairs([c / total for c in counts], histogram["edges"], color=colour,
                            label=group)  # fmt: skip
            axes.set_title(f"{method} ({forget}, {aug}, seed {row['seed']})", fontsize=7)
            axes.tick_params(labelsize=6)
        for axes in list(grid.flat)[len(shown) :]:
            axes.set_visible(False)
        title = f"{study.title}: per-example scores of {attack.label}, share of samples per bin"
        return finish(figure, [grid.flat[0]], 2, title)
