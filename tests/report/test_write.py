"""A run's result files: results.csv (fixed columns first), results.json read back, report.md
with each applicable analysis's title, legend, tables and checks, and their figures."""

from __future__ import annotations

import csv
import io
import math

import pytest

from medunlearn.analyses.base import Study
from medunlearn.config import ExperimentConfig, ForgetConfig, UserError
from medunlearn.report.write import (
    FIRST_COLUMNS,
    markdown_report,
    read_results,
    results_csv,
    rich_tables,
    study_of,
    write_figures,
    write_results,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _row(method, seed, ua, ra, ta, mia, ag, rte, **extra):
    role = method if method in ("original", "retrain") else "method"
    return {"method": method, "role": role, "aug": "crop-flip", "forget": "random-10pct",
            "seed": seed, "ua": ua, "ra": ra, "ta": ta, "mia": mia, "ag": ag, "rte_min": rte,
            **extra}  # fmt: skip


ROWS = [
    _row("retrain", 0, 1.0, 99.0, 90.0, 2.0, 0.0, 10.0),
    _row("salun", 0, 0.0, 98.0, 88.0, 1.0, 1.25, 1.0, note="x"),
    _row("retrain", 1, 3.0, 99.0, 92.0, 4.0, 0.0, 12.0),
    _row("salun", 1, 2.0, 100.0, 90.0, 3.0, 0.75, 1.5, note="y"),
]
STD = math.sqrt(2)


def test_the_report_has_the_core_table_with_gaps_in_parentheses():
    text = markdown_report(Study(ROWS, "BloodMNIST 10%"))
    assert text.startswith("# BloodMNIST 10%\n\n## Unlearning against Retrain\n")
    lines = text.splitlines()
    assert "### forget set random-10pct, augmentation crop-flip" in lines
    header = next(line for line in lines if line.startswith("| method |"))
    assert header == "| method | UA | RA | TA | MIA | AG | RTE (min) |"
    salun = next(line for line in lines if line.startswith("| salun |"))
    assert salun == ("| salun | 1.00±1.41 (1.00) | 99.00±1.41 (0.00) | 89.00±1.41 (2.00) | "
                     "2.00±1.41 (1.00) | 1.00±0.35 | 1.25±0.35 |")  # fmt: skip
    retrain = next(line for line in lines if line.startswith("| retrain |"))
    assert "2.00±1.41 (0.00)" in retrain
    assert "over seeds" in text


def test_the_report_shows_the_analyses_that_apply_in_order_then_the_checks():
    rows = [_row("original", 0, 1.0, 99.0, 90.0, 2.0, 0.87, 1.0, pop_phi_auc=0.8,
                 pop_phi_auc_low=0.75, pop_phi_auc_high=0.85),
            _row("retrain", 0, 1.0, 99.0, 90.0, 2.0, 0.0, 1.0, fnr=3.0, risk_1=0.1, risk_2=0.5),
            _row("rl", 0, 1.0, 99.0, 90.0, 2.0, 2.74, 1.0)]  # fmt: skip
    text = markdown_report(Study(rows, "t"))
    headings = [line for line in text.splitlines() if line.startswith("## ")]
    assert headings == [
        "## Unlearning against Retrain",
        "## Clinical safety",
        "## Privacy: attacks strong enough to trust",
        "## checks: forget set random-10pct, augmentation crop-flip",  # core's dagger
        "## checks: forget set random-10pct, augmentation crop-flip",  # privacy's sanity
    ]
    assert "| rl † |" in text
    assert "- † rl: AG 2.74 is not below the original model's own 0.87" in text
    assert markdown_report(Study([], "empty")) == "# empty\n"


def test_results_csv_has_the_fixed_columns_first():
    rows = [dict(ROWS[0], speedup=None, curves={"pop_phi": {}}), ROWS[1]]
    table = list(csv.reader(io.StringIO(results_csv(rows))))
    header = table[0]
    assert tuple(header[: len(FIRST_COLUMNS)]) == FIRST_COLUMNS
    assert header[:4] == ["method", "aug", "forget", "seed"]  # what identifies a row, first
    assert header[len(FIRST_COLUMNS) :] == ["role", "note"]  # curves are left to the JSON
    first = dict(zip(header, table[1], strict=True))
    second = dict(zip(header, table[2], strict=True))
    assert first["method"] == "retrain" and first["speedup"] == "" and first["note"] == ""
    assert float(second["ua"]) == 0.0 and float(second["ag"]) == 1.25 and second["note"] == "x"
    assert len(table) == 3


def test_write_and_read_results(tmp_path):
    write_results(tmp_path, ROWS, ExperimentConfig(name="written"))
    assert read_results(tmp_path) == ROWS
    assert (tmp_path / "report.md").read_text().startswith("# written")
    assert (tmp_path / "results.csv").read_text() == results_csv(ROWS)
    with pytest.raises(UserError, match="medunlearn run"):
        read_results(tmp_path / "nothing")


def test_rich_tables():
    tables = rich_tables(Study(ROWS))
    assert [t.row_count for t in tables] == [2, 1]  # the core table, then over seeds


def test_the_study_takes_the_configs_title_and_forget_specs():
    specs = [ForgetConfig("random", 0.5), ForgetConfig("easy", 0.1)]
    study = study_of(ROWS, ExperimentConfig(name="named", forget=specs))
    assert (study.rows, study.title, study.specs, study.tunings) == (ROWS, "named", specs, [])
    bare = study_of(ROWS)
    assert (bare.title, bare.specs) == ("results", [])


def _size_rows() -> list[dict]:
    """Random forget sets of two sizes and an easy one, two seeds, per-class columns."""
    return [
        _row(method, seed, 1.0, 99.0, 90.0 - i - seed, 2.0, 0.5, 1.0, forget=forget, ua_c0=1.0,
             ta_c0=90.0 - i)
        for forget in ("random-10pct", "random-50pct", "easy-10pct-pool20")
        for seed in (0, 1)
        for i, method in enumerate(("original", "retrain", "ft"))
    ]  # fmt: skip


def test_write_results_draws_the_analyses_the_config_calls_for(tmp_path):
    rows = _size_rows()
    specs = [ForgetConfig("random", 0.5), ForgetConfig("random", 0.1),
             ForgetConfig("easy", 0.1, pool=0.2)]  # fmt: skip
    write_results(tmp_path, rows, ExperimentConfig(forget=specs))
    for name in ("subgroups.png", "forget_size.png", "forget_kinds.png"):
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC, name
    report = (tmp_path / "report.md").read_text()
    assert "TA − Retrain by forget size" in report and "easy / random / hard" in report
    write_results(tmp_path / "bare", rows, None)  # no config: no size or kind analyses
    assert not (tmp_path / "bare" / "forget_size.png").exists()
    assert (tmp_path / "bare" / "subgroups.png").is_file()


def test_write_figures_writes_each_applicable_analysis_figure(tmp_path):
    written = write_figures(tmp_path, Study(_size_rows()))
    assert written == [tmp_path / "subgroups.png"]  # no clinical, attack, mode, spec or tuning
    assert sorted(p.name for p in tmp_path.iterdir()) == ["subgroups.png"]
    assert write_figures(tmp_path / "none", Study(ROWS)) == []  # the core analysis draws none
