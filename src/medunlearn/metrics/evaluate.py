"""The one evaluator: every caller (a study's rows, bank models, tuning trials, deletion
requests) evaluates a model here, with one inference pass per split its metrics read."""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from medunlearn.config import EvaluationConfig
from medunlearn.data import Dataset
from medunlearn.engine import Engine
from medunlearn.forget import ForgetSet
from medunlearn.metrics.attacks.roc import curve, histogram, roc_summary
from medunlearn.metrics.evidence import SOURCE, Evidence, Reference, Relearning, Repeats
from medunlearn.metrics.registry import INTERVAL_SUFFIXES, ROC_SUFFIXES, Metric, registered
from medunlearn.metrics.stats import auc_interval


def predict(
    model: nn.Module, dataset: Dataset, engine: Engine, sources: Iterable[str]
) -> dict[str, torch.Tensor]:
    """One inference pass over each dataset split named (`train`, `test`, `val`)."""
    return {
        source: engine.logits(model, getattr(dataset, source).images, f"inference {source}")
        for source in dict.fromkeys(sources)
    }


def is_binary(dataset: Dataset) -> bool:
    """Whether the task is binary with label 1 the positive (malignant) class."""
    return dataset.n_classes == 2 and dataset.positive_class == 1


@dataclass(frozen=True)
class Request:
    """What to evaluate besides the model: the attacks' `seed`; `names` (None: every metric
    whose needs are met); a bank `reference` with RMIA's `rmia_a`; the method's `repeats`;
    `relearning` (the relearn metric, where `evaluation.relearn` asks for it); the AUC
    `intervals` of the checked attacks (the reference rows); `defer` (leave the deferred
    attacks' inputs in `Evaluation.pending` instead of fitting them now); `keep` (splits to
    predict whatever the metrics read: a bank model keeps every split's scores)."""

    seed: int = 0
    names: Collection[str] | None = None
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    reference: Reference | None = None
    rmia_a: float | None = None
    repeats: Repeats | None = None
    relearning: Relearning | None = None
    intervals: bool = False
    defer: bool = False
    keep: tuple[str, ...] = ()

    def admits(self, metric: Metric, dataset: Dataset) -> bool:
        """Whether a metric runs for this request on this data: named (or no names given), its
        option on (or it is named), and what it needs at hand."""
        needs, named = metric.needs, self.names is not None and metric.name in self.names
        return (
            (self.names is None or named)
            and (needs.option is None or named or bool(getattr(self.evaluation, needs.option)))
            and (not needs.binary or is_binary(dataset))
            and (not needs.bank or self.reference is not None)
            and (not needs.repeats or self.repeats is not None)
            and (not needs.model or self.relearning is not None)
        )


@dataclass
class Evaluation:
    """One model's results: the metrics' columns, the attacks' thinned ROCs and histograms,
    the inputs of the attacks left pending (`Request.defer`), the evidence they were read from
    (its per-sample scores are what a bank keeps), and the seconds taken."""

    columns: dict
    curves: dict = field(default_factory=dict)
    histograms: dict = field(default_factory=dict)
    pending: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)
    evidence: Evidence | None = None
    seconds: float = 0.0


def record(metric: Metric, output_columns: Mapping, members, nonmembers, evaluation: Evaluation,
           intervals: bool, seed: int) -> None:  # fmt: skip
    """Write a metric's output into an evaluation: for an attack with a ROC, its AUC and TPRs,
    thinned curve and histogram, and its AUC interval where asked; then its own columns."""
    columns = evaluation.columns
    if metric.roc:
        summary = roc_summary(members, nonmembers)
        values = (summary.auc, summary.tpr_at_1pct_fpr, summary.tpr_at_01pct_fpr)
        columns.update({f"{metric.name}_{s}": v for s, v in zip(ROC_SUFFIXES, values, strict=True)})
        if metric.curve:
            evaluation.curves[metric.name] = curve(summary)
            evaluation.histograms[metric.name] = histogram(members, nonmembers)
        if metric.checked and intervals:
            # one forgotten image (a single deletion request) has an AUC but no interval
            bounds = (None, None)
            if min(len(members), len(nonmembers)) >= 2:
                interval = auc_interval(members, nonmembers, seed=seed)
                bounds = (interval.ci_low, interval.ci_high)
            columns.update(
                {f"{metric.name}_{s}": v for s, v in zip(INTERVAL_SUFFIXES, bounds, strict=True)}
            )
    columns.update(output_columns)


def admitted(dataset: Dataset, request: Request) -> list[Metric]:
    """The metrics a request runs on this data, in registration order."""
    return [m for m in registered().values() if request.admits(m, dataset)]


def sources(metrics: Iterable[Metric], request: Request) -> list[str]:
    """The dataset splits to predict: those the metrics read, and those the request keeps."""
    read = [SOURCE[split] for m in metrics for split in sorted(m.needs.splits)]
    return list(dict.fromkeys([*read, *request.keep]))


def evaluate_logits(
    logits: dict[str, torch.Tensor],
    dataset: Dataset,
    forget_set: ForgetSet,
    request: Request = Request(),
    model: nn.Module | None = None,
    device: torch.device | None = None,
) -> Evaluation:
    """Every metric the request admits, read off a model's logits per split (`model` for the
    metrics that train on it; `device` for those that compute on it)."""
    started = time.perf_counter()
    evidence = Evidence(
        dataset, forget_set, logits, request.seed, request.reference, request.rmia_a,
        request.repeats, model, request.relearning, device=device,
    )  # fmt: skip
    evaluation = Evaluation({}, evidence=evidence)
    for metric in admitted(dataset, request):
        if metric.deferred is not None and request.defer:
            evaluation.pending[metric.name] = metric.deferred.prepare(evidence)
            evaluation.columns.update(dict.fromkeys(metric.declared(dataset.n_classes)))
            continue
        output = metric.compute(evidence)
        record(metric, output.columns, output.members, output.nonmembers, evaluation,
               request.intervals, request.seed)  # fmt: skip
    evaluation.seconds = time.perf_counter() - started
    return evaluation


def evaluate(
    model: nn.Module,
    dataset: Dataset,
    forget_set: ForgetSet,
    engine: Engine,
    request: Request = Request(),
) -> Evaluation:
    """Every metric the request admits, in registration order, from one inference pass over
    each split they read (plus `request.keep`); its seconds include the inference."""
    started = time.perf_counter()
    logits = predict(model, dataset, engine, sources(admitted(dataset, request), request))
    evaluation = evaluate_logits(logits, dataset, forget_set, request, model, engine.device)
    evaluation.seconds = time.perf_counter() - started
    return evaluation


def finish(name: str, inputs: Mapping[str, np.ndarray]) -> dict:
    """The columns of a deferred attack, from the inputs it left pending."""
    metric = registered()[name]
    if metric.deferred is None:
        raise ValueError(f"metric {name!r} is not deferred")
    output = metric.deferred.finish(inputs)
    holder = Evaluation({})
    record(metric, output.columns, output.members, output.nonmembers, holder, False, 0)
    return holder.columns
