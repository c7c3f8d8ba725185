"""The tuning overhead: each tuned method's run time beside its search's cost and Retrain's,
the speed-up with and without the search counted, and the requests that repay it."""

from __future__ import annotations

import pytest

from medunlearn.analyses.base import Study
from medunlearn.analyses.tuning_overhead import TuningOverhead, overhead_rows

OVERHEAD = TuningOverhead()


def _summary(method: str, rte: float, retrain: float, tune_min: float) -> dict:
    """A `medunlearn tune` summary: the search's cost and the held-out entries."""
    held_out = [
        {"method": "retrain (long)", "role": "retrain", "rte_min": retrain, "ag": 0.0},
        {"method": f"{method}-untuned", "role": "method", "rte_min": 9.0, "ag": 4.0},
        {"method": f"{method}-tuned", "role": "method", "rte_min": rte, "ag": 1.5},
    ]
    return {"method": method, "cost": {"tune_min": tune_min, "trials": 8}, "held_out": held_out}


def test_speed_ups_and_break_even_by_hand():
    """salun: Retrain 10 min, tuned 2 min, search 40 min: speed-up 5, 10 / 42 with the search,
    and 40 / (10 - 2) = 5 requests to repay it. rl is slower than Retrain: it never repays."""
    salun, rl = overhead_rows([_summary("salun", 2.0, 10.0, 40.0), _summary("rl", 12.0, 10.0, 6.0)])
    assert salun == pytest.approx({"method": "salun", "ag": 1.5, "rte_min": 2.0,
                                   "retrain_min": 10.0, "tune_min": 40.0, "trials": 8,
                                   "speedup": 5.0, "speedup_tuned": 10 / 42,
                                   "break_even": 5.0})  # fmt: skip
    assert rl["break_even"] is None and rl["speedup"] == pytest.approx(10 / 12)
    assert overhead_rows([_summary("ga", 0.0, 10.0, 5.0)])[0]["speedup"] is None  # no run time


def test_the_table_and_figure():
    study = Study([], "tuned", tunings=[_summary("salun", 2.0, 10.0, 40.0)])
    (table,) = OVERHEAD.tables(study)
    assert table.cells == [["salun", "1.50", "2.00", "10.00", "40.00", "8", "5.0", "0.24", "5.0"]]
    assert len(table.columns) + 1 == len(table.cells[0])
    (axes,) = OVERHEAD.draw(study)["overhead.png"].axes
    assert [p.get_height() for p in axes.patches] == pytest.approx([2.0, 42.0])
    assert axes.lines[0].get_ydata()[0] == pytest.approx(10.0)  # Retrain, dashed


def test_it_applies_to_tunings_only():
    assert OVERHEAD.applies(Study([], tunings=[_summary("salun", 2.0, 10.0, 40.0)]))
    assert not OVERHEAD.applies(Study([{"method": "ft", "seed": 0, "ag": 1.0}]))
