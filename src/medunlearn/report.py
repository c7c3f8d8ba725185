"""Result tables as the studies print them (gap to Retrain in parentheses): terminal, Markdown, CSV."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from medunlearn.config import UserError
from medunlearn.store import atomic_write_json, atomic_write_text

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


@dataclass(frozen=True)
class Column:
    """A table column: the row key, its header, and whether its gap to Retrain is shown."""

    key: str
    header: str
    gap: bool = True


UNLEARNING_TABLE = (
    Column("ua", "UA"),
    Column("ra", "RA"),
    Column("ta", "TA"),
    Column("mia", "MIA"),
    Column("ag", "AG", gap=False),
    Column("rte_min", "RTE (min)", gap=False),
)
CLINICAL_TABLE = (
    Column("ubac", "UBAC"),
    Column("rbac", "RBAC"),
    Column("tbac", "TBAC"),
    Column("mia", "MIA"),
    Column("fnr", "FNR"),
    Column("risk_1", "Risk I"),
    Column("risk_2", "Risk II"),
)


def _numbers(rows: Sequence[dict], key: str) -> list[float]:
    """The defined numeric values of `key` across rows."""
    return [float(r[key]) for r in rows if isinstance(r.get(key), int | float)]


def summarise(rows: Sequence[dict]) -> list[dict]:
    """Mean and std over seeds for each (augmentation, forget set, method), in first-seen order."""
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row.get("aug", ""), row["forget"], row["method"]), []).append(row)
    summary = []
    for (aug, forget, method), members in groups.items():
        entry: dict = {"aug": aug, "forget": forget, "method": method, "n_seeds": len(members)}
        for key in members[0]:
            values = _numbers(members, key)
            if key in ("seed", "aug", "forget", "method") or not values:
                continue
            entry[key] = statistics.fmean(values)
            entry[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        summary.append(entry)
    return summary


def _cell(entry: dict, reference: dict | None, column: Column) -> str:
    """'mean' or 'mean±std', with '(gap)' to Retrain where the column shows it."""
    value = entry.get(column.key)
    if value is None:
        return "n/a"
    text = f"{value:.2f}"
    if entry.get("n_seeds", 1) > 1:
        text += f"±{entry.get(column.key + '_std', 0.0):.2f}"
    if column.gap and reference is not None and reference.get(column.key) is not None:
        text += f" ({abs(value - reference[column.key]):.2f})"
    return text


def table_rows(
    summary: Sequence[dict], scenario: tuple[str, str], columns: Sequence[Column]
) -> list[list[str]]:
    """Cells of one (augmentation, forget set) table: one row per method."""
    entries = [e for e in summary if (e["aug"], e["forget"]) == scenario]
    reference = next((e for e in entries if e["method"] == "retrain"), None)
    return [[e["method"], *(_cell(e, reference, c) for c in columns)] for e in entries]


def _tables(rows: Sequence[dict]) -> list[tuple[str, Sequence[Column], list[list[str]]]]:
    """(title, columns, cells) of every table the rows call for."""
    summary = summarise(rows)
    binary = any(r.get("fnr") is not None or "tbac" in r for r in rows)
    layouts = [("", UNLEARNING_TABLE)] + ([("clinical", CLINICAL_TABLE)] if binary else [])
    tables = []
    for aug, forget in dict.fromkeys((e["aug"], e["forget"]) for e in summary):
        for kind, columns in layouts:
            title = f"forget set {forget}, augmentation {aug}" + (f" — {kind}" if kind else "")
            tables.append((title, columns, table_rows(summary, (aug, forget), columns)))
    return tables + aug_study_tables(summary)


def _ag_cell(entry: dict | None, baseline: dict | None) -> str:
    """AG (±std) and its relative change against the crop-flip baseline."""
    if entry is None or entry.get("ag") is None:
        return "n/a"
    text = f"{entry['ag']:.2f}"
    if entry.get("n_seeds", 1) > 1:
        text += f"±{entry.get('ag_std', 0.0):.2f}"
    if baseline is not None and baseline is not entry and baseline.get("ag"):
        text += f" ({relative_change(baseline['ag'], entry['ag']):+.1f}%)"
    return text


def relative_change(baseline: float, value: float) -> float:
    """Percent change of value against baseline (negative: AG reduced)."""
    return 100.0 * (value - baseline) / baseline


def aug_study_tables(summary: Sequence[dict]) -> list[tuple[str, Sequence[Column], list]]:
    """Per forget set: AG of each method under each augmentation mode, change vs crop-flip."""
    modes = list(dict.fromkeys(e["aug"] for e in summary))
    if len(modes) < 2:
        return []
    index = {(e["aug"], e["forget"], e["method"]): e for e in summary}
    tables = []
    for forget in dict.fromkeys(e["forget"] for e in summary):
        methods = dict.fromkeys(
            e["method"] for e in summary
            if e["forget"] == forget and e["method"] not in ("original", "retrain")
        )  # fmt: skip
        cells = [
            [method, *(_ag_cell(index.get((mode, forget, method)),
                                index.get(("crop-flip", forget, method))) for mode in modes)]
            for method in methods
        ]  # fmt: skip
        columns = [Column(mode, mode, gap=False) for mode in modes]
        tables.append((f"AG by augmentation, forget set {forget}", columns, cells))
    return tables


def rich_tables(rows: Sequence[dict]) -> list[Table]:
    """The tables for a terminal."""
    tables = []
    for title, columns, cells in _tables(rows):
        table = Table(title=title)
        table.add_column("method", style="bold")
        for column in columns:
            table.add_column(column.header, justify="right")
        for line in cells:
            table.add_row(*line)
        tables.append(table)
    return tables


def markdown_report(rows: Sequence[dict], title: str) -> str:
    """The tables as Markdown, with a line on how to read them."""
    lines = [
        f"# {title}",
        "",
        "Metrics in percent (mean±std over seeds where several ran); the gap to Retrain "
        "(|method - Retrain|) in parentheses; AG = mean gap over UA, RA, TA, MIA; RTE in "
        "minutes (for `original`, its training time). In the augmentation study tables, the "
        "change of AG against crop-flip is in parentheses (negative: closer to Retrain).",
    ]
    for table_title, columns, cells in _tables(rows):
        lines += ["", f"## {table_title}", ""]
        lines.append("| method | " + " | ".join(c.header for c in columns) + " |")
        lines.append("|---" * (len(columns) + 1) + "|")
        lines += ["| " + " | ".join(line) + " |" for line in cells]
    return "\n".join(lines) + "\n"


def csv_text(rows: Sequence[dict]) -> str:
    """All rows as CSV: the fixed columns first, then every other scalar key in first-seen
    order (the attacks' curves and histograms are in results.json only)."""
    keys = list(FIRST_COLUMNS)
    for row in rows:
        keys += [k for k, v in row.items() if k not in keys and not isinstance(v, dict | list)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in keys})
    return buffer.getvalue()


def write_results(out: Path, rows: Sequence[dict], config: object) -> None:
    """results.csv, results.json, report.md and the figures the rows call for, in `out`."""
    from medunlearn.figures import ag_by_aug_figure, clinical_figure

    title = getattr(config, "name", "results")
    atomic_write_text(out / "results.csv", csv_text(rows))
    atomic_write_json(out / "results.json", list(rows))
    atomic_write_text(out / "report.md", markdown_report(rows, title))
    if any(r.get("fnr") is not None for r in rows):
        clinical_figure(list(rows), out / "clinical.png", f"{title}: clinical safety on test")
    if len({r.get("aug") for r in rows}) > 1:
        ag_by_aug_figure(list(rows), out / "ag_by_aug.png", f"{title}: AG by augmentation")


def read_results(out: Path) -> list[dict]:
    """The rows a run wrote (results.json), or a clear error when there are none."""
    path = Path(out) / "results.json"
    if not path.is_file():
        raise UserError(f"no results in {out}: run `medunlearn run --out {out}` first")
    return json.loads(path.read_text())
