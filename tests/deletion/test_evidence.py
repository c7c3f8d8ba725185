"""A request's evidence: the forget gap by hand, the acceptance criteria a protocol derives (by
hand: the largest value seen or the t interval's upper end, whichever is higher), and the checks
of a request against them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from medunlearn.deletion.evidence import (
    STATISTICS,
    criteria_dicts,
    derive_criteria,
    forget_gap,
    measure,
    within,
)
from medunlearn.forget import ForgetSet

# Student's t quantiles (two-sided 95%), from the table
T_975 = {2: 4.302652729911275, 9: 2.262157162740992}


def test_forget_gap_by_hand():
    # 90% right on the forgotten images (UA 10) against 85% on test: 5 points better
    assert forget_gap({"ua": 10.0, "ta": 85.0}) == pytest.approx(5.0)
    # forgotten: worse on them than on unseen images
    assert forget_gap({"ua": 30.0, "ta": 80.0}) == pytest.approx(-10.0)
    assert forget_gap({"ua": 0.0, "ta": 100.0}) == 0.0


def test_criteria_by_hand_from_the_t_interval():
    rows = [{"pop_phi_matched_auc": auc, "forget_gap": gap}
            for auc, gap in ((0.4, 2.0), (0.6, 4.0), (0.5, 3.0))]  # fmt: skip
    criteria = {c.key: c for c in derive_criteria(rows, 0.95)}
    assert list(criteria) == [key for key, _ in STATISTICS]
    # mean 0.5, standard deviation 0.1, 3 values: 0.5 + t(0.975, 2) * 0.1 / sqrt(3)
    assert criteria["pop_phi_matched_auc"].bound == pytest.approx(
        0.5 + T_975[2] * 0.1 / math.sqrt(3)
    )
    assert criteria["pop_phi_matched_auc"].values == [0.4, 0.6, 0.5]
    # mean 3, standard deviation 1: 3 + t(0.975, 2) / sqrt(3)
    assert criteria["forget_gap"].bound == pytest.approx(3.0 + T_975[2] / math.sqrt(3))
    assert criteria["forget_gap"].label == dict(STATISTICS)["forget_gap"]


def test_criteria_never_fall_below_the_largest_value_seen():
    gaps = [0.0] * 9 + [10.0]  # mean 1, standard deviation sqrt(10): upper end 3.26 < 10
    rows = [{"forget_gap": gap} for gap in gaps]
    (criterion,) = derive_criteria(rows, 0.95)
    upper = 1.0 + T_975[9] * math.sqrt(10) / math.sqrt(10)
    assert upper < 10.0
    assert criterion.key == "forget_gap" and criterion.bound == 10.0


def test_criteria_of_one_request_and_of_missing_values():
    rows = [{"pop_phi_matched_auc": 0.55, "forget_gap": None}, {"pop_phi_matched_auc": None}]
    (criterion,) = derive_criteria(rows, 0.95)  # no interval from one value: the value itself
    assert criterion.key == "pop_phi_matched_auc" and criterion.bound == 0.55
    assert derive_criteria([{"ta": 80.0}], 0.95) == []


def test_a_wider_confidence_gives_a_higher_bound():
    rows = [{"forget_gap": gap} for gap in (1.0, 2.0, 4.0, 3.0)]
    (narrow,) = derive_criteria(rows, 0.8)
    (wide,) = derive_criteria(rows, 0.99)
    assert 4.0 <= narrow.bound < wide.bound


def test_within_checks_each_criterion():
    criteria = criteria_dicts(derive_criteria(
        [{"pop_phi_matched_auc": a, "forget_gap": g} for a, g in ((0.5, 1.0), (0.5, 1.0))], 0.95
    ))  # fmt: skip
    assert [c["bound"] for c in criteria] == [0.5, 1.0]  # no spread: the values themselves
    checks = within({"pop_phi_matched_auc": 0.5, "forget_gap": 1.5}, criteria)
    assert [(c["key"], c["value"], c["passed"]) for c in checks] == [
        ("pop_phi_matched_auc", 0.5, True),  # at the bound: within
        ("forget_gap", 1.5, False),
    ]
    assert checks[0]["bound"] == 0.5 and checks[0]["label"] == criteria[0]["label"]
    missing = within({"forget_gap": 0.2}, criteria)
    assert [(c["value"], c["passed"]) for c in missing] == [(None, False), (0.2, True)]
    assert within({"forget_gap": 0.2}, []) == []


def test_measure_reports_the_evidence_and_the_test_logits(original, blood, engine):
    ids = np.array([3, 9, 17, 30, 41, 52])
    forget_set = ForgetSet(ids, len(blood.train), blood.name, blood.fingerprint)
    columns, logits = measure(original, blood, forget_set, engine, seed=0)
    assert columns["forget_gap"] == pytest.approx((100 - columns["ua"]) - columns["ta"])
    for key in ("ta", "ua", "ece", "pop_phi_matched_auc"):
        assert columns[key] is not None, key
    assert columns["pop_phi_matched_auc_low"] <= columns["pop_phi_matched_auc"]
    assert columns["pop_phi_matched_auc"] <= columns["pop_phi_matched_auc_high"]
    assert tuple(logits.shape) == (len(blood.test), blood.n_classes)
