"""The sharding analysis: the price of sharding (TA, balanced accuracy, macro and worst-class
FNR against Retrain) and the cost of an exact deletion against a full Retrain, beside the
expected cost of a random request of its size; sisa.png draws both against the shards."""

from __future__ import annotations

import pytest

from medunlearn.analyses.base import Study
from medunlearn.analyses.sharding import Sharding, accuracies

SHARDING = Sharding()
FORGETS = ("random-1img", "random-10img")


def row(method: str, role: str, forget: str, ta_c: list[float], rte: float, **extra) -> dict:
    """A row of the crop-flip mode, seed 0, with its per-class test accuracies."""
    return {"method": method, "role": role, "aug": "crop-flip", "forget": forget, "seed": 0,
            "ta": sum(ta_c) / len(ta_c), "rte_min": rte,
            **{f"ta_c{c}": value for c, value in enumerate(ta_c)}, **extra}  # fmt: skip


def deletion(shards: int, share: float, expected: float) -> dict:
    """The columns an exact deletion's row records."""
    return {"shards": shards, "slices": 4, "shards_retrained": 1, "slices_retrained": 2,
            "shards_expected": 1.0, "retrain_share": share, "retrain_share_expected": expected,
            "exact": True}  # fmt: skip


@pytest.fixture
def study() -> Study:
    """Retrain at 2 minutes (its TA 93, its BA 94); sisa S=2 and S=4 costing a little, S=4 much more than expected on
    the 1-image request (0.5 of Retrain's time for 0.1 of the work)."""
    rows = []
    for forget in FORGETS:
        rows += [
            row("original", "original", forget, [96.0, 94.0], 1.0),
            row("retrain", "retrain", forget, [95.0, 93.0], 2.0, ta=93.0),
            row("ft", "method", forget, [90.0, 92.0], 0.3),
            row("sisa S=2", "method", forget, [94.0, 90.0], 0.8, **deletion(2, 0.3, 0.35)),
            row("sisa S=4", "method", forget, [92.0, 84.0], 1.0 if forget == FORGETS[0] else 0.4,
                **deletion(4, 0.1, 0.1)),
        ]  # fmt: skip
    return Study(rows, "sharded")


def test_balanced_accuracy_is_the_mean_class_accuracy_and_the_fnrs_its_misses():
    values = accuracies({"ta": 91.0, "ta_c0": 95.0, "ta_c1": 85.0, "ta_c1_std": 3.0})
    assert values == {"ta": 91.0, "ba": 90.0, "fnr_macro": 10.0, "fnr_worst": 15.0}
    assert accuracies({"ta": 91.0})["ba"] is None


def test_the_price_of_sharding_is_each_deletions_accuracy_against_retrain(study):
    price = SHARDING.tables(study)[0]
    assert price.title == "Price of sharding, augmentation crop-flip"
    lines = {line[0]: line[1:] for line in price.cells}
    assert list(lines) == ["original", "retrain", "sisa S=2", "sisa S=4"]  # not the approximate
    headers = [column.header for column in price.columns]
    sisa4 = dict(zip(headers, lines["sisa S=4"], strict=True))
    assert (sisa4["S"], sisa4["R"], sisa4["TA"], sisa4["BA"]) == ("4", "4", "88.00", "88.00")
    assert (sisa4["macro FNR"], sisa4["worst-class FNR"]) == ("12.00", "16.00")
    assert (sisa4["TA − Retrain"], sisa4["BA − Retrain"]) == ("-5.00", "-6.00")
    assert dict(zip(headers, lines["retrain"], strict=True))["S"] == "n/a"


def test_the_cost_of_a_deletion_is_set_against_retrains_run_time(study):
    costs = SHARDING.tables(study)[1:]
    assert [table.title for table in costs] == [
        f"Cost of an exact deletion, forget set {forget}, augmentation crop-flip"
        for forget in FORGETS
    ]
    headers = [column.header for column in costs[0].columns]
    first = {line[0]: dict(zip(headers, line[1:], strict=True)) for line in costs[0].cells}
    assert list(first) == ["sisa S=2", "sisa S=4"]
    assert (
        first["sisa S=4"]["time share"] == "0.50" and first["sisa S=4"]["Retrain (min)"] == "2.00"
    )
    assert (first["sisa S=2"]["work share"], first["sisa S=2"]["shards retrained"]) == (
        "0.30",
        "1.00",
    )


def test_a_deletion_whose_fixed_costs_set_its_time_is_flagged(study):
    checks = SHARDING.checks(study)
    assert len(checks) == 1
    where, lines = checks[0]
    assert where == "forget set random-1img, augmentation crop-flip"
    assert lines == [
        "sisa S=4: its run time was 0.50 of Retrain's for 0.10 of the work expected: its fixed "
        "costs (checking and reading the slice checkpoints), not its retraining, set its time."
    ]


def test_the_figure_draws_accuracy_and_cost_against_the_shards(study):
    figure = SHARDING.draw(study)["sisa.png"]
    price, cost = figure.axes
    ta = next(line for line in price.get_lines() if line.get_label() == "TA")
    assert list(ta.get_xdata()) == [2, 4] and list(ta.get_ydata()) == [92.0, 88.0]
    dashed = [line for line in price.get_lines() if line.get_linestyle() == "--"]
    assert sorted(line.get_ydata()[0] for line in dashed) == [93.0, 94.0]  # Retrain's BA and TA
    drawn = {line.get_label(): list(line.get_ydata()) for line in cost.get_lines()}
    assert drawn["random-1img"] == [0.4, 0.5] and drawn["random-10img"] == [0.4, 0.2]
    assert drawn["random-1img, expected work"] == [0.35, 0.1]


def test_it_applies_only_to_a_study_with_an_exact_deletion(study):
    assert SHARDING.applies(study)
    without = Study([r for r in study.rows if not r["method"].startswith("sisa")])
    assert not SHARDING.applies(without)
