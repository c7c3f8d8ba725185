"""Reports: mean and std over seeds, gap to Retrain in parentheses, Markdown and CSV."""

import csv
import io
import math

import pytest

from medunlearn.config import ExperimentConfig, ForgetConfig, UserError
from medunlearn.report import (
    FIRST_COLUMNS,
    class_gap_tables,
    class_gaps,
    csv_text,
    forget_kind_tables,
    forget_size_gaps,
    forget_size_tables,
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


def _class_row(method, seed, ua, ta, forget="random-10pct"):
    """A row with per-class UA and TA (lists by class) only."""
    row = {"method": method, "aug": "crop-flip", "forget": forget, "seed": seed}
    row |= {f"ua_c{c}": v for c, v in enumerate(ua)} | {f"ta_c{c}": v for c, v in enumerate(ta)}
    return row


CLASS_ROWS = [
    _class_row("retrain", 0, [10.0, 0.0], [90.0, 80.0]),
    _class_row("retrain", 1, [20.0, 0.0], [92.0, 70.0]),
    _class_row("ft", 0, [12.0, 5.0], [93.0, 60.0]),
    _class_row("ft", 1, [18.0, None], [89.0, 70.0]),  # no forget sample of class 1
]


def test_per_class_gaps_are_each_seeds_gap_to_its_retrain_averaged():
    """UA class 0: |12 - 10| and |18 - 20| -> 2 (against the other seed's Retrain: 8, from the
    means: 0); class 1: seed 0 alone -> 5. TA class 0: 3 and 3 -> 3; class 1: 20 and 0 -> 10."""
    found = class_gaps(CLASS_ROWS)
    assert found.methods == ["ft"]
    assert found.gaps["ua"].tolist() == [[2.0, 5.0]]
    assert found.gaps["ta"].tolist() == [[3.0, 10.0]]
    (ua_title, columns, ua_cells), (ta_title, _, ta_cells) = class_gap_tables(CLASS_ROWS)
    assert "per-class UA gap to Retrain" in ua_title and "per-class TA" in ta_title
    assert [c.header for c in columns] == ["class 0", "class 1", "worst"]
    assert ua_cells == [["ft", "2.00", "5.00", "5.00"]]
    assert ta_cells == [["ft", "3.00", "10.00", "10.00"]]
    assert "per-class UA gap to Retrain" in markdown_report(CLASS_ROWS, "t")


def _ta_row(method, seed, ta, forget):
    return {"method": method, "aug": "crop-flip", "forget": forget, "seed": seed, "ta": ta}


SIZE_SPECS = [
    ForgetConfig("random", 0.5),
    ForgetConfig("random", 0.1),
    ForgetConfig("easy", 0.1, pool=0.2),
]
ORIGINAL_TA = {0: 90.0, 1: 94.0}
SIZE_TA = {  # forget set -> method -> TA of seeds 0, 1
    "random-10pct": {"retrain": (89.0, 92.0), "ft": (87.0, 93.0)},
    "random-50pct": {"retrain": (85.0, 90.0), "ft": (80.0, 86.0)},
    "easy-10pct-pool20": {"retrain": (50.0, 50.0), "ft": (10.0, 10.0)},
}
SIZE_ROWS = [
    _ta_row(method, seed, ta, forget)
    for forget, methods in SIZE_TA.items()
    for method, values in {"original": tuple(ORIGINAL_TA.values()), **methods}.items()
    for seed, ta in enumerate(values)
]


def test_forget_size_gaps_compare_each_size_with_its_own_original_and_retrain():
    """ft at 10%: 87 - 90, 93 - 94 -> -2 to the original; 87 - 89, 93 - 92 -> -0.5 to Retrain.
    At 50%: -10, -8 -> -9; -5, -4 -> -4.5. Retrain to the original: -1.5 and -4.5. The easy forget
    set is no size point."""
    (found,) = forget_size_gaps(SIZE_ROWS, SIZE_SPECS)
    assert found.fractions == [0.1, 0.5]
    assert found.to_original == {"retrain": [-1.5, -4.5], "ft": [-2.0, -9.0]}
    assert found.to_retrain == {"retrain": [0.0, 0.0], "ft": [-0.5, -4.5]}
    (original, retrain) = forget_size_tables(SIZE_ROWS, SIZE_SPECS)
    assert original[0].startswith("TA − original model by forget size")
    assert [c.header for c in original[1]] == ["forget 10%", "forget 50%"]
    assert original[2] == [["retrain", "-1.50", "-4.50"], ["ft", "-2.00", "-9.00"]]
    assert retrain[2][1] == ["ft", "-0.50", "-4.50"]
    assert forget_size_gaps(SIZE_ROWS, SIZE_SPECS[1:]) == []  # one random size: no curve


KIND_SPECS = [ForgetConfig("hard", 0.05), ForgetConfig("random", 0.05), ForgetConfig("easy", 0.05),
              ForgetConfig("random", 0.5)]  # fmt: skip


def _kind_rows():
    """One seed: per forget set, Retrain and ft with made-up UA, RA, TA, MIA, AG."""
    values = {  # forget set -> (Retrain's UA, ft's UA)
        "easy-5pct": (0.5, 1.0),
        "random-5pct": (3.0, 2.0),
        "hard-5pct": (40.0, 30.0),
        "random-50pct": (5.0, 5.0),
    }
    return [
        _row(method, 0, ua, 99.0, 90.0, 2.0, 0.0 if method == "retrain" else 1.5, 1.0,
             forget=forget)
        for forget, pair in values.items()
        for method, ua in zip(("retrain", "ft"), pair, strict=True)
    ]  # fmt: skip


def test_forget_kind_table_shows_easy_random_hard_against_their_own_retrain():
    rows = _kind_rows()
    ((title, columns, cells),) = forget_kind_tables(rows, KIND_SPECS)
    assert title.startswith("easy / random / hard forget sets of 5%")
    assert [c.header for c in columns] == ["forget set", "UA", "RA", "TA", "MIA", "AG"]
    assert [line[:3] for line in cells] == [
        ["retrain", "easy-5pct", "0.50 (0.00)"],
        ["retrain", "random-5pct", "3.00 (0.00)"],
        ["retrain", "hard-5pct", "40.00 (0.00)"],
        ["ft", "easy-5pct", "1.00 (0.50)"],
        ["ft", "random-5pct", "2.00 (1.00)"],
        ["ft", "hard-5pct", "30.00 (10.00)"],
    ]
    assert cells[3][-1] == "1.50"  # AG, no gap of its own
    assert forget_kind_tables(rows, [ForgetConfig("random", 0.05)]) == []


def test_write_results_draws_the_analyses_the_config_calls_for(tmp_path):
    rows = [{**r, "ua": 1.0, "ra": 99.0, "mia": 2.0, "ag": 0.5, "ua_c0": 1.0, "ta_c0": r["ta"]}
            for r in SIZE_ROWS]  # fmt: skip
    config = ExperimentConfig(forget=SIZE_SPECS)
    write_results(tmp_path, rows, config)
    for name in ("subgroups.png", "forget_size.png", "forget_kinds.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG", name
    report = (tmp_path / "report.md").read_text()
    assert "TA − Retrain by forget size" in report and "easy / random / hard" in report
    write_results(tmp_path / "bare", rows, None)  # no config: no size or kind analyses
    assert not (tmp_path / "bare" / "forget_size.png").exists()
    assert (tmp_path / "bare" / "subgroups.png").is_file()
