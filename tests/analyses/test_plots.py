"""The figure helpers: mean and std over seeds skipping undefined values, a colour per method,
PNG files written atomically."""

from __future__ import annotations

from pathlib import Path

import pytest

from medunlearn.analyses.plots import colours, grid_figure, save_png, seed_stat

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_seed_stat_skips_none_and_gives_std_only_for_several_values() -> None:
    rows = [{"fnr": 10.0}, {"fnr": None}, {"fnr": 14.0}, {}]
    stat = seed_stat(rows, "fnr")
    assert stat.mean == pytest.approx(12.0)
    assert stat.std == pytest.approx(2.8284271)
    assert seed_stat(rows[:1], "fnr").std is None
    assert seed_stat([{"fnr": None}], "fnr").mean is None


def test_the_original_model_is_grey_and_every_other_method_has_its_own_colour() -> None:
    palette = colours(["original", "ft", "rl", "salun"])
    assert palette["original"] == "0.6"
    assert len({palette[m] for m in ("ft", "rl", "salun")}) == 3


def test_a_png_replaces_an_existing_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "new" / "figure.png"  # the folder does not exist yet
    save_png(grid_figure(1, 1, 2.0, 2.0), path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    path.write_bytes(b"old")
    save_png(grid_figure(2, 3, 2.0, 2.0), path)
    assert path.read_bytes()[:8] == PNG_MAGIC
    assert [p.name for p in path.parent.iterdir()] == ["figure.png"]
