"""The one grouping of rows (augmentation mode, forget set, then method), the mean and std over
seeds, the reference rows by role, the paired gaps, and the registry of analyses."""

from __future__ import annotations

import math

import pytest

from medunlearn.analyses import base
from medunlearn.analyses.base import (
    Analysis,
    Study,
    by_role,
    groups,
    mean_entry,
    mean_paired_gap,
    no_better_than_nothing,
    reference_entry,
    register_analysis,
    registered,
)

SCENARIO = ("crop-flip", "random-10pct")


def _row(method, seed, ua, ra, ta, mia, ag, rte, **extra):
    return {"method": method, "aug": "crop-flip", "forget": "random-10pct", "seed": seed,
            "ua": ua, "ra": ra, "ta": ta, "mia": mia, "ag": ag, "rte_min": rte, **extra}  # fmt: skip


ROWS = [
    _row("retrain", 0, 1.0, 99.0, 90.0, 2.0, 0.0, 10.0, role="retrain"),
    _row("salun", 0, 0.0, 98.0, 88.0, 1.0, 1.25, 1.0, role="method", note="x"),
    _row("retrain", 1, 3.0, 99.0, 92.0, 4.0, 0.0, 12.0, role="retrain"),
    _row("salun", 1, 2.0, 100.0, 90.0, 3.0, 0.75, 1.5, role="method", note="y"),
]
STD = math.sqrt(2)  # sample std of two values 2 apart


def test_summary_is_the_mean_and_std_over_seeds():
    summary = Study(ROWS).summary
    assert list(summary) == [SCENARIO]
    assert [(e["method"], e["n_seeds"]) for e in summary[SCENARIO]] == [("retrain", 2),
                                                                        ("salun", 2)]  # fmt: skip
    retrain, salun = summary[SCENARIO]
    assert retrain["ua"] == pytest.approx(2.0) and retrain["ua_std"] == pytest.approx(STD)
    assert retrain["ra"] == pytest.approx(99.0) and retrain["ra_std"] == 0.0
    assert salun["ta"] == pytest.approx(89.0) and salun["ta_std"] == pytest.approx(STD)
    assert salun["ag"] == pytest.approx(1.0)
    assert salun["rte_min"] == pytest.approx(1.25)
    assert "seed" not in salun and "note" not in salun
    assert (salun["role"], salun["aug"], salun["forget"]) == ("method", *SCENARIO)


def test_a_single_seed_has_zero_std():
    entry = mean_entry(ROWS[:1])
    assert entry["n_seeds"] == 1 and entry["ua"] == 1.0 and entry["ua_std"] == 0.0


def test_undefined_values_are_left_out_of_the_mean():
    entry = mean_entry([dict(ROWS[1], ua=None), ROWS[3], dict(ROWS[1], ua=True)])
    assert entry["ua"] == 2.0  # None and a boolean are no numbers
    assert mean_entry([dict(ROWS[1], fnr=None)]).get("fnr") is None


def test_forget_sets_are_kept_apart():
    other = [dict(r, forget="random-50pct", ua=r["ua"] + 10) for r in ROWS]
    summary = Study(ROWS + other).summary
    assert list(summary) == [SCENARIO, ("crop-flip", "random-50pct")]
    by_key = {(e["forget"], e["method"]): e for entries in summary.values() for e in entries}
    assert by_key[("random-50pct", "salun")]["ua"] == pytest.approx(11.0)
    assert by_key[("random-10pct", "salun")]["ua"] == pytest.approx(1.0)


def test_augmentation_modes_are_kept_apart_not_pooled_as_seeds():
    """The same forget set, methods and seeds under two modes: two scenarios, each mean over
    its own mode's seeds only (pooled, salun's UA would be 6 with 4 seeds)."""
    other = [dict(r, aug="none", ua=r["ua"] + 10) for r in ROWS]
    found = groups(other + ROWS)
    assert list(found) == [("none", "random-10pct"), SCENARIO]  # first-seen order
    assert [len(rows) for rows in found[SCENARIO].values()] == [2, 2]
    summary = Study(ROWS + other).summary
    salun = {aug: next(e for e in summary[(aug, "random-10pct")] if e["method"] == "salun")
             for aug in ("crop-flip", "none")}  # fmt: skip
    assert salun["crop-flip"]["ua"] == pytest.approx(1.0)
    assert salun["none"]["ua"] == pytest.approx(11.0)
    assert salun["none"]["n_seeds"] == 2
    by_method = [other[0], other[2], other[1], other[3]]  # method by method, seeds in order
    assert Study(ROWS + other).scenario_rows(("none", "random-10pct")) == by_method
    assert Study(ROWS + other).n_seeds == 2


def test_roles_come_from_the_rows_else_from_the_method_name():
    """A relabelled Retrain is still the reference; a row written before roles were recorded
    takes its role from its method's name."""
    relabelled = [dict(r, method="retrain-long") if r["role"] == "retrain" else r for r in ROWS]
    entries = Study(relabelled).summary[SCENARIO]
    assert reference_entry(entries)["method"] == "retrain-long"
    legacy = [{k: v for k, v in r.items() if k != "role"} for r in ROWS]
    entries = Study(legacy).summary[SCENARIO]
    assert [e["role"] for e in entries] == ["retrain", "method"]
    assert reference_entry(entries)["method"] == "retrain"
    assert reference_entry(entries, "original") is None


def test_by_role_gives_the_reference_rows_by_seed():
    assert by_role(ROWS, "retrain") == {0: ROWS[0], 1: ROWS[2]}
    assert by_role(ROWS, "original") == {}


def test_paired_gaps_pair_each_row_with_its_own_seeds_reference():
    """salun's TA against Retrain's: 88 - 90 and 90 - 92 (-2 each; against the other seed's it
    would be 0 and -4, the same mean but only by chance: UA gives -1 and -1, crosswise -3, 1)."""
    salun, retrain = [r for r in ROWS if r["method"] == "salun"], by_role(ROWS, "retrain")
    assert mean_paired_gap(salun, retrain, "ta") == pytest.approx(2.0)
    assert mean_paired_gap(salun, retrain, "ta", absolute=False) == pytest.approx(-2.0)
    assert mean_paired_gap(salun, retrain, "ua", absolute=False) == pytest.approx(-1.0)
    assert mean_paired_gap(salun, {0: retrain[0]}, "ua") == pytest.approx(1.0)  # seed 0 alone
    assert mean_paired_gap(salun, {}, "ua") is None
    assert mean_paired_gap(salun, retrain, "fnr") is None


def test_a_method_no_better_than_doing_nothing_is_found():
    entries = [{"method": "original", "role": "original", "ag": 0.87},
               {"method": "retrain", "role": "retrain", "ag": 0.0},
               {"method": "rl", "role": "method", "ag": 2.74},
               {"method": "salun", "role": "method", "ag": 0.40},
               {"method": "ga", "role": "method", "ag": None}]  # fmt: skip
    assert [e["method"] for e in no_better_than_nothing(entries)] == ["rl"]
    assert no_better_than_nothing(entries[1:]) == []  # no original: nothing to compare with


def test_analyses_register_once_and_report_after_the_built_in_ones(monkeypatch):
    monkeypatch.setattr(base, "ANALYSES", dict(base.ANALYSES))

    class Extra(Analysis):
        name, title, legend = "extra", "Extra", "an extra analysis"

    register_analysis(Extra)
    names = list(registered())
    assert names[:2] == ["sequential", "core"] and names[-1] == "extra"
    with pytest.raises(ValueError, match="registered already"):
        register_analysis(Extra)
