"""The privacy analysis: the attacks' table, their sanity checks (can an attack tell forgetting
here at all, is Retrain at chance, was the SVC constant, how coarse is F), and roc.png and
scores.png, one row of panels per (augmentation mode, forget set)."""

from __future__ import annotations

import numpy as np
import pytest
from matplotlib.figure import Figure

from medunlearn.analyses.base import Study
from medunlearn.analyses.privacy import Privacy

PRIVACY = Privacy()
WHERE = "forget set random-10pct, augmentation crop-flip"


def _attack_row(method, seed, auc, low, high, ag, **extra):
    """A row with a phi-attack AUC and its interval (forget vs test)."""
    role = method if method in ("original", "retrain") else "method"
    return {"method": method, "role": role, "aug": "crop-flip", "forget": "random-10pct",
            "seed": seed, "ua": 1.0, "ra": 99.0, "ta": 90.0, "mia": 2.0, "ag": ag,
            "rte_min": 1.0, "pop_phi_auc": auc, "pop_phi_auc_low": low,
            "pop_phi_auc_high": high, **extra}  # fmt: skip


def test_checks_say_when_an_attack_cannot_catch_even_the_original_model():
    rows = [_attack_row("original", 0, 0.52, 0.47, 0.57, 1.0),
            _attack_row("retrain", 0, 0.50, 0.45, 0.55, 0.0)]  # fmt: skip
    ((where, lines),) = PRIVACY.checks(Study(rows))
    assert where == WHERE
    assert "phi threshold attack cannot tell forgetting on this data" in lines[0]
    assert "seed 0: 0.520 [0.470, 0.570]" in lines[0]
    caught = [_attack_row("original", 0, 0.80, 0.75, 0.85, 1.0),
              _attack_row("retrain", 0, 0.50, 0.45, 0.55, 0.0)]  # fmt: skip
    ((_, lines),) = PRIVACY.checks(Study(caught))
    assert lines == [
        "the phi threshold attack catches the original model on its forget set (seed 0: 0.800 "
        "[0.750, 0.850]): it can tell forgetting here."
    ]


def test_checks_say_when_retrain_is_off_chance_and_when_the_svc_was_constant():
    rows = [_attack_row("original", 0, 0.80, 0.75, 0.85, 1.0),
            _attack_row("retrain", 0, 0.60, 0.55, 0.65, 0.0),
            _attack_row("salun", 0, 0.6, 0.5, 0.7, 0.5, mia_constant=True)]  # fmt: skip
    ((_, lines),) = PRIVACY.checks(Study(rows))
    assert any("Retrain's forget-vs-test AUC under the phi threshold attack is not 0.5" in line
               for line in lines)  # fmt: skip
    assert any("constant" in line and "salun (seed 0)" in line for line in lines)


def test_checks_say_how_coarse_f_is_and_which_repeats_diverged():
    rows = [_attack_row("original", 0, 0.80, 0.75, 0.85, 1.0),
            _attack_row("salun", 0, 0.6, 0.5, 0.7, 0.5, forget_score_n=8, repeats_diverged=2)]  # fmt: skip
    ((_, lines),) = PRIVACY.checks(Study(rows))
    assert any("N = 8 unlearning runs" in line and "ceil(ln(N - 1)) = 2" in line
               for line in lines)  # fmt: skip
    assert any("diverged" in line and "salun (seed 0: 2)" in line for line in lines)


def test_checks_find_the_references_by_role():
    """A relabelled original model is still the one whose AUC tells whether the attack works."""
    rows = [dict(_attack_row("original", 0, 0.52, 0.47, 0.57, 1.0), method="trained")]
    ((_, lines),) = PRIVACY.checks(Study(rows))
    assert "cannot tell forgetting" in lines[0]


def test_the_table_shows_the_attack_columns_the_rows_have():
    rows = [_attack_row("retrain", 0, 0.50, 0.45, 0.55, 0.0, pop_phi_tpr1=0.01),
            _attack_row("salun", 0, 0.60, 0.5, 0.7, 0.5, pop_phi_tpr1=0.02)]  # fmt: skip
    (table,) = PRIVACY.tables(Study(rows))
    assert table.title == f"{WHERE} — privacy"
    assert [c.header for c in table.columns] == ["SVC MIA", "phi AUC", "phi TPR@1%"]
    assert table.cells[1] == ["salun", "2.00 (0.00)", "0.600 (0.100)", "0.020 (0.010)"]


def test_it_applies_where_rows_have_the_phi_attack():
    assert PRIVACY.applies(Study([_attack_row("retrain", 0, 0.5, 0.45, 0.55, 0.0)]))
    assert not PRIVACY.applies(Study([{"method": "ft", "seed": 0, "mia": 2.0}]))
    assert PRIVACY.draw(Study([_attack_row("retrain", 0, 0.5, 0.45, 0.55, 0.0)])) == {}  # no curves


def roc_lines(figure: Figure) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray]]:
    """(panel title, method) -> the drawn ROC's points (chance left out)."""
    return {(axes.get_title(), line.get_label()): (line.get_xdata(), line.get_ydata())
            for axes in figure.axes for line in axes.lines
            if line.get_label() != "chance"}  # fmt: skip


def histograms(figure: Figure) -> dict[tuple[str, str], np.ndarray]:
    """(panel title, forget or test) -> the drawn shares per bin."""
    return {(axes.get_title(), patch.get_label()): patch.get_data().values
            for axes in figure.axes if axes.get_visible()
            for patch in axes.patches}  # fmt: skip


def test_roc_keeps_augmentation_modes_apart(two_modes: Study) -> None:
    """Defect 1: roc.png grouped rows by forget set only, so each method's curve was the mean of
    both augmentation modes. One row of panels per (mode, forget set), titled with the mode,
    each curve the mean TPR over that mode's own seeds."""
    figure = PRIVACY.draw(two_modes)["roc.png"]
    titles = [axes.get_title() for axes in figure.axes]
    assert titles == ["the phi threshold attack, forget set random-10pct, augmentation crop-flip",
                      "the phi threshold attack, forget set random-10pct, augmentation none"]  # fmt: skip
    drawn = roc_lines(figure)
    assert len(drawn) == 2 * 4  # two modes, four methods each
    for title, aug in zip(titles, ("crop-flip", "none"), strict=True):
        for method in ("original", "retrain", "ft", "salun"):
            own = [r["curves"]["pop_phi"] for r in two_modes.rows
                   if (r["aug"], r["method"]) == (aug, method)]  # fmt: skip
            fpr, tpr = np.array(own[0]["fpr"]), np.mean([c["tpr"] for c in own], axis=0)
            x, y = drawn[(title, method)]
            assert x == pytest.approx(fpr[fpr > 0]) and y == pytest.approx(tpr[fpr > 0])


def test_scores_keep_augmentation_modes_apart(two_modes: Study) -> None:
    """Defect 1 in scores.png: one panel per (mode, forget set) and method, named after its mode,
    showing that mode's histogram (the old figure drew only the first mode's)."""
    figure = PRIVACY.draw(two_modes)["scores.png"]
    drawn = histograms(figure)
    assert len(drawn) == 2 * 2 * 4  # forget and test, per mode and method
    for row in two_modes.rows:
        if row["seed"] != 0:
            continue  # a panel shows a method's first seed
        title = f"{row['method']} (random-10pct, {row['aug']}, seed 0)"
        for group in ("forget", "test"):
            counts = np.array(row["histograms"]["pop_phi"][group], dtype=float)
            assert drawn[(title, group)] == pytest.approx(counts / counts.sum()), title
