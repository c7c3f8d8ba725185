"""AG, per-metric gaps and speed-up against Retrain."""

import pytest

from medunlearn.metrics.gap import AG_METRICS, add_gaps, average_gap, gaps, speedup


def test_average_gap_of_known_numbers():
    method = {"ua": 1.0, "ra": 99.0, "ta": 90.0, "mia": 5.0}
    retrain = {"ua": 2.0, "ra": 100.0, "ta": 91.0, "mia": 3.0}
    assert average_gap(method, retrain) == pytest.approx(1.25)
    assert average_gap(retrain, method) == pytest.approx(1.25)
    assert average_gap(retrain, retrain) == 0.0
    assert AG_METRICS == ("ua", "ra", "ta", "mia")


def test_average_gap_ignores_other_keys_and_takes_given_keys():
    method = {"ua": 10.0, "ra": 90.0, "ta": 80.0, "mia": 20.0, "rte_min": 1.0}
    retrain = {"ua": 0.0, "ra": 100.0, "ta": 85.0, "mia": 10.0, "rte_min": 30.0}
    assert average_gap(method, retrain) == pytest.approx((10 + 10 + 5 + 10) / 4)
    assert average_gap(method, retrain, keys=("ta",)) == pytest.approx(5.0)


def test_gaps():
    out = gaps({"ua": 1.0, "ta": 90, "fnr": None, "name": "x"}, {"ua": 3.0, "ta": 91.5, "fnr": 2.0})
    assert out == {"ua": 2.0, "ta": 1.5, "fnr": None}


def test_speedup():
    assert speedup(20.0, 2.0) == pytest.approx(10.0)
    assert speedup(20.0, 0.0) is None


def _row(method, forget_key, ua, rte=1.0):
    return {"method": method, "aug": "none", "forget": "ids-ids", "forget_key": forget_key,
            "seed": 0, "ua": ua, "ra": 100.0, "ta": 90.0, "mia": 10.0, "rte_min": rte}  # fmt: skip


def test_gaps_take_the_retrain_of_the_same_forget_content_not_of_the_same_label():
    """Two forget sets that share a label each keep their own Retrain as the reference."""
    rows = [
        _row("retrain", "set-a", ua=10.0, rte=4.0),
        _row("ft", "set-a", ua=12.0),
        _row("retrain", "set-b", ua=50.0, rte=8.0),
        _row("ft", "set-b", ua=46.0),
    ]
    add_gaps(rows)
    assert [row["ag"] for row in rows] == [0.0, 0.5, 0.0, 1.0]
    assert [row["speedup"] for row in rows] == [1.0, 4.0, 1.0, 8.0]
