"""What a request shows for itself, in inference only, at a small part of the unlearning's cost:
the phi threshold attack on the forgotten images against unseen test images of the same
classes (with its bootstrap interval), the accuracy on the forgotten images against the test
accuracy, and the clinical metrics; and whether it lies within the acceptance criteria the
validated protocol derived."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from medunlearn.data import Dataset
from medunlearn.engine import Engine
from medunlearn.forget import ForgetSet
from medunlearn.metrics.evaluate import Request, evaluate
from medunlearn.metrics.stats import summarise

# the registered metrics a request's evidence reads
EVIDENCE = ("accuracy", "clinical", "calibration", "pop_phi", "pop_phi_matched")


@dataclass(frozen=True)
class Criterion:
    """An acceptance criterion of the protocol: an evidence statistic (lower is better), its
    label, and the bound it must not pass, from the validated requests' values."""

    key: str
    label: str
    bound: float
    values: list[float]


# the evidence statistics the protocol bounds: (key, label)
STATISTICS = (
    (
        "pop_phi_matched_auc",
        "phi attack's area under the curve (AUC), forgotten vs unseen images of their classes",
    ),
    ("forget_gap", "accuracy on the forgotten images above test accuracy (points)"),
)


def forget_gap(columns: dict) -> float:
    """How much better the model does on the forgotten images than on unseen test images
    (points): near 0, or below, once they are forgotten."""
    return (100.0 - columns["ua"]) - columns["ta"]


def measure(
    model: nn.Module, dataset: Dataset, forget_set: ForgetSet, engine: Engine, seed: int
) -> tuple[dict, torch.Tensor]:
    """A model's evidence on a request (columns, the forget gap among them) and its test
    logits (for the gate), from the one evaluator."""
    request = Request(seed, names=EVIDENCE, intervals=True)
    result = evaluate(model, dataset, forget_set, engine, request)
    columns = {**result.columns, "forget_gap": forget_gap(result.columns)}
    return columns, result.evidence.logits["test"]


def derive_criteria(rows: list[dict], confidence: float) -> list[Criterion]:
    """The acceptance criteria of a method from its rows on the protocol's simulated requests:
    each statistic's bound is the upper end of the t interval of its mean over the requests
    (at `confidence`), and never below the largest value seen."""
    criteria = []
    for key, label in STATISTICS:
        values = [float(row[key]) for row in rows if row.get(key) is not None]
        if not values:
            continue
        summary = summarise(np.array(values), confidence)
        bound = max(max(values), summary.ci_high if summary.ci_high is not None else max(values))
        criteria.append(Criterion(key, label, float(bound), values))
    return criteria


def within(columns: dict, criteria: list[dict]) -> list[dict]:
    """Each criterion's check against a request's evidence."""
    return [
        {**criterion, "value": columns.get(criterion["key"]),
         "passed": columns.get(criterion["key"]) is not None
         and columns[criterion["key"]] <= criterion["bound"]}
        for criterion in criteria
    ]  # fmt: skip


def criteria_dicts(criteria: list[Criterion]) -> list[dict]:
    """Criteria in their plain form (the protocol file)."""
    return [asdict(criterion) for criterion in criteria]
