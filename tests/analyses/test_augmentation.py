"""The augmentation study: one scenario per mode, every phase uses it, AG compared to crop-flip
in a table per forget set and in ag_by_aug.png."""

from __future__ import annotations

import csv

import pytest
from matplotlib.container import BarContainer

from medunlearn import experiment
from medunlearn.analyses.augmentation import Augmentation, relative_change
from medunlearn.analyses.base import Study
from medunlearn.config import ForgetConfig, MethodConfig

AUGMENTATION = Augmentation()
MODES = ["none", "crop-flip"]


def _row(aug: str, seed: int, ag: float, method: str = "salun", forget: str = "f") -> dict:
    role = method if method in ("original", "retrain") else "method"
    return {"method": method, "role": role, "aug": aug, "forget": forget, "seed": seed, "ag": ag}


ROWS = [_row("crop-flip", 0, 4.0), _row("none", 0, 5.0), _row("trivial", 0, 3.0),
        _row("trivial", 1, 2.0)]  # fmt: skip


def test_the_table_gives_the_change_against_crop_flip():
    (table,) = AUGMENTATION.tables(Study(ROWS))
    assert table.title == "AG by augmentation, forget set f"
    assert [c.key for c in table.columns] == ["crop-flip", "none", "trivial"]
    assert table.cells == [["salun", "4.00", "5.00 (+25.0%)", "2.50±0.71 (-37.5%)"]]
    assert relative_change(4.0, 3.0) == pytest.approx(-25.0)


def test_the_table_shows_methods_only_one_per_forget_set():
    """The references (by role, whatever their label) have no line; a mode without a method's
    row shows n/a; without crop-flip there is no change to give."""
    relabelled = dict(_row("none", 0, 0.0, "retrain (long)"), role="retrain")
    rows = [*ROWS, relabelled, _row("none", 0, 1.0, "original"),
            _row("none", 0, 7.0, forget="g"), _row("trivial", 0, 8.0, forget="g")]  # fmt: skip
    f, g = AUGMENTATION.tables(Study(rows))
    assert [line[0] for line in f.cells] == ["salun"]
    assert g.title.endswith("forget set g")
    assert g.cells == [["salun", "n/a", "7.00", "8.00"]]


def test_a_single_mode_is_no_augmentation_study():
    assert AUGMENTATION.applies(Study(ROWS))
    assert not AUGMENTATION.applies(Study(ROWS[:1]))


def test_the_figure_draws_each_method_under_each_mode():
    figure = AUGMENTATION.draw(Study([*ROWS, _row("none", 0, 0.0, "retrain")]))["ag_by_aug.png"]
    (axes,) = figure.axes
    assert axes.get_title() == "forget f"
    assert [t.get_text() for t in axes.get_xticklabels()] == ["salun"]  # no reference bars
    heights = {c.get_label(): c.patches[0].get_height()
               for c in axes.containers if isinstance(c, BarContainer)}  # fmt: skip
    assert heights == pytest.approx({"crop-flip": 4.0, "none": 5.0, "trivial": 2.5})


@pytest.mark.slow
def test_study_runs_each_mode_and_writes_the_aug_table(make_config, tmp_path):
    config = make_config([MethodConfig("retrain"), MethodConfig("ft", {"epochs": 1})])
    config.forget = [ForgetConfig(fraction=0.25), ForgetConfig(fraction=0.5)]
    config.augmentations = MODES
    rows = experiment.run(config, tmp_path / "out")
    assert {(r["aug"], r["forget"]) for r in rows} == {
        (m, f) for m in MODES for f in ("random-25pct", "random-50pct")
    }
    for mode in MODES:
        assert (tmp_path / "out" / "runs" / mode / "random-25pct" / "seed0" / "ft.json").is_file()
    with open(tmp_path / "out" / "results.csv") as handle:
        table = list(csv.DictReader(handle))
    assert {r["aug"] for r in table} == set(MODES)
    assert all(float(r["ag"]) == 0.0 for r in table if r["method"] == "retrain")
    report = (tmp_path / "out" / "report.md").read_text()
    assert "AG by augmentation, forget set random-25pct" in report
    assert "AG by augmentation, forget set random-50pct" in report
    figure = tmp_path / "out" / "ag_by_aug.png"
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "out" / "clinical.png").exists()  # not a binary task
