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

from medunlearn.config import ForgetConfig, UserError
from medunlearn.metrics.accuracy import class_key
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


def _pairs(rows: Sequence[dict], references: dict[int, dict], key: str) -> list[tuple]:
    """(row[key], reference[key]) for each row and the reference row of its seed, where both
    are defined."""
    return [(r[key], references[r["seed"]][key]) for r in rows
            if r.get(key) is not None and references.get(r["seed"], {}).get(key) is not None]  # fmt: skip


def _by_seed(rows: Sequence[dict], method: str) -> dict[int, dict]:
    """A method's rows by seed."""
    return {r["seed"]: r for r in rows if r["method"] == method}


def mean_paired_gap(
    rows: Sequence[dict], references: dict[int, dict], key: str, absolute: bool = True
) -> float | None:
    """The mean over seeds of row[key] - reference[key] (its absolute value, as AG takes it,
    unless `absolute` is False), each row against the reference row of its own seed; None where
    no seed has both."""
    pairs = _pairs(rows, references, key)
    if not pairs:
        return None
    differences = np.array([value - reference for value, reference in pairs], dtype=float)
    return summarise_values(np.abs(differences) if absolute else differences).mean


def _paired_cell(rows: Sequence[dict], retrain: dict[int, dict], key: str) -> str:
    """method - Retrain over matched seeds with its 95% interval; '≈' where it covers 0."""
    pairs = _pairs(rows, retrain, key)
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


def by_scenario(rows: Sequence[dict]) -> dict[tuple[str, str], list[dict]]:
    """(augmentation, forget set) -> its rows, in first-seen order."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row.get("aug", ""), row["forget"]), []).append(row)
    return groups


def _number(value: float | None, signed: bool = False) -> str:
    """A table number with two decimals (a sign where asked), 'n/a' for None or NaN."""
    if value is None or math.isnan(value):
        return "n/a"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


CLASS_METRICS = (("ua", "UA"), ("ta", "TA"))


@dataclass(frozen=True)
class ClassGaps:
    """For one (augmentation, forget set): per method (Retrain aside) and class, the mean over
    seeds of |metric_c - Retrain's metric_c| for UA and TA (NaN where undefined)."""

    methods: list[str]
    gaps: dict[str, np.ndarray]  # metric -> (methods, classes)


def _n_classes(rows: Sequence[dict]) -> int:
    """How many classes the rows have per-class metrics for."""
    n = 0
    while any(class_key("ta", n) in r for r in rows):
        n += 1
    return n


def class_gaps(rows: Sequence[dict]) -> ClassGaps | None:
    """The per-class gaps to Retrain of one scenario's rows (None without Retrain or per-class
    metrics)."""
    retrain, n_classes = _by_seed(rows, "retrain"), _n_classes(rows)
    if not retrain or not n_classes:
        return None
    methods = [m for m in dict.fromkeys(r["method"] for r in rows) if m != "retrain"]
    gaps = {}
    for metric, _ in CLASS_METRICS:
        table = [[mean_paired_gap([r for r in rows if r["method"] == m], retrain,
                                  class_key(metric, c)) for c in range(n_classes)]
                 for m in methods]  # fmt: skip
        gaps[metric] = np.array(table, dtype=float)
    return ClassGaps(methods, gaps)


def _worst(gaps: np.ndarray) -> float | None:
    """The largest defined gap (None where none is)."""
    return float(np.nanmax(gaps)) if np.isfinite(gaps).any() else None


def class_gap_tables(rows: Sequence[dict]) -> list[tuple[str, Sequence[Column], list]]:
    """Per scenario and metric: each method's |UA_c - UA_c(Retrain)| or |TA_c - TA_c(Retrain)|
    per class c (mean over seeds) and the worst class: bias against one class's patients."""
    tables = []
    for (aug, forget), members in by_scenario(rows).items():
        found = class_gaps(members)
        if found is None:
            continue
        n_classes = next(iter(found.gaps.values())).shape[1]
        columns = [Column(f"c{c}", f"class {c}") for c in range(n_classes)]
        columns.append(Column("max", "worst"))
        for metric, header in CLASS_METRICS:
            gaps = found.gaps[metric]
            cells = [[method, *(_number(v) for v in line), _number(_worst(line))]
                     for method, line in zip(found.methods, gaps, strict=True)]  # fmt: skip
            title = f"forget set {forget}, augmentation {aug} — per-class {header} gap to Retrain"
            tables.append((title, columns, cells))
    return tables


