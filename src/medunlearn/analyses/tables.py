"""Tables of results: one number formatter, cells with their spread and gap to Retrain, and
rendering as Markdown, rich (terminal) or CSV."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from rich.table import Table as RichTable

from medunlearn.metrics.registry import Column

NA = "n/a"


def fmt(value: object, digits: int | None = 2, signed: bool = False) -> str:
    """The one number formatter of every table: `digits` decimals (None: 4 significant
    digits; a sign where asked), 'n/a' for a missing or undefined value; text passes through."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NA
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    spec = ".4g" if digits is None else f".{digits}f"
    return format(value, ("+" if signed else "") + spec)


def cell(entry: Mapping, reference: Mapping | None, column: Column) -> str:
    """'mean', 'mean±std' over seeds, with '(gap)' to Retrain where the column shows it."""
    value = entry.get(column.key)
    if value is None:
        return NA
    text = fmt(value, column.digits)
    if entry.get("n_seeds", 1) > 1:
        text += f"±{fmt(entry.get(column.key + '_std', 0.0), column.digits)}"
    if column.gap and reference is not None and reference.get(column.key) is not None:
        text += f" ({fmt(abs(value - reference[column.key]), column.digits)})"
    return text


@dataclass
class Table:
    """A titled table: the header of its first column, its columns, one line of cells per row."""

    title: str
    columns: Sequence[Column]
    cells: list[list[str]]
    first: str = "method"

    def markdown(self) -> list[str]:
        """The table as Markdown lines, under a heading."""
        lines = ["", f"### {self.title}", ""]
        lines.append(f"| {self.first} | " + " | ".join(c.header for c in self.columns) + " |")
        lines.append("|---" * (len(self.columns) + 1) + "|")
        return lines + ["| " + " | ".join(line) + " |" for line in self.cells]

    def rich(self) -> RichTable:
        """The table for a terminal."""
        table = RichTable(title=self.title)
        table.add_column(self.first, style="bold")
        for column in self.columns:
            table.add_column(column.header, justify="right")
        for line in self.cells:
            table.add_row(*line)
        return table


def csv_text(rows: Sequence[Mapping], first: Sequence[str] = ()) -> str:
    """Rows as CSV: the `first` columns, then every other scalar key in first-seen order (lists
    and mappings, such as the attacks' curves, are left to the JSON)."""
    keys = list(first)
    for row in rows:
        keys += [k for k, v in row.items() if k not in keys and not isinstance(v, dict | list)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in keys})
    return buffer.getvalue()
