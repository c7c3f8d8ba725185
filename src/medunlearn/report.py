"""Result tables as the studies print them (gap to Retrain in parentheses): terminal, Markdown, CSV."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rich.table import Table

from medunlearn.config import UserError
from medunlearn.metrics.stats import Summary, paired_difference
from medunlearn.metrics.stats import summarise as summarise_values
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
    """A table column: the row key, its header, whether its gap to Retrain is shown, and its
    decimals (attack AUCs and TPRs are fractions, so three)."""

    key: str
    header: str
    gap: bool = True
    digits: int = 2


UNLEARNING_TABLE = (
    Column("ua", "UA"),
    Column("ra", "RA"),
    Column("ta", "TA"),
    Column("mia", "MIA"),
    Column("ag", "AG", gap=False),
    Column("rte_min", "RTE (min)", gap=False),
)
PRIVACY_TABLE = (
    Column("mia", "SVC MIA"),
    Column("pop_phi_auc", "phi AUC", digits=3),
    Column("pop_phi_tpr1", "phi TPR@1%", digits=3),
    Column("lira_auc", "LiRA AUC", digits=3),
    Column("lira_tpr1", "LiRA TPR@1%", digits=3),
    Column("lira_tpr01", "LiRA TPR@0.1%", digits=3),
    Column("rmia_auc", "RMIA AUC", digits=3),
    Column("rmia_tpr1", "RMIA TPR@1%", digits=3),
    Column("ulira_acc", "U-LiRA acc", gap=False, digits=3),
    Column("forget_quality", "F", gap=False, digits=3),
    Column("forget_score", "F x utility", gap=False, digits=3),
)
# the metrics whose paired difference to Retrain the statistics table gives
PAIRED_METRICS = (
    ("ua", "UA"),
    ("ra", "RA"),
    ("ta", "TA"),
    ("mia", "MIA"),
    ("lira_auc", "LiRA AUC"),
)
# the attacks whose sanity the report checks, by the key of their forget-vs-test AUC
CHECKED_ATTACKS = (("pop_phi", "the phi threshold attack"), ("lira", "offline LiRA"))
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
            stats = summarise_values(np.array(values))
            entry[key], entry[f"{key}_std"] = stats.mean, stats.std or 0.0
        summary.append(entry)
    return summary


def _cell(entry: dict, reference: dict | None, column: Column) -> str:
    """'mean' or 'mean±std', with '(gap)' to Retrain where the column shows it."""
    value = entry.get(column.key)
    if value is None:
        return "n/a"
    digits = column.digits
    text = f"{value:.{digits}f}"
    if entry.get("n_seeds", 1) > 1:
        text += f"±{entry.get(column.key + '_std', 0.0):.{digits}f}"
    if column.gap and reference is not None and reference.get(column.key) is not None:
        text += f" ({abs(value - reference[column.key]):.{digits}f})"
    return text


def no_better_than_nothing(entries: Sequence[dict]) -> list[dict]:
    """The methods whose mean AG is not below the original model's own (doing nothing)."""
    original = next((e for e in entries if e["method"] == "original"), None)
    if original is None or original.get("ag") is None:
        return []
    return [
        e for e in entries
        if e["method"] not in ("original", "retrain") and e.get("ag") is not None
        and e["ag"] >= original["ag"]
    ]  # fmt: skip


def table_rows(
    summary: Sequence[dict], scenario: tuple[str, str], columns: Sequence[Column]
) -> list[list[str]]:
    """Cells of one (augmentation, forget set) table: one row per method, a method no closer
    to Retrain than the original model marked with a dagger."""
    entries = [e for e in summary if (e["aug"], e["forget"]) == scenario]
    reference = next((e for e in entries if e["method"] == "retrain"), None)
    flagged = {e["method"] for e in no_better_than_nothing(entries)}
    return [
        [e["method"] + (" †" if e["method"] in flagged else ""),
         *(_cell(e, reference, c) for c in columns)]
        for e in entries
    ]  # fmt: skip


def _present(columns: Sequence[Column], entries: Sequence[dict]) -> list[Column]:
    """The columns some entry has a value for."""
    return [c for c in columns if any(e.get(c.key) is not None for e in entries)]


