"""The one evaluator: the metrics a request admits, from one inference pass per split they read;
the bank attacks against a bank, the AUC intervals where asked, deferred attacks left pending."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from medunlearn.forget import ForgetSet
from medunlearn.metrics.attacks.rmia import A_GRID, tuned_a
from medunlearn.metrics.attacks.roc import CURVE_FPR
from medunlearn.metrics.evaluate import Request, evaluate, evaluate_logits, finish
from medunlearn.metrics.evidence import ModelScores
from medunlearn.metrics.stats import auc_interval


def test_lira_against_the_bank_catches_a_model_that_remembers_and_not_one_that_forgot(
    world_factory,
):
    """Per-example calibration sees a shift that the spread of difficulties hides from a
    population threshold."""
    remembers = world_factory(separated=True, lift=1.5, noise=0.3)
    forgot = world_factory(separated=False, noise=0.3)
    for world, remembered in ((remembers, True), (forgot, False)):
        request = Request(reference=world.bank, rmia_a=0.3)
        columns = evaluate_logits(world.logits, world.dataset, world.forget_set, request).columns
        if remembered:
            assert columns["lira_auc"] > 0.95 and columns["rmia_auc"] > 0.8
            assert columns["lira_auc"] > columns["pop_phi_auc"] + 0.2
        else:
            assert abs(columns["lira_auc"] - 0.5) < 0.05


def test_curves_are_kept_on_the_shared_fpr_points_and_histograms_count_every_sample(
    world_factory,
):
    world = world_factory(separated=True)
    request = Request(reference=world.bank, rmia_a=0.3)
    result = evaluate_logits(world.logits, world.dataset, world.forget_set, request)
    assert set(result.curves) == {"pop_phi", "lira", "rmia"}
    curve = result.curves["lira"]
    assert curve["fpr"] == CURVE_FPR.tolist()
    assert curve["tpr"] == sorted(curve["tpr"]) and curve["tpr"][-1] == 1.0
    counts = result.histograms["lira"]
    assert sum(counts["forget"]) == len(world.forget_set.forget_ids)
    assert sum(counts["test"]) == len(world.dataset.test)


def test_intervals_are_those_of_the_bootstrap_with_the_rows_attack_seed(world_factory):
    world = world_factory(separated=True)
    asked = evaluate_logits(world.logits, world.dataset, world.forget_set,
                            Request(seed=5, intervals=True)).columns  # fmt: skip
    evidence = evaluate_logits(world.logits, world.dataset, world.forget_set, Request()).evidence
    expected = auc_interval(
        evidence.scores_of("forget").phi, evidence.scores_of("test").phi, seed=5
    )
    assert (asked["pop_phi_auc_low"], asked["pop_phi_auc_high"]) == (
        expected.ci_low,
        expected.ci_high,
    )
    assert "pop_phi_auc_low" not in evidence_columns(world, Request(seed=5))
    assert "pop_loss_auc_low" not in asked  # only the checked attacks get intervals


def test_one_forgotten_image_has_an_auc_but_no_interval(world_factory):
    """A single deletion request forgets one image: the AUC is defined, its bootstrap interval
    is not, and the reference rows record none rather than stopping the study."""
    world = world_factory(separated=True)
    one = ForgetSet(np.array([0]), len(world.dataset.train), "phi", world.dataset.fingerprint)
    columns = evaluate_logits(world.logits, world.dataset, one, Request(intervals=True)).columns
    assert columns["pop_phi_auc"] is not None
    assert columns["pop_phi_auc_low"] is None and columns["pop_phi_auc_high"] is None


def evidence_columns(world, request: Request) -> dict:
    """The columns of the world's target model under a request."""
    return evaluate_logits(world.logits, world.dataset, world.forget_set, request).columns


def test_rmia_a_is_the_grid_value_that_best_attacks_the_original(world_factory):
    world = world_factory(separated=True)
    evidence = evaluate_logits(world.logits, world.dataset, world.forget_set, Request()).evidence
    scores = evidence.model_scores()
    assert isinstance(scores, ModelScores) and scores.val is not None
    a = tuned_a(scores, world.bank, world.forget_set.forget_index)
    assert a in A_GRID
    best = evidence_columns(world, Request(reference=world.bank, rmia_a=a))["rmia_auc"]
    for other in (0.0, 0.5, 1.0):
        assert (
            best >= evidence_columns(world, Request(reference=world.bank, rmia_a=other))["rmia_auc"]
        )


def test_a_request_runs_only_the_metrics_it_admits(world_factory):
    world = world_factory(separated=True)
    plain = evidence_columns(world, Request())
    assert "lira_auc" not in plain and "ulira_acc" not in plain and "ubac" not in plain
    assert {"ua", "mia", "pop_phi_auc"} <= set(plain)
    named = evidence_columns(world, Request(names=("accuracy",)))
    assert "mia" not in named and "ua" in named


def test_a_deferred_attack_is_left_pending_and_finished_later_with_the_same_result(world_factory):
    world = world_factory(separated=True)
    inline = evidence_columns(world, Request(seed=3))
    deferred = evaluate_logits(world.logits, world.dataset, world.forget_set,
                               Request(seed=3, defer=True))  # fmt: skip
    assert set(deferred.pending) == {"svc"}
    assert deferred.columns["mia"] is None and deferred.columns["mia_constant"] is None
    finished = finish("svc", deferred.pending["svc"])
    assert finished == {"mia": inline["mia"], "mia_constant": inline["mia_constant"]}


def test_one_inference_pass_per_split_read(blood, original, engine, forget_set, monkeypatch):
    passes = []
    real = type(engine).logits

    def counted(self, model, images, description=""):
        passes.append(len(images))
        return real(self, model, images, description)

    monkeypatch.setattr(type(engine), "logits", counted)
    evaluate(original, blood, forget_set, engine, Request())
    assert sorted(passes) == sorted([len(blood.train), len(blood.test)])  # no validation pass
    passes.clear()
    evaluate(original, blood, forget_set, engine, Request(names=("accuracy",), keep=("val",)))
    assert sorted(passes) == sorted([len(blood.train), len(blood.test), len(blood.val)])


def test_nan_logits_give_a_result_not_a_crash(world_factory):
    """A diverged model (NaN logits) is a result: phi -inf, confidence 0, every attack scored."""
    world = world_factory(separated=True)
    logits = {split: torch.full_like(value, float("nan")) for split, value in world.logits.items()}
    columns = evaluate_logits(logits, world.dataset, world.forget_set,
                              Request(reference=world.bank, rmia_a=0.5, intervals=True)).columns  # fmt: skip
    assert columns["ua"] == pytest.approx(100.0) or columns["ua"] >= 0
    assert np.isfinite(columns["lira_auc"]) and np.isfinite(columns["pop_phi_auc"])
