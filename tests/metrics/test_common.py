"""Checks every registered metric and attack must pass, run over the whole registry (as
scikit-learn's common estimator checks): it writes its declared columns and nothing else, reads
nothing it did not declare, and an attack sits at chance (AUC within 0.05 of 0.5) where members
and non-members come from one distribution and above 0.9 where they are well separated. The
meta-tests at the end break a metric on purpose and see each check fail."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from medunlearn.config import RuntimeConfig, TrainConfig
from medunlearn.engine import Engine
from medunlearn.metrics import registry
from medunlearn.metrics.attacks.roc import roc_summary
from medunlearn.metrics.evaluate import Request, evaluate_logits, is_binary
from medunlearn.metrics.evidence import Evidence, Relearning, Undeclared
from medunlearn.metrics.registry import Metric, Needs, Output, registered

METRICS = list(registered().values())
IDS = [metric.name for metric in METRICS]


def tiny_model() -> nn.Module:
    """A model of the synthetic world's 1 x 2 x 2 images and two classes."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(4, 2))


def needs_of(metric: Metric) -> frozenset[str]:
    """What a metric declared it reads: its splits, and bank, repeats or model."""
    needs = metric.needs
    extra = {name for name in ("bank", "repeats", "model") if getattr(needs, name)}
    return frozenset(needs.splits) | extra


def evidence_for(metric: Metric, world, allowed: frozenset[str] | None = None) -> Evidence:
    """The world's evidence with everything a metric may need, limited to `allowed`."""
    relearning = Relearning(TrainConfig(epochs=1, lr=0.1, batch_size=64), 100.0,
                            Engine(RuntimeConfig(device="cpu")), 0, 2, 0.05)  # fmt: skip
    return Evidence(world.dataset, world.forget_set, world.logits, 0, world.bank, 0.5,
                    world.repeats, tiny_model(), relearning, allowed)  # fmt: skip


def output_of(metric: Metric, evidence: Evidence) -> Output:
    """A metric's output computed at once (a deferred one prepared and finished here)."""
    if metric.deferred is not None:
        return metric.deferred.finish(metric.deferred.prepare(evidence))
    return metric.compute(evidence)


def separation(metric: Metric, output: Output) -> float:
    """How well an attack tells its members from its non-members, on the AUC's scale."""
    if output.members is not None:
        return roc_summary(output.members, output.nonmembers).auc
    assert metric.separation is not None, f"{metric.name} has no scores and no separation"
    return metric.separation(output.columns)


def check_declared_columns(metric: Metric, world) -> None:
    """The evaluator writes exactly the columns the metric declares."""
    request = Request(
        0, names=(metric.name,), reference=world.bank, rmia_a=0.5, repeats=world.repeats,
        relearning=evidence_for(metric, world).relearning, intervals=True,
        evaluation=dataclasses.replace(Request().evaluation, relearn=True),
    )  # fmt: skip
    result = evaluate_logits(world.logits, world.dataset, world.forget_set, request, tiny_model())
    declared = metric.declared(world.dataset.n_classes, intervals=True)
    assert set(result.columns) == declared, (metric.name, set(result.columns) ^ declared)


def check_reads_only_what_it_declares(metric: Metric, world) -> None:
    """Given only what it declared, the metric computes (reading more raises Undeclared)."""
    output_of(metric, evidence_for(metric, world, needs_of(metric)))


def check_chance(metric: Metric, world) -> None:
    """Where members and non-members come from one distribution, the attack is at chance."""
    value = separation(metric, output_of(metric, evidence_for(metric, world)))
    assert abs(value - 0.5) <= 0.05, (metric.name, value)


def check_separated(metric: Metric, world) -> None:
    """Where members and non-members are well separated, the attack tells them apart."""
    value = separation(metric, output_of(metric, evidence_for(metric, world)))
    assert value > 0.9, (metric.name, value)


def _applicable(metric: Metric, world) -> bool:
    """Whether the synthetic world (a binary task without a positive class) can serve it."""
    return not metric.needs.binary or is_binary(world.dataset)