def _tables(rows: Sequence[dict]) -> list[tuple[str, Sequence[Column], list[list[str]]]]:
    """(title, columns, cells) of every table the rows call for."""
    summary = summarise(rows)
    binary = any(r.get("fnr") is not None or "tbac" in r for r in rows)
    layouts = [("", UNLEARNING_TABLE)] + ([("clinical", CLINICAL_TABLE)] if binary else [])
    if any(r.get("pop_phi_auc") is not None for r in rows):
        layouts.append(("privacy", PRIVACY_TABLE))
    tables = []
    for aug, forget in dict.fromkeys((e["aug"], e["forget"]) for e in summary):
        entries = [e for e in summary if (e["aug"], e["forget"]) == (aug, forget)]
        for kind, columns in layouts:
            title = f"forget set {forget}, augmentation {aug}" + (f" — {kind}" if kind else "")
            shown = _present(columns, entries) if kind == "privacy" else columns
            tables.append((title, shown, table_rows(summary, (aug, forget), shown)))
        scenario_rows = [r for r in rows if (r.get("aug", ""), r["forget"]) == (aug, forget)]
        if any(e["n_seeds"] > 1 for e in entries):
            title = f"forget set {forget}, augmentation {aug} — over seeds"
            tables.append((title, *statistics_table(scenario_rows)))
    return tables + aug_study_tables(summary)


def _interval(summary: Summary, digits: int = 2) -> str:
    """'mean [low, high]', or the mean alone where one value gives no interval."""
    if summary.ci_low is None:
        return f"{summary.mean:.{digits}f}"
    return f"{summary.mean:.{digits}f} [{summary.ci_low:.{digits}f}, {summary.ci_high:.{digits}f}]"


def _paired_cell(rows: Sequence[dict], retrain: dict[int, dict], key: str) -> str:
    """method - Retrain over matched seeds with its 95% interval; '≈' where it covers 0."""
    pairs = [(r[key], retrain[r["seed"]][key]) for r in rows
             if r.get(key) is not None and retrain.get(r["seed"], {}).get(key) is not None]  # fmt: skip
    if not pairs:
        return "n/a"
    method, reference = zip(*pairs, strict=True)
    difference = paired_difference(np.array(method), np.array(reference))
    digits = 3 if key.endswith("auc") else 2
    text = f"{difference.difference.mean:+.{digits}f}"
    if difference.difference.ci_low is not None:
        low, high = difference.difference.ci_low, difference.difference.ci_high
        text += f" [{low:+.{digits}f}, {high:+.{digits}f}]"
    return text + (" ≈" if difference.within_noise else "")


def statistics_table(rows: Sequence[dict]) -> tuple[list[Column], list[list[str]]]:
    """Per method: AG's mean with its 95% t interval over seeds, and each metric's paired
    difference to Retrain (same seeds) with its interval, '≈' marking one within noise."""
    retrain = {r["seed"]: r for r in rows if r["method"] == "retrain"}
    keys = [(k, h) for k, h in PAIRED_METRICS if any(r.get(k) is not None for r in rows)]
    columns = [Column("ag", "AG [95% CI]")]
    columns += [Column(key, f"{header} − Retrain") for key, header in keys]
    cells = []
    for method in dict.fromkeys(r["method"] for r in rows if r["method"] != "retrain"):
        members = [r for r in rows if r["method"] == method]
        ag = [r["ag"] for r in members if r.get("ag") is not None]
        line = [method, _interval(summarise_values(np.array(ag))) if ag else "n/a"]
        cells.append(line + [_paired_cell(members, retrain, key) for key, _ in keys])
    return columns, cells


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
        "change of AG against crop-flip is in parentheses (negative: closer to Retrain). "
        "Privacy tables: SVC MIA in percent; the attacks' AUC and TPR at 1% / 0.1% FPR as "
        "fractions, forget vs test samples (the phi threshold needs no reference model, and a "
        "loss threshold ranks samples as it does, so results.csv's pop_loss_* repeat it; "
        "LiRA and RMIA compare the model with a bank of reference Retrains); the target is "
        "Retrain's value, not 0.5. U-LiRA acc: the per-example test's balanced accuracy "
        "between a method's repeated runs and the bank (0.5: indistinguishable from Retrain). "
        "F: the NeurIPS 2023 forgetting quality (1 = "
        "indistinguishable from Retrain), from N unlearning runs against N bank models (coarse "
        "for small N). Over-seeds tables: 95% t intervals; '≈' marks a difference to Retrain "
        "within noise. † marks a method no closer to Retrain than the untouched original.",
    ]
    for table_title, columns, cells in _tables(rows):
        lines += ["", f"## {table_title}", ""]
        lines.append("| method | " + " | ".join(c.header for c in columns) + " |")
        lines.append("|---" * (len(columns) + 1) + "|")
        lines += ["| " + " | ".join(line) + " |" for line in cells]
    for title_of_checks, checks in sanity_checks(rows):
        lines += ["", f"## checks: {title_of_checks}", ""]
        lines += [f"- {check}" for check in checks]
    return "\n".join(lines) + "\n"


