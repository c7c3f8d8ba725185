"""A run's result files: results.csv and results.json (every row), report.md (the tables,
legends and checks of every analysis that applies) and the analyses' figures."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from rich.table import Table as RichTable

from medunlearn.analyses.base import Analysis, Study, registered
from medunlearn.analyses.plots import save_png
from medunlearn.analyses.tables import csv_text
from medunlearn.config import ExperimentConfig, UserError
from medunlearn.store import atomic_write_json, atomic_write_text

# the fixed first columns of results.csv; every other column follows in first-seen order
FIRST_COLUMNS = (
    "method",
    "aug",
    "forget",
    "seed",
    "ua",
    "ra",
    "ta",
    "mia",
    "ag",
    "rte_min",
    "speedup",
)


def study_of(rows: Sequence[dict], config: ExperimentConfig | None = None) -> Study:
    """The study the analyses read: the rows, and the config's title and forget specs."""
    if config is None:
        return Study(list(rows))
    return Study(list(rows), config.name, list(config.forget))


def applicable(study: Study) -> list[Analysis]:
    """The analyses that apply to a study, in report order."""
    return [analysis for analysis in registered().values() if analysis.applies(study)]


def results_csv(rows: Sequence[dict]) -> str:
    """results.csv: every row's scalar columns, the fixed ones first."""
    return csv_text(rows, FIRST_COLUMNS)


def markdown_report(study: Study) -> str:
    """report.md: per analysis that applies, its title, legend and tables; then the checks."""
    lines = [f"# {study.title}"]
    analyses = applicable(study)
    for analysis in analyses:
        lines += ["", f"## {analysis.title}", "", analysis.legend]
        for table in analysis.tables(study):
            lines += table.markdown()
    for analysis in analyses:
        for where, checks in analysis.checks(study):
            lines += ["", f"## checks: {where}", ""]
            lines += [f"- {check}" for check in checks]
    return "\n".join(lines) + "\n"


def write_figures(out: Path, study: Study) -> list[Path]:
    """Every applicable analysis's figures, as PNG files in `out`."""
    written = []
    for analysis in applicable(study):
        for name, figure in analysis.draw(study).items():
            save_png(figure, out / name)
            written.append(out / name)
    return written


def write_results(out: Path, rows: Sequence[dict], config: ExperimentConfig | None) -> None:
    """results.csv, results.json, report.md and the figures the rows call for, in `out` (the
    analyses by forget size and kind read the config's forget specs)."""
    study = study_of(rows, config)
    atomic_write_text(out / "results.csv", results_csv(rows))
    atomic_write_json(out / "results.json", list(rows))
    atomic_write_text(out / "report.md", markdown_report(study))
    write_figures(out, study)


def rich_tables(study: Study) -> list[RichTable]:
    """The applicable analyses' tables, for a terminal."""
    return [table.rich() for analysis in applicable(study) for table in analysis.tables(study)]


def read_results(out: Path) -> list[dict]:
    """The rows a run wrote (results.json), or a clear error when there are none."""
    path = Path(out) / "results.json"
    if not path.is_file():
        raise UserError(f"no results in {out}: run `medunlearn run --out {out}` first")
    return json.loads(path.read_text())
