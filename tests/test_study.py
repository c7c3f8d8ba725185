"""The augmentation study: one scenario per mode, every phase uses it, AG compared to crop-flip."""

import csv

import pytest

from medunlearn import experiment
from medunlearn.config import ForgetConfig, MethodConfig, default_experiment
from medunlearn.report import aug_study_tables, relative_change, summarise

MODES = ["none", "crop-flip"]


def test_with_augment_sets_every_phase():
    config = default_experiment()
    scenario = experiment.with_augment(config, "crop-flip+trivialaugment")
    assert scenario.train.augment == "crop-flip+trivialaugment"
    assert all(m.params["augment"] == "crop-flip+trivialaugment" for m in scenario.methods)
    assert scenario.augmentations == []
    assert config.train.augment == "crop-flip"  # the original config is left as it was


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


def test_aug_table_gives_the_change_against_crop_flip():
    rows = [
        {"method": "salun", "aug": "crop-flip", "forget": "f", "seed": 0, "ag": 4.0},
        {"method": "salun", "aug": "none", "forget": "f", "seed": 0, "ag": 5.0},
        {"method": "salun", "aug": "trivial", "forget": "f", "seed": 0, "ag": 3.0},
        {"method": "salun", "aug": "trivial", "forget": "f", "seed": 1, "ag": 2.0},
    ]
    ((title, columns, cells),) = aug_study_tables(summarise(rows))
    assert title == "AG by augmentation, forget set f"
    assert [c.key for c in columns] == ["crop-flip", "none", "trivial"]
    assert cells == [["salun", "4.00", "5.00 (+25.0%)", "2.50±0.71 (-37.5%)"]]
    assert relative_change(4.0, 3.0) == pytest.approx(-25.0)


def test_single_mode_has_no_aug_table():
    rows = [{"method": "salun", "aug": "crop-flip", "forget": "f", "seed": 0, "ag": 4.0}]
    assert aug_study_tables(summarise(rows)) == []
