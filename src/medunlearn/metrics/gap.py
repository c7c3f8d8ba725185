"""Distance to Retrain: per-metric gaps, the Average Gap (AG), speed-up, and the columns other
metrics derive from Retrain's row (e.g. the anamnesis index)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from medunlearn.metrics.registry import registered
from medunlearn.roles import RETRAIN, row_role

AG_METRICS = ("ua", "ra", "ta", "mia")


def gaps(metrics: Mapping[str, float | None], reference: Mapping[str, float | None]) -> dict:
    """|metric - reference| for every numeric metric both sides have (None where undefined)."""
    out: dict[str, float | None] = {}
    for key, value in metrics.items():
        other = reference.get(key)
        if isinstance(value, int | float) and isinstance(other, int | float):
            out[key] = abs(float(value) - float(other))
        elif key in reference:
            out[key] = None
    return out


def average_gap(
    metrics: Mapping[str, float],
    retrain: Mapping[str, float],
    keys: Sequence[str] = AG_METRICS,
) -> float:
    """AG = mean over UA, RA, TA, MIA of |metric(method) - metric(Retrain)|."""
    return sum(abs(metrics[k] - retrain[k]) for k in keys) / len(keys)


def speedup(retrain_minutes: float, method_minutes: float) -> float | None:
    """How many times faster than Retrain a method ran (None when it took no measurable time)."""
    return retrain_minutes / method_minutes if method_minutes > 0 else None


def _scenario(row: Mapping) -> tuple:
    """What matches a row with its Retrain: augmentation, forget set content and seed."""
    return row["aug"], row["forget_key"], row["seed"]


def add_gaps(rows: list[dict]) -> None:
    """AG, speed-up and the metrics' columns derived from Retrain (e.g. the anamnesis index)
    of every row, against the Retrain row of the same augmentation, forget set and seed.

    Rows are matched by `forget_key` (the forget set's content: its ids and the data's
    fingerprint), never by the forget set's display label."""
    retrain = {_scenario(r): r for r in rows if row_role(r) == RETRAIN}
    derived = [m for m in registered().values() if m.against_retrain is not None]
    for row in rows:
        reference = retrain.get(_scenario(row))
        row["ag"] = None if reference is None else average_gap(row, reference, AG_METRICS)
        row["speedup"] = (
            None if reference is None else speedup(reference["rte_min"], row["rte_min"])
        )
        for metric in derived:
            if metric.declared(0) <= row.keys():
                empty = dict.fromkeys(metric.derived)
                row.update(empty if reference is None else metric.against_retrain(row, reference))
