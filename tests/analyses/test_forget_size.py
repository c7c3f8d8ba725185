"""TA against forget size: each method's TA minus the original model's and minus Retrain's at
each random forget fraction, seed by seed, per augmentation mode."""

from __future__ import annotations

import pytest

from medunlearn.analyses.base import Study
from medunlearn.analyses.forget_size import ForgetSize, forget_size_gaps, percent
from medunlearn.config import ForgetConfig

FORGET_SIZE = ForgetSize()
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


def _rows(aug: str = "crop-flip", shift: float = 0.0) -> list[dict]:
    """TA of the original model, Retrain and ft on every forget set and seed."""
    return [
        {"method": method, "role": method if method != "ft" else "method", "aug": aug,
         "forget": forget, "seed": seed, "ta": ta + (shift if method == "ft" else 0.0)}
        for forget, methods in SIZE_TA.items()
        for method, values in {"original": tuple(ORIGINAL_TA.values()), **methods}.items()
        for seed, ta in enumerate(values)
    ]  # fmt: skip


def test_gaps_compare_each_size_with_its_own_original_and_retrain():
    """ft at 10%: 87 - 90, 93 - 94 -> -2 to the original; 87 - 89, 93 - 92 -> -0.5 to Retrain.
    At 50%: -10, -8 -> -9; -5, -4 -> -4.5. Retrain to the original: -1.5 and -4.5. The easy forget
    set is no size point."""
    (found,) = forget_size_gaps(Study(_rows(), specs=SIZE_SPECS))
    assert found.aug == "crop-flip"
    assert found.fractions == [0.1, 0.5]
    assert found.to_original == {"retrain": [-1.5, -4.5], "ft": [-2.0, -9.0]}
    assert found.to_retrain == {"retrain": [0.0, 0.0], "ft": [-0.5, -4.5]}


def test_the_tables_give_the_gaps_by_forget_size():
    original, retrain = FORGET_SIZE.tables(Study(_rows(), specs=SIZE_SPECS))
    assert original.title == "TA − original model by forget size, augmentation crop-flip"
    assert [c.header for c in original.columns] == ["forget 10%", "forget 50%"]
    assert original.cells == [["retrain", "-1.50", "-4.50"], ["ft", "-2.00", "-9.00"]]
    assert retrain.title.startswith("TA − Retrain by forget size")
    assert retrain.cells[1] == ["ft", "-0.50", "-4.50"]
    assert percent(0.05) == "5%"


def test_one_random_size_gives_no_curve():
    study = Study(_rows(), specs=SIZE_SPECS[1:])
    assert forget_size_gaps(study) == []
    assert not FORGET_SIZE.applies(study)
    assert not FORGET_SIZE.applies(Study(_rows()))  # no config: no forget specs


def test_each_augmentation_mode_has_its_own_curves():
    study = Study(_rows() + _rows("none", shift=1.0), specs=SIZE_SPECS)
    first, second = forget_size_gaps(study)
    assert (first.aug, second.aug) == ("crop-flip", "none")
    assert second.to_original["ft"] == pytest.approx([-1.0, -8.0])
    assert first.to_original["ft"] == pytest.approx([-2.0, -9.0])
    figure = FORGET_SIZE.draw(study)["forget_size.png"]
    assert [a.get_title() for a in figure.axes] == [
        "TA − original model, augmentation crop-flip", "TA − Retrain, augmentation crop-flip",
        "TA − original model, augmentation none", "TA − Retrain, augmentation none"
    ]  # fmt: skip
    ft = next(line for line in figure.axes[2].lines if line.get_label() == "ft")
    assert list(ft.get_xdata()) == [10.0, 50.0]
    assert list(ft.get_ydata()) == pytest.approx([-1.0, -8.0])