@dataclass(frozen=True)
class SizeGaps:
    """For one augmentation mode's random forget sets: per method, TA(method) - TA(original
    model) and TA(method) - TA(Retrain) at each forget fraction, mean over seeds (None where
    undefined)."""

    aug: str
    fractions: list[float]
    to_original: dict[str, list[float | None]]
    to_retrain: dict[str, list[float | None]]


def forget_size_gaps(rows: Sequence[dict], specs: Sequence[ForgetConfig]) -> list[SizeGaps]:
    """The TA differences of every augmentation mode, when the config has random forget sets of
    two or more fractions (else none)."""
    sizes = sorted((s.fraction, s.display_name) for s in specs if s.mode == "random")
    if len({fraction for fraction, _ in sizes}) < 2:
        return []
    scenarios, found = by_scenario(rows), []
    for aug in dict.fromkeys(aug for aug, _ in scenarios):
        to_original: dict[str, list[float | None]] = {}
        to_retrain: dict[str, list[float | None]] = {}
        for _, label in sizes:
            members = scenarios.get((aug, label), [])
            original, retrain = _by_seed(members, "original"), _by_seed(members, "retrain")
            for method in dict.fromkeys(r["method"] for r in members if r["method"] != "original"):
                mine = [r for r in members if r["method"] == method]
                to_original.setdefault(method, []).append(
                    mean_paired_gap(mine, original, "ta", absolute=False))  # fmt: skip
                to_retrain.setdefault(method, []).append(
                    mean_paired_gap(mine, retrain, "ta", absolute=False))  # fmt: skip
        found.append(SizeGaps(aug, [f for f, _ in sizes], to_original, to_retrain))
    return found


def _percent(fraction: float) -> str:
    """A forget fraction as a column header: '5%'."""
    return f"{fraction * 100:g}%"


def forget_size_tables(
    rows: Sequence[dict], specs: Sequence[ForgetConfig]
) -> list[tuple[str, Sequence[Column], list]]:
    """Per augmentation mode: TA - original model and TA - Retrain of each method at each random
    forget fraction (mean over seeds; negative: the method generalises worse)."""
    tables = []
    for found in forget_size_gaps(rows, specs):
        columns = [Column(_percent(f), f"forget {_percent(f)}") for f in found.fractions]
        for name, gaps in (("original model", found.to_original), ("Retrain", found.to_retrain)):
            cells = [[method, *(_number(v, signed=True) for v in values)]
                     for method, values in gaps.items()]  # fmt: skip
            title = f"TA − {name} by forget size, augmentation {found.aug}"
            tables.append((title, columns, cells))
    return tables


KIND_ORDER = ("easy", "random", "hard")


def forget_kinds(specs: Sequence[ForgetConfig]) -> dict[float, list[ForgetConfig]]:
    """Fraction -> its easy, random and hard forget sets, for each fraction that has an easy or a
    hard one."""
    fractions = dict.fromkeys(s.fraction for s in specs if s.uses_difficulty)
    return {
        fraction: sorted((s for s in specs if s.fraction == fraction and s.mode in KIND_ORDER),
                         key=lambda s: KIND_ORDER.index(s.mode))
        for fraction in fractions
    }  # fmt: skip


KIND_TABLE = tuple(c for c in UNLEARNING_TABLE if c.key != "rte_min")


