"""Sequential requests (issue 22): each method serves requests one after another on its own
output, and at each request k its test accuracy, miss rate, forgetting reversal and debt are
read against the last exact Retrain; k* is the first request at which the method's TA falls
`drift` points below that Retrain's, or an earlier request's images are recognisable again.

The rows are the study's (`deletion.sequential`): one per method and request with its `step`,
the original model's at step 0, and the exact Retrain's at the steps it was trained. Each row
keeps, under `sets`, its accuracy and class-matched phi attack AUC (with its bootstrap
interval) on every request's images up to its own; everything derived here is computed from
the rows alone, so `medunlearn report` redraws it from results.json.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from medunlearn.analyses.base import Analysis, Study, register_analysis
from medunlearn.analyses.plots import colours, finish, grid_figure, panels
from medunlearn.analyses.tables import NA, Table, fmt
from medunlearn.config import DebtConfig
from medunlearn.metrics.registry import Column
from medunlearn.roles import METHOD, ORIGINAL, RETRAIN, row_role

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

STEP = "step"
# the bounds when rows do not carry them: the deletion service's own defaults
DEFAULT_DEBT = DebtConfig()


def sequential_rows(rows: Sequence[dict]) -> list[dict]:
    """The rows of a sequential study (those that carry a request number)."""
    return [row for row in rows if row.get(STEP) is not None]


def exact_rows(rows: Sequence[dict]) -> dict[int, dict]:
    """Step -> the exact model there: the original model at step 0 (nothing forgotten yet),
    the exact Retrain at each step it was trained."""
    return {int(r[STEP]): r for r in sequential_rows(rows) if row_role(r) in (ORIGINAL, RETRAIN)}


def reference_step(step: int, exact_steps: Sequence[int]) -> int | None:
    """The last exact model at or before request `step` (the service's gate reference)."""
    earlier = [e for e in exact_steps if e <= step]
    return max(earlier) if earlier else None


def set_reference(request: int, step: int, exact_steps: Sequence[int]) -> int | None:
    """The exact Retrain that request `request`'s images are judged against at step `step`:
    one that never trained on them (trained at or after that request), the last at or before
    `step` where there is one, else the first after it; None where no Retrain has forgotten
    them yet."""
    last = reference_step(step, [e for e in exact_steps if e > 0])
    if last is not None and last >= request:
        return last
    later = [e for e in exact_steps if e >= request and e > 0]
    return min(later) if later else None


def _entry(row: dict, request: int) -> dict | None:
    """A row's accuracy and attack entry on request `request`'s images."""
    return next((s for s in row.get("sets", []) if s["request"] == request), None)


def _mean(values: Sequence[float | None]) -> float | None:
    """The mean of the defined values (None where none is)."""
    defined = [v for v in values if v is not None]
    return float(np.mean(defined)) if defined else None


def _max(values: Sequence[float | None]) -> float | None:
    """The largest defined value (None where none is)."""
    defined = [v for v in values if v is not None]
    return max(defined) if defined else None


def annotated(rows: Sequence[dict]) -> list[dict]:
    """Copies of the study's rows with what is read against the exact models: for a method's
    row at request k, `exact_step` (its last exact model), `ta_exact`, `drift` (= ta_exact - ta,
    points) and `drift_over` (drift >= the row's `drift_bound`); for each earlier request j < k
    (in `sets`) the exact Retrain's AUC and accuracy on j's images and `recognised` (the AUC's
    95% interval lies wholly above that Retrain's AUC + `reversal_margin`); then `reversal` (the
    worst earlier set's interval low end minus its Retrain's AUC), `n_recognised`,
    `recognised_requests`, the earlier sets' mean accuracy and the Retrain's on them. A Retrain's
    row gets its own earlier sets' mean accuracy and largest AUC, the original's those of every
    request's images (how recognisable they were before any deletion). Rows without a step pass
    unchanged."""
    exact = exact_rows(rows)
    steps = sorted(exact)
    out = []
    for row in rows:
        row = dict(row)
        if row.get(STEP) is None:
            out.append(row)
            continue
        step = int(row[STEP])
        # the original's own sets are every request's images, none forgotten yet
        earlier = [dict(s) for s in row.get("sets", [])
                   if s["request"] < step or row_role(row) == ORIGINAL]  # fmt: skip
        if row_role(row) in (ORIGINAL, RETRAIN):
            row |= {"earlier_acc": _mean([s["acc"] for s in earlier]),
                    "earlier_auc_max": _max([s["auc"] for s in earlier])}  # fmt: skip
            out.append(row)
            continue
        bound = row.get("drift_bound", DEFAULT_DEBT.drift)
        margin = row.get("reversal_margin", DEFAULT_DEBT.reversal)
        e = reference_step(step, steps)
        ta_exact = None if e is None else exact[e].get("ta")
        drift = None if ta_exact is None or row.get("ta") is None else ta_exact - row["ta"]
        for entry in earlier:
            r = set_reference(entry["request"], step, steps)
            reference = None if r is None else _entry(exact[r], entry["request"])
            entry["exact_step"] = r
            entry["exact_auc"] = None if reference is None else reference["auc"]
            entry["exact_acc"] = None if reference is None else reference["acc"]
            low = entry.get("auc_low")
            entry["recognised"] = (
                None
                if entry["exact_auc"] is None or low is None
                else bool(low > entry["exact_auc"] + margin)
            )
            entry["gap_low"] = (
                None if entry["exact_auc"] is None or low is None else low - entry["exact_auc"]
            )
        recognised = [s["request"] for s in earlier if s["recognised"]]
        row |= {
            "exact_step": e, "ta_exact": ta_exact, "drift": drift,
            "drift_over": None if drift is None else bool(drift >= bound),
            "earlier": earlier, "n_recognised": len(recognised),
            "recognised_requests": recognised,
            "reversal": _max([s["gap_low"] for s in earlier]),
            "earlier_acc": _mean([s["acc"] for s in earlier]),
            "earlier_acc_exact": _mean([s["exact_acc"] for s in earlier]),
            "earlier_auc_max": _max([s["auc"] for s in earlier]),
        }  # fmt: skip
        out.append(row)
    return out


@dataclass(frozen=True)
class KStar:
    """One method's k*: the first request at which its TA fell `drift_bound` points below the
    last exact model's (`first_drift`) or an earlier request's images became recognisable
    again (`first_reversal`), the earlier of the two (None: it held through all `served`);
    `n_drifted` counts the requests at which the TA was that far below (one request's TA moves
    with the run's noise: a k* from a single dip reads differently from a lasting drift);
    `first_exact_drift` is the first such request among those with their own exact Retrain
    (the reading that compares only where a Retrain of that very request exists)."""

    method: str
    k: int | None
    first_drift: int | None
    first_reversal: int | None
    served: int
    max_drift: float | None
    max_reversal: float | None
    n_drifted: int = 0
    first_exact_drift: int | None = None

    @property
    def reason(self) -> str:
        """Which criterion k* came from."""
        if self.k is None:
            return "held"
        reasons = [name for name, at in (("TA drift", self.first_drift),
                                          ("reversal", self.first_reversal)) if at == self.k]  # fmt: skip
        return " and ".join(reasons)


def method_steps(rows: Sequence[dict]) -> dict[str, list[dict]]:
    """Each method's annotated rows in request order."""
    found: dict[str, list[dict]] = {}
    for row in annotated(sequential_rows(rows)):
        if row_role(row) == METHOD:
            found.setdefault(row["method"], []).append(row)
    return {m: sorted(steps, key=lambda r: r[STEP]) for m, steps in found.items()}


def k_stars(rows: Sequence[dict]) -> list[KStar]:
    """Every method's k* (see `KStar`)."""
    found, exact = [], exact_rows(rows)
    for method, steps in method_steps(rows).items():
        drifted = [r[STEP] for r in steps if r.get("drift_over")]
        exact_drifted = [k for k in drifted if k in exact]
        reversed_ = [r[STEP] for r in steps if r.get("n_recognised")]
        first_drift = min(drifted) if drifted else None
        first_reversal = min(reversed_) if reversed_ else None
        firsts = [k for k in (first_drift, first_reversal) if k is not None]
        found.append(KStar(method, min(firsts) if firsts else None, first_drift, first_reversal,
                           max(r[STEP] for r in steps), _max([r.get("drift") for r in steps]),
                           _max([r.get("reversal") for r in steps]), len(drifted),
                           min(exact_drifted) if exact_drifted else None))  # fmt: skip
    return found


def _k(value: int | None, served: int) -> str:
    """A request number, or '> n' for a criterion never met in n requests."""
    return f"> {served}" if value is None else str(value)


def miss_header(rows: Sequence[dict]) -> str:
    """The miss-rate column's header: the binary task's FNR or the multi-class macro miss rate."""
    kinds = {r.get("miss_rate_kind") for r in rows if r.get("miss_rate_kind")}
    return "FNR" if kinds == {"fnr"} else "FNR (macro miss rate)"


STEP_COLUMNS = (
    Column("ta", "TA"),
    Column("ta_exact", "exact TA"),
    Column("drift", "drift"),
    Column("miss_rate", "FNR"),
    Column("ua", "UA (this request)"),
    Column("pop_phi_matched_auc", "phi AUC (this request)", digits=3),
    Column("earlier_acc", "acc. earlier sets"),
    Column("earlier_acc_exact", "Retrain's"),
    Column("reversal", "reversal", digits=3),
    Column("recognised_requests", "recognised"),
    Column("debt_images", "debt (images)", digits=0),
    Column("rte_min", "RTE (min)"),
)
EXACT_COLUMNS = (
    Column("ta", "TA"),
    Column("miss_rate", "FNR"),
    Column("ua", "UA (this request)"),
    Column("pop_phi_matched_auc", "phi AUC (this request)", digits=3),
    Column("earlier_acc", "acc. earlier sets (r0: all)"),
    Column("earlier_auc_max", "max phi AUC earlier sets (r0: all)", digits=3),
    Column("forgotten", "forgotten (images)", digits=0),
    Column("rte_min", "RTE (min)"),
)
K_COLUMNS = (
    Column("k", "k*"),
    Column("reason", "reason"),
    Column("first_drift", "first TA drift"),
    Column("first_exact_drift", "first at a Retrain's request"),
    Column("n_drifted", "requests drifted"),
    Column("first_reversal", "first reversal"),
    Column("max_drift", "max drift"),
    Column("max_reversal", "max reversal", digits=3),
)


def _cell(row: dict, column: Column) -> str:
    """A step table's cell: a number, the recognised requests' list, or the exact step."""
    value = row.get(column.key)
    if column.key == "recognised_requests":
        return ", ".join(str(v) for v in value) if value else ("none" if STEP in row else NA)
    if column.key == "ta_exact" and value is not None and row.get("exact_step") is not None:
        return f"{fmt(value)} (r{row['exact_step']})"
    return fmt(value, column.digits)


def _with_header(columns: Sequence[Column], header: str) -> list[Column]:
    """The columns with the miss rate's header set."""
    return [Column(c.key, header, c.digits) if c.key == "miss_rate" else c for c in columns]


@register_analysis
class Sequential(Analysis):
    """Per-request tables of each method and of the exact Retrain, k*, and sequential.png."""

    name = "sequential"
    title = "Sequential requests"
    legend = (
        "Each method serves the requests one after another, request k on its own model after "
        "request k-1 (no forgotten image is trained on again). TA and FNR in percent on the "
        "test split; FNR is the binary task's false-negative rate, or on a multi-class task "
        "the macro miss rate (100 - balanced accuracy). exact TA: the last exact model's (the "
        "exact Retrain at that request rK, or the original r0 before the first); drift = "
        "exact TA - TA. acc. earlier sets: the mean accuracy on the images of requests "
        "1..k-1 (Retrain's: the Retrain's on them); reversal: over those sets, the largest "
        "lower end of the class-matched phi attack AUC's 95% bootstrap interval minus the AUC "
        "of a Retrain that never saw them; a set is recognised again when that exceeds the "
        "reversal margin (deletion.debt.reversal). debt: images forgotten approximately since "
        "the last exact retrain (here since the start: the methods never take the Retrain's "
        "weights). k*: the first request at which drift >= deletion.debt.drift or an earlier "
        "set is recognised again ('> n': neither within the n requests); first at a Retrain's "
        "request: the first drift at a request that has its own exact Retrain; requests "
        "drifted: at how many requests the drift was that large. sequential.png draws "
        "TA, the earlier sets' accuracy and the reversal against the request number."
    )
    figures = ("sequential.png",)

    def applies(self, study: Study) -> bool:
        return bool(method_steps(study.rows))

    def tables(self, study: Study) -> list[Table]:
        rows = annotated(sequential_rows(study.rows))
        header = miss_header(rows)
        tables = []
        for method, steps in method_steps(study.rows).items():
            columns = _with_header(STEP_COLUMNS, header)
            cells = [[str(r[STEP]), *(_cell(r, c) for c in columns)] for r in steps]
            tables.append(Table(f"{method}: per request", columns, cells, first="request"))
        exact = [r for r in rows if row_role(r) in (ORIGINAL, RETRAIN)]
        if exact:
            columns = _with_header(EXACT_COLUMNS, header)
            cells = [[str(r[STEP]), *(_cell(r, c) for c in columns)]
                     for r in sorted(exact, key=lambda r: r[STEP])]  # fmt: skip
            tables.append(Table("exact models (r0: the original)", columns, cells,
                                first="request"))  # fmt: skip
        cells = [[k.method, _k(k.k, k.served), k.reason, _k(k.first_drift, k.served),
                  _k(k.first_exact_drift, k.served), f"{k.n_drifted} of {k.served}", _k(k.first_reversal, k.served),
                  fmt(k.max_drift), fmt(k.max_reversal, 3)]
                 for k in k_stars(study.rows)]  # fmt: skip
        tables.append(Table("k*: requests served before the first failure", K_COLUMNS, cells))
        return tables

    def checks(self, study: Study) -> list[tuple[str, list[str]]]:
        lines = [f"{k.method}: k* = {k.k} ({k.reason})" for k in k_stars(study.rows)
                 if k.k is not None and k.k == 1]  # fmt: skip
        if lines:
            lines.append("a failure at the first request: the method's own result, not the "
                         "sequence, falls short of the exact model")  # fmt: skip
            return [("sequential requests", lines)]
        return []

    def draw(self, study: Study) -> dict[str, Figure]:
        """TA, the earlier sets' accuracy and the reversal per method against the request,
        the exact models' points in black, k* marked with a cross."""
        steps = method_steps(study.rows)
        rows = annotated(sequential_rows(study.rows))
        exact = sorted((r for r in rows if row_role(r) in (ORIGINAL, RETRAIN)),
                       key=lambda r: r[STEP])  # fmt: skip
        palette = colours(list(steps))
        stars = {k.method: k.k for k in k_stars(study.rows)}
        figure = grid_figure(1, 3, 4.4, 3.6)
        grid = panels(figure, 1, 3)
        ta_axes, acc_axes, rev_axes = grid[0]
        for method, members in steps.items():
            colour = palette[method]
            _line(ta_axes, members, "ta", colour, method)
            _line(acc_axes, members, "earlier_acc", colour, method)
            _line(rev_axes, members, "reversal", colour, method)
            at = next((r for r in members if r[STEP] == stars.get(method)), None)
            if at is not None:
                ta_axes.plot(at[STEP], at["ta"], marker="X", markersize=9, color=colour,
                             markeredgecolor="black", linestyle="none")  # fmt: skip
        _points(ta_axes, exact, "ta", "exact model (r0: original)")
        _points(acc_axes, [r for r in exact if row_role(r) == RETRAIN], "earlier_acc",
                "exact model (r0: original)")  # fmt: skip
        margins = {r.get("reversal_margin", DEFAULT_DEBT.reversal) for r in rows}
        for margin in margins:
            rev_axes.axhline(margin, color="black", linestyle=":", linewidth=1)
        rev_axes.axhline(0, color="0.6", linewidth=0.8)
        n = max((r[STEP] for r in rows), default=1)
        for axes, title, unit in (
            (ta_axes, "test accuracy (X: k*)", "TA (%)"),
            (acc_axes, "accuracy on earlier requests' images", "mean accuracy (%)"),
            (rev_axes, "reversal: worst earlier set (dotted: margin)",
             "phi AUC 95% low − Retrain's AUC"),
        ):  # fmt: skip
            axes.set_title(title, fontsize=9)
            axes.set_xlabel("request")
            axes.set_ylabel(unit)
            axes.set_xticks(range(0, n + 1))
            axes.grid(alpha=0.3)
        return {"sequential.png": finish(figure, list(grid.flat), 6,
                                         f"{study.title}: sequential deletion requests")}  # fmt: skip


def _line(axes: Axes, members: Sequence[dict], key: str, colour: object, label: str) -> None:
    """One method's values of `key` against the request number (undefined ones skipped)."""
    points = [(r[STEP], r[key]) for r in members if r.get(key) is not None]
    if points:
        axes.plot(*zip(*points, strict=True), marker="o", markersize=3, linewidth=1.3,
                  color=colour, label=label)  # fmt: skip


def _points(axes: Axes, rows: Sequence[dict], key: str, label: str) -> None:
    """The exact models' values of `key`, black squares."""
    points = [(r[STEP], r[key]) for r in rows if r.get(key) is not None]
    if points:
        axes.plot(*zip(*points, strict=True), marker="s", markersize=5, color="black",
                  linestyle="none", label=label)  # fmt: skip
