"""The sequential-requests analysis: which exact model each request is read against, the drift
and the reversal, k* worked out by hand on synthetic rows, its tables and figure."""

from __future__ import annotations

from pathlib import Path

import pytest

from medunlearn.analyses.base import Study
from medunlearn.analyses.sequential import (
    Sequential,
    annotated,
    k_stars,
    reference_step,
    set_reference,
)
from medunlearn.report.write import markdown_report, write_figures


def by_method(rows: list[dict]) -> dict:
    """The k* of each method."""
    return {k.method: k for k in k_stars(rows)}


def test_each_request_is_read_against_the_last_exact_model() -> None:
    exact = [0, 2, 4]
    assert [reference_step(k, exact) for k in range(1, 6)] == [0, 2, 2, 4, 4]
    # a set is judged against a Retrain that never trained on it: the last one at or before
    # the request where it came after the set, else the first one after the set
    assert set_reference(1, 3, exact) == 2
    assert set_reference(3, 5, exact) == 4
    assert set_reference(4, 5, [0, 3, 6]) == 6
    assert set_reference(5, 5, [0, 2, 4]) is None


def test_k_star_by_hand(sequential_rows: list[dict]) -> None:
    # ft: TA 90 - 0.6k against the exact models' 90: drift 0.6, 1.2 (>= 1 at request 2);
    # salun: request 1's images at AUC 0.7 (interval low 0.65) from request 3, against the
    # Retrain's 0.5 + 0.1: recognised again at request 3
    found = by_method(sequential_rows)
    assert (found["ft"].k, found["ft"].first_drift, found["ft"].first_reversal) == (2, 2, None)
    assert found["ft"].reason == "TA drift"
    assert (found["salun"].k, found["salun"].first_reversal) == (3, 3)
    assert found["salun"].first_drift is None and found["salun"].reason == "reversal"
    assert found["ft"].max_drift == 90.0 - (90.0 - 0.6 * 4)
    assert (found["ft"].n_drifted, found["salun"].n_drifted) == (3, 0)  # 1.2, 1.8, 2.4
    assert found["ft"].first_exact_drift == 2  # drift 1.2 at request 2, which has its Retrain
    rows = {(r["method"], r["step"]): r for r in annotated(sequential_rows)}
    assert rows["salun", 3]["recognised_requests"] == [1]
    assert rows["salun", 3]["earlier"][0]["exact_step"] == 2
    assert rows["salun", 4]["debt_images"] == 40
    # the original's context: every request's images before any deletion
    assert (rows["original", 0]["earlier_acc"], rows["original", 0]["earlier_auc_max"]) == (95, 0.6)
    assert rows["retrain", 4]["earlier_acc"] == 80.0


def test_the_bounds_are_the_rows_own(make_step_row) -> None:
    step_row = make_step_row
    rows = [step_row("original", 0, 90.0, {1: (95.0, 0.6), 2: (95.0, 0.6)}),
            step_row("ft", 1, 89.0, {1: (80.0, 0.5)}),
            step_row("ft", 2, 90.0, {1: (80.0, 0.65), 2: (80.0, 0.5)}),
            step_row("retrain", 2, 90.0, {1: (80.0, 0.5), 2: (80.0, 0.5)})]  # fmt: skip
    # drift exactly 1 falls short (>=); interval low 0.6 = 0.5 + 0.1 is not above the margin
    assert by_method(rows)["ft"].k == 1
    assert by_method(rows)["ft"].first_exact_drift is None  # request 1 is read against r0
    rows[1]["drift_bound"] = 1.5
    assert by_method(rows)["ft"].k is None
    rows[2]["reversal_margin"] = 0.05
    assert by_method(rows)["ft"].k == 2


def test_a_method_that_holds_has_no_k_star(sequential_rows: list[dict]) -> None:
    rows = [r for r in sequential_rows if r["method"] != "ft" or r["step"] == 1]
    rows = [r | {"ta": 90.0} if r["method"] == "ft" else r for r in rows]
    found = by_method(rows)["ft"]
    assert found.k is None and found.reason == "held" and found.served == 1


def test_its_tables_and_report(sequential_rows: list[dict], tmp_path: Path) -> None:
    study = Study(sequential_rows, "seq")
    analysis = Sequential()
    assert analysis.applies(study)
    assert not analysis.applies(Study([{**r, "step": None} for r in sequential_rows]))
    tables = {t.title: t for t in analysis.tables(study)}
    assert set(tables) == {"ft: per request", "salun: per request",
                           "exact models (r0: the original)",
                           "k*: requests served before the first failure"}  # fmt: skip
    assert [line[:2] for line in tables["k*: requests served before the first failure"].cells] == [
        ["ft", "2"], ["salun", "3"]
    ]  # fmt: skip
    ft = tables["ft: per request"]
    assert [line[0] for line in ft.cells] == ["1", "2", "3", "4"]
    assert ft.cells[0][2] == "90.00 (r0)" and ft.cells[2][2] == "90.00 (r2)"
    assert ft.columns[3].header == "FNR (macro miss rate)"
    report = markdown_report(study)
    assert report.index("## Sequential requests") < report.index("## Unlearning against Retrain")
    assert next(p.name for p in write_figures(tmp_path, study)) == "sequential.png"


def test_the_figure_draws_each_method_and_the_exact_points(sequential_rows: list[dict]) -> None:
    figure = Sequential().draw(Study(sequential_rows, "seq"))["sequential.png"]
    ta, accuracy, reversal = figure.axes[:3]
    lines = {line.get_label(): line for line in ta.get_lines()}
    assert list(lines["ft"].get_xdata()) == [1, 2, 3, 4]
    exact = lines["exact model (r0: original)"]
    assert list(exact.get_xdata()) == [0, 2, 4] and list(exact.get_ydata()) == [90.0] * 3
    drawn = {line.get_label(): line for line in accuracy.get_lines()}
    assert list(drawn["exact model (r0: original)"].get_xdata()) == [2, 4]  # Retrains only
    assert list(drawn["salun"].get_ydata()) == pytest.approx([80.0, 89.5, (99 + 80 + 80) / 3])
    assert [line.get_label() for line in reversal.get_lines()][:2] == ["ft", "salun"]
    salun = next(line for line in reversal.get_lines() if line.get_label() == "salun")
    # from request 2 (the first with an earlier set): 0.45 - 0.5, then 0.65 - 0.5
    assert list(salun.get_xdata()) == [2, 3, 4]
    assert list(salun.get_ydata()) == pytest.approx([-0.05, 0.15, 0.15])
