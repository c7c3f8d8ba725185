"""Distance to Retrain: per-metric gaps, the Average Gap (AG) and speed-up."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

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


def add_gaps(rows: list[dict]) -> None:
    """AG and speed-up of every row against the Retrain row of the same forget set and seed.

    Rows are matched by `forget_key` (the forget set's content: its ids and the data's
    fingerprint), never by the forget set's display label."""
    retrain = {(r["aug"], r["forget_key"], r["seed"]): r for r in rows if r["method"] == "retrain"}
    for row in rows:
        reference = retrain.get((row["aug"], row["forget_key"], row["seed"]))
        if reference is None:
            row["ag"], row["speedup"] = None, None
            continue
        row["ag"] = average_gap(row, reference, AG_METRICS)
        row["speedup"] = speedup(reference["rte_min"], row["rte_min"])
