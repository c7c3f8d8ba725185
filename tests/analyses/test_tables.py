"""The one number formatter, a table cell with its spread and gap to Retrain, tables as Markdown
and rich, and rows as CSV."""

from __future__ import annotations

import csv
import io
import math

from medunlearn.analyses.tables import NA, Table, cell, csv_text, fmt
from medunlearn.metrics.registry import Column

UA = Column("ua", "UA")
STD = math.sqrt(2)  # sample std of two values 2 apart


def test_fmt_gives_fixed_decimals_a_sign_where_asked_and_na_where_undefined():
    assert fmt(1.0) == "1.00" and fmt(2) == "2.00" and fmt(0.12345, 3) == "0.123"
    assert fmt(1.5, 1, signed=True) == "+1.5" and fmt(-1.5, 1, signed=True) == "-1.5"
    assert fmt(12345.678, None) == "1.235e+04" and fmt(0.5, None) == "0.5"  # 4 significant
    assert fmt(None) == NA and fmt(math.nan) == NA and NA == "n/a"
    assert fmt("random-10pct") == "random-10pct" and fmt(True) == "True"  # text passes through


def test_a_cell_is_the_mean_its_spread_over_seeds_and_its_gap_to_retrain():
    entry = {"ua": 1.0, "ua_std": STD, "n_seeds": 2}
    reference = {"ua": 2.0}
    assert cell(entry, reference, UA) == "1.00±1.41 (1.00)"
    assert cell({"ua": 0.0, "n_seeds": 1}, reference, UA) == "0.00 (2.00)"  # one seed: no std
    assert cell(entry, None, UA) == "1.00±1.41"  # no Retrain: no gap
    assert cell(entry, {"ua": None}, UA) == "1.00±1.41"
    assert cell(entry, reference, Column("ua", "UA", gap=False)) == "1.00±1.41"
    assert cell({"ua": 0.1234, "n_seeds": 1}, {"ua": 0.5}, Column("ua", "UA", 3)) == "0.123 (0.377)"
    assert cell({"ua": None}, reference, UA) == NA


def test_a_table_renders_as_markdown_and_for_a_terminal():
    table = Table("forget set f", [UA, Column("ag", "AG")], [["ft", "1.00", "2.00"]])
    assert table.markdown() == ["", "### forget set f", "", "| method | UA | AG |",
                                "|---|---|---|", "| ft | 1.00 | 2.00 |"]  # fmt: skip
    rich = table.rich()
    assert rich.title == "forget set f" and rich.row_count == 1
    assert [c.header for c in rich.columns] == ["method", "UA", "AG"]
    assert Table("t", [UA], [], first="forget").markdown()[3] == "| forget | UA |"


def test_csv_has_the_first_columns_then_every_other_scalar_in_first_seen_order():
    rows = [{"method": "retrain", "ua": 1.0, "speedup": None, "curves": {"a": [1]}},
            {"method": "ft", "ua": 0.0, "note": "x", "ids": [1, 2]}]  # fmt: skip
    table = list(csv.reader(io.StringIO(csv_text(rows, ("method", "seed", "ua")))))
    assert table[0] == ["method", "seed", "ua", "speedup", "note"]  # lists and dicts left out
    assert table[1] == ["retrain", "", "1.0", "", ""]  # None and missing values empty
    assert table[2] == ["ft", "", "0.0", "", "x"]
    assert len(table) == 3
    assert csv_text(rows).splitlines()[0] == "method,ua,speedup,note"
