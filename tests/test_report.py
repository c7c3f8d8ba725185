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
    sanity_checks,
    statistics_table,
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


def _attack_row(method, seed, auc, low, high, ag, **extra):
    """A row with a phi-attack AUC and its interval (forget vs test)."""
    return _row(method, seed, 1.0, 99.0, 90.0, 2.0, ag, 1.0, pop_phi_auc=auc,
                pop_phi_auc_low=low, pop_phi_auc_high=high, **extra)  # fmt: skip


def test_checks_say_when_an_attack_cannot_catch_even_the_original_model():
    rows = [_attack_row("original", 0, 0.52, 0.47, 0.57, 1.0),
            _attack_row("retrain", 0, 0.50, 0.45, 0.55, 0.0)]  # fmt: skip
    ((title, lines),) = sanity_checks(rows)
    assert title == "forget set random-10pct, augmentation crop-flip"
    assert "phi threshold attack cannot tell forgetting on this data" in lines[0]
    assert "seed 0: 0.520 [0.470, 0.570]" in lines[0]
    caught = [_attack_row("original", 0, 0.80, 0.75, 0.85, 1.0),
              _attack_row("retrain", 0, 0.50, 0.45, 0.55, 0.0)]  # fmt: skip
    ((_, lines),) = sanity_checks(caught)
    assert lines == [
        "the phi threshold attack catches the original model on its forget set (seed 0: 0.800 "
        "[0.750, 0.850]): it can tell forgetting here."
    ]


def test_checks_say_when_retrain_is_off_chance_and_when_the_svc_was_constant():
    rows = [_attack_row("original", 0, 0.80, 0.75, 0.85, 1.0),
            _attack_row("retrain", 0, 0.60, 0.55, 0.65, 0.0),
            _attack_row("salun", 0, 0.6, 0.5, 0.7, 0.5, mia_constant=True)]  # fmt: skip
    ((_, lines),) = sanity_checks(rows)
    assert any("Retrain's forget-vs-test AUC under the phi threshold attack is not 0.5" in line
               for line in lines)  # fmt: skip
    assert any("constant" in line and "salun (seed 0)" in line for line in lines)


def test_a_method_no_closer_to_retrain_than_the_original_is_flagged():
    rows = [_attack_row("original", 0, 0.8, 0.75, 0.85, 0.87),
            _attack_row("retrain", 0, 0.5, 0.45, 0.55, 0.0),
            _attack_row("rl", 0, 0.5, 0.45, 0.55, 2.74),
            _attack_row("salun", 0, 0.5, 0.45, 0.55, 0.40)]  # fmt: skip
    ((_, lines),) = sanity_checks(rows)
    flagged = [line for line in lines if line.startswith("†")]
    assert flagged == [
        "† rl: AG 2.74 is not below the original model's own 0.87: no closer to Retrain than "
        "doing nothing."
    ]
    text = markdown_report(rows, "t")
    assert "| rl † |" in text and "| salun |" in text


def test_over_seeds_table_gives_intervals_and_marks_differences_within_noise():
    """AG's t interval by hand; UA - Retrain is 1 and 1 over two seeds (interval of width 0:
    not noise); TA - Retrain is -2 and +2 (interval covers 0: within noise)."""
    rows = [
        _row("retrain", 0, 1.0, 99.0, 90.0, 2.0, 0.0, 10.0),
        _row("retrain", 1, 3.0, 99.0, 92.0, 4.0, 0.0, 12.0),
        _row("salun", 0, 2.0, 99.0, 88.0, 2.0, 1.0, 1.0),
        _row("salun", 1, 4.0, 99.0, 94.0, 4.0, 3.0, 1.0),
    ]
    columns, cells = statistics_table(rows)
    assert [c.header for c in columns] == [
        "AG [95% CI]", "UA − Retrain", "RA − Retrain", "TA − Retrain", "MIA − Retrain"
    ]  # fmt: skip
    (salun,) = cells
    half = 12.706 * math.sqrt(2) / math.sqrt(2)  # t(0.975, 1) * std / sqrt(n)
    assert salun[1] == f"2.00 [{2 - half:.2f}, {2 + half:.2f}]"
    assert salun[2] == "+1.00 [+1.00, +1.00]"
    assert salun[4].endswith("≈") and salun[4].startswith("+0.00 [")
    assert "over seeds" in markdown_report(rows, "t")