@pytest.mark.parametrize("metric", METRICS, ids=IDS)
def test_every_metric_writes_its_declared_columns_and_nothing_else(metric, world_factory):
    world = world_factory(separated=True)
    if _applicable(metric, world):
        check_declared_columns(metric, world)


@pytest.mark.parametrize("metric", METRICS, ids=IDS)
def test_every_metric_reads_only_what_it_declares(metric, world_factory):
    world = world_factory(separated=True)
    if _applicable(metric, world):
        check_reads_only_what_it_declares(metric, world)


ATTACKS = [metric for metric in METRICS if metric.attack]


@pytest.mark.parametrize("metric", ATTACKS, ids=[m.name for m in ATTACKS])
def test_every_attack_is_at_chance_on_one_distribution(metric, world_factory):
    """For a test without per-example scores (the forgetting score F) one distribution means
    the same models: F is biased at finite N (two independent banks of N Retrains score below
    1), and only banks of the very same models are its exact chance point."""
    identical = not metric.scored
    check_chance(metric, world_factory(separated=False, identical=identical))


@pytest.mark.parametrize("metric", ATTACKS, ids=[m.name for m in ATTACKS])
def test_every_attack_tells_well_separated_members_apart(metric, world_factory):
    check_separated(metric, world_factory(separated=True))


def test_the_registry_holds_the_attacks_of_the_studies():
    names = {metric.name for metric in ATTACKS}
    assert {"svc", "pop_loss", "pop_phi", "lira", "rmia", "ulira", "forget_quality"} <= names


# --- the checks fail on broken metrics ----------------------------------------------------------


def _broken(compute, **spec) -> Metric:
    """A metric that is not registered, to see the checks fail on it."""
    needs = spec.pop("needs", Needs(splits=frozenset({"forget", "test"})))
    return Metric("broken", "broken", compute, needs, **spec)


def test_a_metric_reading_an_undeclared_split_fails_the_check(world_factory):
    def reads_val(evidence):
        forget, val = evidence.scores_of("forget"), evidence.scores_of("val")
        return Output({}, forget.phi, val.phi)

    with pytest.raises(Undeclared, match="val"):
        check_reads_only_what_it_declares(_broken(reads_val), world_factory(separated=True))


def test_a_metric_reading_the_wrong_split_fails_the_separation_check(world_factory):
    """An attack reading the wrong splits (test vs validation where it meant forget vs test)
    cannot tell the members apart: the separation check catches it."""

    def wrong(evidence):
        return Output({}, evidence.scores_of("test").phi, evidence.scores_of("val").phi)

    broken = _broken(wrong, needs=Needs(splits=frozenset({"test", "val"})), roc=True)
    with pytest.raises(AssertionError):
        check_separated(broken, world_factory(separated=True))


def test_a_metric_writing_an_undeclared_column_fails_the_check(world_factory, monkeypatch):
    metric = registered()["pop_phi"]
    compute = metric.compute

    def extra(evidence):
        output = compute(evidence)
        output.columns["stray"] = 1.0
        return output

    broken = dataclasses.replace(metric, compute=extra)
    monkeypatch.setitem(registry.METRICS, "pop_phi", broken)
    with pytest.raises(AssertionError, match="stray"):
        check_declared_columns(broken, world_factory(separated=True))


def test_an_attack_blind_to_membership_fails_the_separation_check(world_factory):
    def blind(evidence):
        rng = np.random.default_rng(0)
        return Output({}, rng.normal(size=10), rng.normal(size=10))

    with pytest.raises(AssertionError):
        check_separated(_broken(blind, roc=True), world_factory(separated=True))


def test_an_attack_seeing_membership_where_there_is_none_fails_the_chance_check(world_factory):
    def biased(evidence):
        return Output({}, evidence.scores_of("forget").phi + 3, evidence.scores_of("test").phi)

    with pytest.raises(AssertionError):
        check_chance(_broken(biased, roc=True), world_factory(separated=False))
