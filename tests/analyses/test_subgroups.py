"""Subgroup bias: each method's UA and TA gap to Retrain within each class, seed by seed, then
the mean; the worst class; their heatmaps."""

from __future__ import annotations

import numpy as np

from medunlearn.analyses.base import Study
from medunlearn.analyses.subgroups import Subgroups, class_gaps

SUBGROUPS = Subgroups()


def _class_row(method, seed, ua, ta, forget="random-10pct"):
    """A row with per-class UA and TA (lists by class) only."""
    role = "retrain" if method == "retrain" else "method"
    row = {"method": method, "role": role, "aug": "crop-flip", "forget": forget, "seed": seed}
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


def test_the_tables_give_each_class_and_the_worst():
    ua, ta = SUBGROUPS.tables(Study(CLASS_ROWS))
    assert (
        ua.title == "forget set random-10pct, augmentation crop-flip — per-class UA gap to Retrain"
    )
    assert "per-class TA gap to Retrain" in ta.title
    assert [c.header for c in ua.columns] == ["class 0", "class 1", "worst"]
    assert ua.cells == [["ft", "2.00", "5.00", "5.00"]]
    assert ta.cells == [["ft", "3.00", "10.00", "10.00"]]


def test_an_undefined_class_gap_is_na():
    rows = [r if r["method"] == "retrain" else dict(r, ua_c1=None) for r in CLASS_ROWS]
    ua, _ = SUBGROUPS.tables(Study(rows))
    assert ua.cells == [["ft", "2.00", "n/a", "2.00"]]


def test_it_needs_retrain_and_per_class_columns():
    assert SUBGROUPS.applies(Study(CLASS_ROWS))
    assert class_gaps([r for r in CLASS_ROWS if r["method"] != "retrain"]) is None
    assert not SUBGROUPS.applies(Study([r for r in CLASS_ROWS if r["method"] != "retrain"]))
    bare = [{k: v for k, v in r.items() if "_c" not in k} for r in CLASS_ROWS]
    assert not SUBGROUPS.applies(Study(bare))


def test_the_reference_is_found_by_role():
    relabelled = [dict(r, method="retrain (long)") if r["role"] == "retrain" else r
                  for r in CLASS_ROWS]  # fmt: skip
    assert class_gaps(relabelled).gaps["ua"].tolist() == [[2.0, 5.0]]


def test_the_heatmaps_show_the_gaps_per_scenario():
    rows = CLASS_ROWS + [dict(r, aug="none") for r in CLASS_ROWS]
    figure = SUBGROUPS.draw(Study(rows))["subgroups.png"]
    heatmaps = [a for a in figure.axes if a.images]  # the colour bars are axes too
    assert [a.get_title() for a in heatmaps] == [
        "|UA_c − Retrain|, forget set random-10pct, augmentation crop-flip",
        "|TA_c − Retrain|, forget set random-10pct, augmentation crop-flip",
        "|UA_c − Retrain|, forget set random-10pct, augmentation none",
        "|TA_c − Retrain|, forget set random-10pct, augmentation none",
    ]
    assert np.asarray(heatmaps[1].images[0].get_array()).tolist() == [[3.0, 10.0]]
