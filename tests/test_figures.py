"""The clinical figure: a PNG per call, written atomically, robust to undefined (None) values."""

from __future__ import annotations

from pathlib import Path

import pytest

from medunlearn.config import ForgetConfig
from medunlearn.figures import (
    clinical_figure,
    forget_kinds_figure,
    forget_size_figure,
    seed_stat,
    subgroups_figure,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
METHODS = ("original", "retrain", "ft", "rl", "salun", "salun-cra")


def _rows(seeds: tuple[int, ...] = (0,), forgets: tuple[str, ...] = ("random-20pct",)) -> list:
    """Binary result rows as an experiment writes them (only the keys the figure reads)."""
    rows = []
    for forget in forgets:
        for seed in seeds:
            for i, method in enumerate(METHODS):
                fnr = 10.0 + 3 * i + seed
                rows.append(
                    {"method": method, "forget": forget, "seed": seed, "fnr": fnr,
                     "risk_1": fnr / 100, "risk_2": fnr / 20, "ua": 1.0}
                )  # fmt: skip
    return rows


def _is_png(path: Path) -> bool:
    """Whether the file exists and starts with the PNG signature."""
    return path.is_file() and path.read_bytes()[:8] == PNG_MAGIC


def test_png_is_written_for_binary_rows(tmp_path: Path) -> None:
    path = tmp_path / "figures" / "clinical.png"  # the folder does not exist yet
    clinical_figure(_rows(), path)
    assert _is_png(path)
    assert [p.name for p in path.parent.iterdir()] == ["clinical.png"]  # no temporary left


def test_several_seeds_and_forget_sets(tmp_path: Path) -> None:
    path = tmp_path / "clinical.png"
    clinical_figure(_rows((0, 1, 2), ("random-20pct", "random-50pct")), path)
    assert _is_png(path)


def test_an_existing_figure_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "clinical.png"
    path.write_bytes(b"old")
    clinical_figure(_rows(), path)
    assert _is_png(path)


def test_none_values_are_skipped_without_crashing(tmp_path: Path) -> None:
    rows = _rows((0, 1))
    rows[0]["fnr"] = None  # one seed of one method undefined
    for row in rows:
        if row["method"] in ("rl", "retrain"):
            row["risk_2"] = None  # a method and the reference undefined in every seed
        if row["method"] == "ft":
            del row["risk_1"]  # a key missing altogether
    path = tmp_path / "clinical.png"
    clinical_figure(rows, path)
    assert _is_png(path)


def test_rows_without_any_clinical_value_still_draw(tmp_path: Path) -> None:
    rows = [{"method": m, "forget": "random-10pct", "seed": 0, "ua": 1.0} for m in METHODS]
    path = tmp_path / "clinical.png"
    clinical_figure(rows, path)
    assert _is_png(path)


def test_no_rows_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no result rows"):
        clinical_figure([], tmp_path / "clinical.png")
    assert not list(tmp_path.iterdir())


def test_seed_stat_skips_none_and_gives_std_only_for_several_values() -> None:
    rows = [{"fnr": 10.0}, {"fnr": None}, {"fnr": 14.0}, {}]
    stat = seed_stat(rows, "fnr")
    assert stat.mean == pytest.approx(12.0)
    assert stat.std == pytest.approx(2.8284271)
    assert seed_stat(rows[:1], "fnr").std is None
    assert seed_stat([{"fnr": None}], "fnr").mean is None


def _analysis_rows() -> list[dict]:
    """Rows of random forget sets of two sizes and an easy and a hard one, two seeds, with
    per-class UA and TA (three classes)."""
    rows = []
    for forget in ("random-5pct", "random-50pct", "easy-5pct", "hard-5pct"):
        for seed in (0, 1):
            for i, method in enumerate(("original", "retrain", "ft", "rl")):
                row = {"method": method, "aug": "crop-flip", "forget": forget, "seed": seed,
                       "ua": 1.0 + i, "ra": 99.0, "ta": 90.0 - i - seed, "mia": 2.0,
                       "ag": i / 2}  # fmt: skip
                row |= {f"ua_c{c}": float(i * c) for c in range(3)}
                row |= {f"ta_c{c}": 90.0 - i * c for c in range(3)}
                rows.append(row)
    return rows


SPECS = [ForgetConfig("random", 0.05), ForgetConfig("random", 0.5), ForgetConfig("easy", 0.05),
         ForgetConfig("hard", 0.05)]  # fmt: skip


@pytest.mark.parametrize(
    ("draw", "needs_specs"),
    [(subgroups_figure, False), (forget_size_figure, True), (forget_kinds_figure, True)],
)
def test_analysis_figures_are_drawn_and_refuse_rows_without_their_data(
    tmp_path: Path, draw, needs_specs: bool
) -> None:
    path = tmp_path / "figure.png"
    rows = _analysis_rows()
    draw(rows, SPECS, path) if needs_specs else draw(rows, path)
    assert _is_png(path)
    bare = [{k: v for k, v in r.items() if "_c" not in k} for r in rows if r["method"] != "retrain"]
    with pytest.raises(ValueError, match="no "):
        draw(bare, SPECS[:1], path) if needs_specs else draw(bare, path)
