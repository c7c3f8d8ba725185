"""What every registered analysis owes, checked on each one over a study it applies to: tables
whose lines fill their columns, a legend, exactly the figures it names (each drawable), checks
in the report's shape, and nothing at all for an empty study."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.figure import Figure

from medunlearn.analyses.base import Analysis, Study, registered
from medunlearn.analyses.plots import save_png
from medunlearn.analyses.tables import Table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
ANALYSES = list(registered())


@pytest.fixture(params=ANALYSES)
def analysis(request: pytest.FixtureRequest) -> Analysis:
    """Each registered analysis in turn."""
    return registered()[request.param]


def test_the_built_in_analyses_are_registered_in_report_order() -> None:
    assert ANALYSES == ["sequential", "core", "clinical", "privacy", "augmentation", "difficulty",
                        "forget_size", "subgroups", "tuning_overhead", "sharding"]  # fmt: skip


def test_it_applies_to_the_rich_study(analysis: Analysis, rich_study: Study) -> None:
    assert analysis.applies(rich_study)


def test_its_tables_fill_their_columns(analysis: Analysis, rich_study: Study) -> None:
    tables = analysis.tables(rich_study)
    assert tables and all(isinstance(table, Table) for table in tables)
    for table in tables:
        assert table.title and table.cells, table.title
        width = len(table.columns) + 1  # the first column (the method) and one per column
        assert all(len(line) == width for line in table.cells), table.title
        assert all(isinstance(text, str) and text for line in table.cells for text in line)
        assert len(table.markdown()) == 5 + len(table.cells)  # blank, heading, blank, header, rule
        assert table.rich().row_count == len(table.cells)


def test_it_says_how_to_read_it(analysis: Analysis) -> None:
    assert isinstance(analysis.name, str) and analysis.name
    assert isinstance(analysis.title, str) and analysis.title.strip()
    assert isinstance(analysis.legend, str) and analysis.legend.strip()


def test_it_draws_exactly_the_figures_it_names(
    analysis: Analysis, rich_study: Study, tmp_path: Path
) -> None:
    figures = analysis.draw(rich_study)
    assert sorted(figures) == sorted(analysis.figures)
    for name, figure in figures.items():
        assert isinstance(figure, Figure), name
        save_png(figure, tmp_path / name)
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC, name


def test_its_checks_name_a_scenario_and_their_lines(analysis: Analysis, rich_study: Study) -> None:
    for where, lines in analysis.checks(rich_study):
        assert isinstance(where, str) and where
        assert lines and all(isinstance(line, str) and line for line in lines)


def test_it_does_not_apply_to_an_empty_study(analysis: Analysis) -> None:
    assert not analysis.applies(Study([]))
