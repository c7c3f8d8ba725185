"""Reports: mean and std over seeds, gap to Retrain in parentheses, Markdown and CSV."""

import csv
import io
import math

import pytest

from medunlearn.config import UserError
from medunlearn.report import (
    FIRST_COLUMNS,
    csv_text,
    markdown_report,
    read_results,
    rich_tables,
    summarise,
    write_results,
)


def _row(method, seed, ua, ra, ta, mia, ag, rte, **extra):
    return {"method": method, "aug": "crop-flip", "forget": "random-10pct", "seed": seed,
            "ua": ua, "ra": ra, "ta": ta, "mia": mia, "ag": ag, "rte_min": rte, **extra}  # fmt: skip


ROWS = [
    _row("retrain", 0, 1.0, 99.0, 90.0, 2.0, 0.0, 10.0),
    _row("salun", 0, 0.0, 98.0, 88.0, 1.0, 1.25, 1.0, note="x"),
    _row("retrain", 1, 3.0, 99.0, 92.0, 4.0, 0.0, 12.0),
    _row("salun", 1, 2.0, 100.0, 90.0, 3.0, 0.75, 1.5, note="y"),
]
STD = math.sqrt(2)  # sample std of two values 2 apart


def test_summarise_mean_and_std_over_seeds():
    summary = summarise(ROWS)
    assert [(e["method"], e["n_seeds"]) for e in summary] == [("retrain", 2), ("salun", 2)]
    retrain, salun = summary
    assert retrain["ua"] == pytest.approx(2.0) and retrain["ua_std"] == pytest.approx(STD)
    assert retrain["ra"] == pytest.approx(99.0) and retrain["ra_std"] == 0.0
    assert salun["ta"] == pytest.approx(89.0) and salun["ta_std"] == pytest.approx(STD)
    assert salun["ag"] == pytest.approx(1.0)
    assert salun["rte_min"] == pytest.approx(1.25)
    assert "seed" not in salun and "note" not in salun


def test_summarise_single_seed_has_zero_std():
    (entry,) = summarise(ROWS[:1])
    assert entry["n_seeds"] == 1 and entry["ua"] == 1.0 and entry["ua_std"] == 0.0


def test_summarise_keeps_forget_sets_apart():
    other = [dict(r, forget="random-50pct", ua=r["ua"] + 10) for r in ROWS]
    summary = summarise(ROWS + other)
    assert len(summary) == 4
    by_key = {(e["forget"], e["method"]): e for e in summary}
    assert by_key[("random-50pct", "salun")]["ua"] == pytest.approx(11.0)
    assert by_key[("random-10pct", "salun")]["ua"] == pytest.approx(1.0)


def test_markdown_gap_in_parentheses():
    text = markdown_report(ROWS, "BloodMNIST 10%")
    assert text.startswith("# BloodMNIST 10%\n")
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| method |"))
    assert header == "| method | UA | RA | TA | MIA | AG | RTE (min) |"
    salun = next(line for line in lines if line.startswith("| salun |"))
    cells = [c.strip() for c in salun.strip("|").split("|")]
    assert cells[:5] == [
        "salun",
        "1.00±1.41 (1.00)",  # UA: mean 1 vs Retrain's 2
        "99.00±1.41 (0.00)",
        "89.00±1.41 (2.00)",
        "2.00±1.41 (1.00)",
    ]
    assert cells[5] == "1.00±0.35"  # AG: no gap of a gap
    assert cells[6] == "1.25±0.35"  # RTE: no gap either
    retrain = next(line for line in lines if line.startswith("| retrain |"))
    assert "2.00±1.41 (0.00)" in retrain
    assert "random-10pct" in text


def test_markdown_single_seed_has_no_std():
    rows = [r for r in ROWS if r["seed"] == 0]
    text = markdown_report(rows, "one seed")
    salun = next(line for line in text.splitlines() if line.startswith("| salun |"))
    assert "±" not in salun
    assert "| 0.00 (1.00) |" in salun
    assert "| 88.00 (2.00) |" in salun


def test_markdown_without_retrain_has_no_gaps():
    rows = [dict(r, ag=None) for r in ROWS if r["method"] == "salun"]
    text = markdown_report(rows, "no reference")
    salun = next(line for line in text.splitlines() if line.startswith("| salun |"))
    assert "(" not in salun
    assert "n/a" in salun


def test_csv_contents():
    rows = [dict(ROWS[0], speedup=None), ROWS[1]]
    table = list(csv.reader(io.StringIO(csv_text(rows))))
    header = table[0]
    assert tuple(header[: len(FIRST_COLUMNS)]) == FIRST_COLUMNS
    assert header[len(FIRST_COLUMNS) :] == ["note"]
    first = dict(zip(header, table[1], strict=True))
    second = dict(zip(header, table[2], strict=True))
    assert first["method"] == "retrain" and first["speedup"] == "" and first["note"] == ""
    assert float(second["ua"]) == 0.0 and float(second["ag"]) == 1.25 and second["note"] == "x"
    assert len(table) == 3


def test_write_and_read_results(tmp_path):
    class Config:
        name = "written"

    write_results(tmp_path, ROWS, Config())
    assert read_results(tmp_path) == ROWS
    assert (tmp_path / "report.md").read_text().startswith("# written")
    assert (tmp_path / "results.csv").read_text() == csv_text(ROWS)
    with pytest.raises(UserError, match="medunlearn run"):
        read_results(tmp_path / "nothing")


def test_rich_tables():
    tables = rich_tables(ROWS)
    assert tables
    assert tables[0].row_count == 2
