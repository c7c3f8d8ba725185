"""The core table: UA, RA, TA, MIA with the gap to Retrain in parentheses, AG and run time
without; the over-seeds table; the dagger and check on a method no better than doing nothing."""

from __future__ import annotations

import math

from medunlearn.analyses.base import Study
from medunlearn.analyses.core import Core, statistics_table

CORE = Core()


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


def _line(table, method: str) -> list[str]:
    """The cells of one method's line."""
    return next(line for line in table.cells if line[0] == method)


def test_the_gap_to_retrain_is_in_parentheses():
    table, over_seeds = CORE.tables(Study(ROWS, "BloodMNIST 10%"))
    assert table.title == "forget set random-10pct, augmentation crop-flip"
    assert table.markdown()[3] == "| method | UA | RA | TA | MIA | AG | RTE (min) |"
    cells = _line(table, "salun")
    assert cells[:5] == [
        "salun",
        "1.00±1.41 (1.00)",  # UA: mean 1 vs Retrain's 2
        "99.00±1.41 (0.00)",
        "89.00±1.41 (2.00)",
        "2.00±1.41 (1.00)",
    ]
    assert cells[5] == "1.00±0.35"  # AG: no gap of a gap
    assert cells[6] == "1.25±0.35"  # RTE: no gap either
    assert "2.00±1.41 (0.00)" in _line(table, "retrain")
    assert over_seeds.title.endswith("over seeds")


def test_a_single_seed_has_no_std_and_no_over_seeds_table():
    (table,) = CORE.tables(Study([r for r in ROWS if r["seed"] == 0]))
    salun = _line(table, "salun")
    assert not any("±" in text for text in salun)
    assert salun[1] == "0.00 (1.00)" and salun[3] == "88.00 (2.00)"


def test_without_retrain_there_are_no_gaps():
    rows = [dict(r, ag=None) for r in ROWS if r["method"] == "salun"]
    table, over_seeds = CORE.tables(Study(rows))
    salun = _line(table, "salun")
    assert not any("(" in text for text in salun)
    assert salun[5] == "n/a"
    assert _line(over_seeds, "salun")[1:] == ["n/a"] * 5  # no AG, no Retrain to pair with


def test_the_reference_is_found_by_role_not_by_name():
    """A relabelled Retrain still gives the gaps; a row without a role falls back on its name."""
    relabelled = [dict(r, method="retrain (long)") if r["role"] == "retrain" else r for r in ROWS]
    legacy = [{k: v for k, v in r.items() if k != "role"} for r in ROWS]
    for rows in (relabelled, legacy):
        table, _ = CORE.tables(Study(rows))
        assert _line(table, "salun")[1] == "1.00±1.41 (1.00)"


def _attack_row(method, seed, ag):
    return _row(method, seed, 1.0, 99.0, 90.0, 2.0, ag, 1.0)


FLAGGED = [_attack_row("original", 0, 0.87), _attack_row("retrain", 0, 0.0),
           _attack_row("rl", 0, 2.74), _attack_row("salun", 0, 0.40)]  # fmt: skip


def test_a_method_no_closer_to_retrain_than_the_original_is_flagged():
    study = Study(FLAGGED)
    ((where, lines),) = CORE.checks(study)
    assert where == "forget set random-10pct, augmentation crop-flip"
    assert lines == [
        "† rl: AG 2.74 is not below the original model's own 0.87: no closer to Retrain than "
        "doing nothing."
    ]
    (table,) = CORE.tables(study)
    assert [line[0] for line in table.cells] == ["original", "retrain", "rl †", "salun"]
    assert CORE.checks(Study([r for r in FLAGGED if r["method"] != "rl"])) == []


def test_over_seeds_table_gives_intervals_and_marks_differences_within_noise():
    """AG's t interval by hand; UA - Retrain is 1 and 1 over two seeds (interval of width 0:
    not noise); TA - Retrain is -2 and +2 (interval covers 0: within noise)."""
    rows = [
        _row("retrain", 0, 1.0, 99.0, 90.0, 2.0, 0.0, 10.0),
        _row("retrain", 1, 3.0, 99.0, 92.0, 4.0, 0.0, 12.0),
        _row("salun", 0, 2.0, 99.0, 88.0, 2.0, 1.0, 1.0),
        _row("salun", 1, 4.0, 99.0, 94.0, 4.0, 3.0, 1.0),
    ]
    table = statistics_table("over seeds", rows)
    assert [c.header for c in table.columns] == [
        "AG [95% CI]", "UA − Retrain", "RA − Retrain", "TA − Retrain", "MIA − Retrain"
    ]  # fmt: skip
    (salun,) = table.cells  # Retrain has no line of its own
    half = 12.706 * math.sqrt(2) / math.sqrt(2)  # t(0.975, 1) * std / sqrt(n)
    assert salun[1] == f"2.00 [{2 - half:.2f}, {2 + half:.2f}]"
    assert salun[2] == "+1.00 [+1.00, +1.00]"
    assert salun[4].endswith("≈") and salun[4].startswith("+0.00 [")
    assert [t.title for t in CORE.tables(Study(rows))][1].endswith("— over seeds")


def test_the_over_seeds_table_shows_a_paired_attack_column_where_rows_have_it():
    rows = [dict(r, lira_auc=0.5 + r["seed"] / 10) for r in ROWS]
    table = statistics_table("t", rows)
    assert table.columns[-1].header == "LiRA AUC − Retrain"
    assert _line(table, "salun")[-1] == "+0.000 [+0.000, +0.000] ≈"  # as Retrain, seed by seed


def test_core_applies_to_any_rows():
    assert CORE.applies(Study(ROWS[:1]))