def forget_kind_tables(
    rows: Sequence[dict], specs: Sequence[ForgetConfig]
) -> list[tuple[str, Sequence[Column], list]]:
    """Per augmentation mode and forget fraction with easy or hard forget sets: UA, RA, TA, MIA
    (gap to Retrain in parentheses) and AG of each method on the easiest, random and hardest
    samples."""
    summary = summarise(rows)
    index = {(e["aug"], e["forget"], e["method"]): e for e in summary}
    tables = []
    for aug in dict.fromkeys(e["aug"] for e in summary):
        for fraction, kinds in forget_kinds(specs).items():
            labels = [s.display_name for s in kinds]
            methods = dict.fromkeys(e["method"] for e in summary
                                    if e["aug"] == aug and e["forget"] in labels)  # fmt: skip
            cells = []
            for method in methods:
                for label in labels:
                    entry = index.get((aug, label, method))
                    if entry is not None:
                        reference = index.get((aug, label, "retrain"))
                        cells.append(
                            [method, label, *(_cell(entry, reference, c) for c in KIND_TABLE)]
                        )
            columns = [Column("forget", "forget set", gap=False), *KIND_TABLE]
            title = f"easy / random / hard forget sets of {_percent(fraction)}, augmentation {aug}"
            tables.append((title, columns, cells))
    return tables


def analysis_tables(
    rows: Sequence[dict], specs: Sequence[ForgetConfig] = ()
) -> list[tuple[str, Sequence[Column], list]]:
    """The tables of Nasirigerdeh et al.'s analyses the rows and forget specs call for: per-class
    gaps to Retrain, TA against forget size, and easy / random / hard forget sets."""
    return [
        *forget_kind_tables(rows, specs),
        *forget_size_tables(rows, specs),
        *class_gap_tables(rows),
    ]


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


def markdown_report(rows: Sequence[dict], title: str, specs: Sequence[ForgetConfig] = ()) -> str:
    """The tables as Markdown, with a line on how to read them; the analysis tables follow
    (those by forget size and kind need the config's forget `specs`)."""
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
        "within noise. † marks a method no closer to Retrain than the untouched original. "
        "Per-class tables: |UA_c - UA_c(Retrain)| and |TA_c - TA_c(Retrain)| within each "
        "class c, mean over seeds of each seed's gap, and the worst class. Forget-size tables: "
        "TA(method) - TA(reference), mean over seeds (negative: the method generalises worse). "
        "Easy / hard forget sets are drawn from the training samples of lowest / highest mean "
        "training loss of the original model.",
    ]
    for table_title, columns, cells in [*_tables(rows), *analysis_tables(rows, specs)]:
        lines += markdown_table(table_title, columns, cells)
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


def csv_text(rows: Sequence[dict], first: Sequence[str] = FIRST_COLUMNS) -> str:
    """All rows as CSV: the `first` columns (a results table's fixed ones), then every other
    scalar key in first-seen order (the attacks' curves and histograms are in results.json
    only)."""
    keys = list(first)
    for row in rows:
        keys += [k for k, v in row.items() if k not in keys and not isinstance(v, dict | list)]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in keys})
    return buffer.getvalue()


def write_results(out: Path, rows: Sequence[dict], config: object) -> None:
    """results.csv, results.json, report.md and the figures the rows call for, in `out` (the
    analyses by forget size and kind read the forget specs of `config`, when given)."""
    from medunlearn.figures import (
        ag_by_aug_figure,
        clinical_figure,
        forget_kinds_figure,
        forget_size_figure,
        roc_figure,
        scores_figure,
        subgroups_figure,
    )

    title = getattr(config, "name", "results")
    specs: list[ForgetConfig] = list(getattr(config, "forget", None) or [])
    atomic_write_text(out / "results.csv", csv_text(rows))
    atomic_write_json(out / "results.json", list(rows))
    atomic_write_text(out / "report.md", markdown_report(rows, title, specs))
    if any(class_gaps(members) for members in by_scenario(rows).values()):
        subgroups_figure(list(rows), out / "subgroups.png", f"{title}: per-class gaps to Retrain")
    if forget_size_gaps(rows, specs):
        forget_size_figure(
            list(rows), specs, out / "forget_size.png", f"{title}: TA by forget size"
        )
    if forget_kinds(specs):
        forget_kinds_figure(list(rows), specs, out / "forget_kinds.png", f"{title}: forget kinds")
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


def markdown_table(
    title: str, columns: Sequence[Column], cells: list[list[str]], first: str = "method"
) -> list[str]:
    """A titled markdown table: the `first` column, then one per column, one line per row."""
    lines = ["", f"## {title}", ""]
    lines.append(f"| {first} | " + " | ".join(c.header for c in columns) + " |")
    lines.append("|---" * (len(columns) + 1) + "|")
    return lines + ["| " + " | ".join(line) + " |" for line in cells]