def _seeds_text(rows: Sequence[dict], key: str) -> str:
    """'seed s: AUC [low, high]' for each row."""
    return "; ".join(
        f"seed {r['seed']}: {r[key + '_auc']:.3f} [{r[key + '_auc_low']:.3f}, "
        f"{r[key + '_auc_high']:.3f}]"
        for r in rows
    )


def _attack_checks(rows: Sequence[dict], attack: str, name: str) -> list[str]:
    """Whether an attack catches the original model on its forget set, and where Retrain is."""
    low = f"{attack}_auc_low"
    originals = [r for r in rows if r["method"] == "original" and r.get(low) is not None]
    retrains = [r for r in rows if r["method"] == "retrain" and r.get(low) is not None]
    lines = []
    if originals and any(r[low] <= 0.5 for r in originals):
        lines.append(
            f"**{name} cannot tell forgetting on this data**: the original model, trained on "
            "its forget set, has a forget-vs-test AUC whose 95% interval reaches 0.5 "
            f"({_seeds_text(originals, attack)}); its numbers in the tables say nothing about forgetting."
        )
    elif originals:
        lines.append(
            f"{name} catches the original model on its forget set "
            f"({_seeds_text(originals, attack)}): it can tell forgetting here."
        )
    off = [r for r in retrains if not r[low] <= 0.5 <= r[f"{attack}_auc_high"]]
    if off:
        lines.append(
            f"Retrain's forget-vs-test AUC under {name} is not 0.5 ({_seeds_text(off, attack)}): "
            "forget and test samples differ by more than membership, so a method is judged "
            "by its distance to Retrain's value, not to 0.5."
        )
    return lines


def sanity_checks(rows: Sequence[dict]) -> list[tuple[str, list[str]]]:
    """Per (augmentation, forget set): what the attacks can tell on this data, constant SVC
    attacks, and the methods no closer to Retrain than doing nothing."""
    summary = summarise(rows)
    checks = []
    for aug, forget in dict.fromkeys((r.get("aug", ""), r["forget"]) for r in rows):
        scenario = [r for r in rows if (r.get("aug", ""), r["forget"]) == (aug, forget)]
        lines = [line for a, n in CHECKED_ATTACKS for line in _attack_checks(scenario, a, n)]
        if constant := [r for r in scenario if r.get("mia_constant")]:
            where = ", ".join(f"{r['method']} (seed {r['seed']})" for r in constant)
            lines.append(
                f"The SVC attack (MIA) was constant, one answer for every confidence, for "
                f"{where}: its MIA there (0 or 100) says nothing about forgetting."
            )
        if sizes := sorted({r["forget_score_n"] for r in scenario if r.get("forget_score_n")}):
            n = sizes[0]
            lines.append(
                f"The forgetting score F and U-LiRA come from N = {n} unlearning runs and {n} "
                f"bank models per method: an example's epsilon is resolved only up to "
                f"ceil(ln(N - 1)) = {math.ceil(math.log(n - 1))}, so F is coarse (the NeurIPS "
                "2023 challenge used N = 512)."
            )
        entries = [e for e in summary if (e["aug"], e["forget"]) == (aug, forget)]
        original = next((e for e in entries if e["method"] == "original"), {})
        for entry in no_better_than_nothing(entries):
            lines.append(
                f"† {entry['method']}: AG {entry['ag']:.2f} is not below the original "
                f"model's own {original['ag']:.2f}: no closer to Retrain than doing nothing."
            )
        if lines:
            checks.append((f"forget set {forget}, augmentation {aug}", lines))
    return checks


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
    from medunlearn.figures import ag_by_aug_figure, clinical_figure, roc_figure, scores_figure

    title = getattr(config, "name", "results")
    atomic_write_text(out / "results.csv", csv_text(rows))
    atomic_write_json(out / "results.json", list(rows))
    atomic_write_text(out / "report.md", markdown_report(rows, title))
    if any(r.get("fnr") is not None for r in rows):
        clinical_figure(list(rows), out / "clinical.png", f"{title}: clinical safety on test")
    if len({r.get("aug") for r in rows}) > 1:
        ag_by_aug_figure(list(rows), out / "ag_by_aug.png", f"{title}: AG by augmentation")
    if any(r.get("curves") for r in rows):
        roc_figure(list(rows), out / "roc.png", f"{title}: membership attacks")
        scores_figure(list(rows), out / "scores.png", f"{title}: per-example attack scores")


def read_results(out: Path) -> list[dict]:
    """The rows a run wrote (results.json), or a clear error when there are none."""
    path = Path(out) / "results.json"
    if not path.is_file():
        raise UserError(f"no results in {out}: run `medunlearn run --out {out}` first")
    return json.loads(path.read_text())
