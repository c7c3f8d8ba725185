"""Easy, random and hard forget sets: each method's UA, RA, TA, MIA and AG on each, against that
forget set's own Retrain, per augmentation mode and fraction, in a table and forget_kinds.png."""

from __future__ import annotations

import pytest
from matplotlib.container import BarContainer

from medunlearn.analyses.base import Study
from medunlearn.analyses.difficulty import Difficulty, forget_kinds
from medunlearn.config import ForgetConfig

DIFFICULTY = Difficulty()
KIND_SPECS = [ForgetConfig("hard", 0.05), ForgetConfig("random", 0.05), ForgetConfig("easy", 0.05),
              ForgetConfig("random", 0.5)]  # fmt: skip


def _rows(aug: str = "crop-flip", shift: float = 0.0) -> list[dict]:
    """One seed: per forget set, Retrain and ft with made-up UA, RA, TA, MIA, AG."""
    values = {  # forget set -> (Retrain's UA, ft's UA)
        "easy-5pct": (0.5, 1.0),
        "random-5pct": (3.0, 2.0),
        "hard-5pct": (40.0, 30.0),
        "random-50pct": (5.0, 5.0),
    }
    return [
        {"method": method, "role": "retrain" if method == "retrain" else "method", "aug": aug,
         "forget": forget, "seed": 0, "ua": ua + shift, "ra": 99.0, "ta": 90.0, "mia": 2.0,
         "ag": 0.0 if method == "retrain" else 1.5, "rte_min": 1.0}
        for forget, pair in values.items()
        for method, ua in zip(("retrain", "ft"), pair, strict=True)
    ]  # fmt: skip


def test_forget_kinds_are_easy_random_hard_per_fraction_with_an_easy_or_hard_set():
    found = forget_kinds(KIND_SPECS)
    assert list(found) == [0.05]  # 50% has a random forget set only
    assert [s.display_name for s in found[0.05]] == ["easy-5pct", "random-5pct", "hard-5pct"]


def test_the_table_shows_easy_random_hard_against_their_own_retrain():
    (table,) = DIFFICULTY.tables(Study(_rows(), specs=KIND_SPECS))
    assert table.title == "easy / random / hard forget sets of 5%, augmentation crop-flip"
    assert [c.header for c in table.columns] == ["forget set", "UA", "RA", "TA", "MIA", "AG"]
    assert [line[:3] for line in table.cells] == [
        ["retrain", "easy-5pct", "0.50 (0.00)"],
        ["retrain", "random-5pct", "3.00 (0.00)"],
        ["retrain", "hard-5pct", "40.00 (0.00)"],
        ["ft", "easy-5pct", "1.00 (0.50)"],
        ["ft", "random-5pct", "2.00 (1.00)"],
        ["ft", "hard-5pct", "30.00 (10.00)"],
    ]
    assert table.cells[3][-1] == "1.50"  # AG, no gap of its own


def test_it_applies_only_with_an_easy_or_hard_forget_set():
    assert DIFFICULTY.applies(Study(_rows(), specs=KIND_SPECS))
    assert not DIFFICULTY.applies(Study(_rows(), specs=[ForgetConfig("random", 0.05)]))
    assert not DIFFICULTY.applies(Study(_rows()))  # no config: no forget specs


def test_each_augmentation_mode_has_its_own_table_and_row_of_panels():
    study = Study(_rows() + _rows("none", shift=10.0), specs=KIND_SPECS)
    first, second = DIFFICULTY.tables(study)
    assert (first.title[-9:], second.title[-4:]) == ("crop-flip", "none")
    assert second.cells[3][:3] == ["ft", "easy-5pct", "11.00 (0.50)"]
    figure = DIFFICULTY.draw(study)["forget_kinds.png"]
    assert len(figure.axes) == 2 * 5  # per mode: UA, RA, TA, MIA, AG
    ua_none = next(a for a in figure.axes if a.get_title() == "UA, none")
    heights = {(round(c.patches[0].get_x() + c.patches[0].get_width() / 2), c.get_label()):
               c.patches[0].get_height()
               for c in ua_none.containers if isinstance(c, BarContainer)}  # fmt: skip
    assert heights == pytest.approx({(0, "easy-5pct"): 10.5, (0, "random-5pct"): 13.0,
                                     (0, "hard-5pct"): 50.0, (1, "easy-5pct"): 11.0,
                                     (1, "random-5pct"): 12.0, (1, "hard-5pct"): 40.0})  # fmt: skip
