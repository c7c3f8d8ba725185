"""The clinical analysis: its table against Retrain, and clinical.png (FNR and Global Risk per
scenario and method), robust to undefined values and never pooling augmentation modes."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.container import BarContainer
from matplotlib.figure import Figure

from medunlearn.analyses.base import Study
from medunlearn.analyses.clinical import Clinical
from medunlearn.analyses.plots import save_png

CLINICAL = Clinical()
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
METHODS = ("original", "retrain", "ft", "rl", "salun", "salun-cra")
KEYS = ("fnr", "risk_1", "risk_2")


def _rows(seeds: tuple[int, ...] = (0,), forgets: tuple[str, ...] = ("random-20pct",)) -> list:
    """Binary result rows as an experiment writes them (only the keys the figure reads)."""
    rows = []
    for forget in forgets:
        for seed in seeds:
            for i, method in enumerate(METHODS):
                fnr = 10.0 + 3 * i + seed
                role = method if method in ("original", "retrain") else "method"
                rows.append(
                    {"method": method, "role": role, "aug": "crop-flip", "forget": forget,
                     "seed": seed, "fnr": fnr, "risk_1": fnr / 100, "risk_2": fnr / 20, "ua": 1.0}
                )  # fmt: skip
    return rows


def _draw(rows: list[dict]) -> Figure:
    """clinical.png's figure of the rows (the only one the analysis draws)."""
    figures = CLINICAL.draw(Study(rows, "clinical"))
    assert list(figures) == ["clinical.png"]
    return figures["clinical.png"]


def bars(figure: Figure) -> dict[tuple[str, str, str], float]:
    """(panel title, group tick label, method) -> bar height, read back from the drawn bars."""
    found = {}
    for axes in figure.axes:
        ticks = [label.get_text() for label in axes.get_xticklabels()]
        for container in axes.containers:
            if isinstance(container, BarContainer):
                (patch,) = container.patches
                group = round(patch.get_x() + patch.get_width() / 2)
                found[(axes.get_title(), ticks[group], container.get_label())] = patch.get_height()
    return found


def reference_lines(figure: Figure) -> dict[tuple[str, str], float]:
    """(panel title, group tick label) -> the height of Retrain's dashed line over that group."""
    found = {}
    for axes in figure.axes:
        ticks = [label.get_text() for label in axes.get_xticklabels()]
        for lines in axes.collections:
            if lines.get_label() == "retrain (reference)":
                for (x0, y0), (x1, _) in lines.get_segments():
                    found[(axes.get_title(), ticks[round((x0 + x1) / 2)])] = y0
    return found


def test_the_table_gives_each_clinical_column_against_retrain():
    rows = [dict(r, ubac=5.0 + i, rbac=99.0, tbac=90.0 - i, mia=2.0)
            for i, r in enumerate(_rows())]  # fmt: skip
    (table,) = CLINICAL.tables(Study(rows))
    assert table.title == "forget set random-20pct, augmentation crop-flip — clinical"
    headers = ["UBAC", "RBAC", "TBAC", "MIA", "FNR", "Risk I", "Risk II"]
    assert [c.header for c in table.columns] == headers
    ft = next(line for line in table.cells if line[0] == "ft")
    assert ft[1] == "7.00 (1.00)" and ft[3] == "88.00 (1.00)" and ft[5] == "16.00 (3.00)"


def test_it_applies_to_binary_rows_only():
    assert CLINICAL.applies(Study(_rows()))
    assert CLINICAL.applies(Study([{"method": "ft", "seed": 0, "tbac": 90.0}]))
    plain = [{"method": m, "forget": "random-10pct", "seed": 0, "ua": 1.0} for m in METHODS]
    assert not CLINICAL.applies(Study(plain))
    assert isinstance(CLINICAL.draw(Study(plain))["clinical.png"], Figure)  # all n/a, no crash
    assert not CLINICAL.applies(Study([]))


def test_a_png_is_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "figures" / "clinical.png"  # the folder does not exist yet
    save_png(_draw(_rows()), path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in path.parent.iterdir()] == ["clinical.png"]  # no temporary left


def test_bars_are_the_means_over_seeds_per_forget_set_with_retrain_dashed() -> None:
    figure = _draw(_rows((0, 1, 2), ("random-20pct", "random-50pct")))
    heights, lines = bars(figure), reference_lines(figure)
    fnr = figure.axes[0].get_title()
    for forget in ("random-20pct", "random-50pct"):
        group = f"forget {forget}"  # one augmentation mode: the label names the forget set only
        assert heights[(fnr, group, "ft")] == pytest.approx(17.0)  # 10 + 3 * 2 + mean seed 1
        assert lines[(fnr, group)] == pytest.approx(14.0)
    assert not any(method == "retrain" for _, _, method in heights)  # Retrain is the line
    assert len(heights) == 3 * 2 * (len(METHODS) - 1)


def test_none_values_are_skipped_without_crashing(tmp_path: Path) -> None:
    rows = _rows((0, 1))
    rows[0]["fnr"] = None  # one seed of one method undefined
    for row in rows:
        if row["method"] in ("rl", "retrain"):
            row["risk_2"] = None  # a method and the reference undefined in every seed
        if row["method"] == "ft":
            del row["risk_1"]  # a key missing altogether
    figure = _draw(rows)
    heights, risk_1, risk_2 = bars(figure), figure.axes[1].get_title(), figure.axes[2].get_title()
    group = "forget random-20pct"
    assert heights[(figure.axes[0].get_title(), group, "original")] == pytest.approx(11.0)
    assert (risk_1, group, "ft") not in heights and (risk_2, group, "rl") not in heights
    assert (risk_2, group) not in reference_lines(figure)
    na = [t.get_text() for axes in figure.axes for t in axes.texts if t.get_text() == "n/a"]
    assert len(na) == 2  # ft's Global Risk I, rl's Global Risk II
    save_png(figure, tmp_path / "clinical.png")
    assert (tmp_path / "clinical.png").read_bytes()[:8] == PNG_MAGIC


def test_augmentation_modes_are_never_pooled(two_modes: Study) -> None:
    """Defect 1: the figure grouped rows by forget set only, so two augmentation modes were
    averaged as if they were seeds. Each (mode, forget set) is its own group of bars, named
    after its mode, each bar and Retrain's line the mean over that mode's own seeds."""
    figure = CLINICAL.draw(two_modes)["clinical.png"]
    heights, lines = bars(figure), reference_lines(figure)
    for axes, key in zip(figure.axes, KEYS, strict=True):
        ticks = [label.get_text() for label in axes.get_xticklabels()]
        assert ticks == ["forget random-10pct\ncrop-flip", "forget random-10pct\nnone"]
        for aug, tick in zip(("crop-flip", "none"), ticks, strict=True):
            for method in ("original", "retrain", "ft", "salun"):
                own = [r[key] for r in two_modes.rows if (r["aug"], r["method"]) == (aug, method)]
                mean = sum(own) / len(own)
                drawn = lines[(axes.get_title(), tick)] if method == "retrain" else (
                    heights[(axes.get_title(), tick, method)])  # fmt: skip
                assert drawn == pytest.approx(mean), (key, aug, method)
