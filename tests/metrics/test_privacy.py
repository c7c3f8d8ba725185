"""Every attack on one model from its per-sample scores: population thresholds and the bank's."""

import numpy as np
import pytest
import torch

from medunlearn.metrics.privacy import (
    CURVE_FPR,
    ModelScores,
    PrivacyResult,
    bank_attacks,
    histogram,
    population_attacks,
    reference,
    tuned_rmia_a,
)
from medunlearn.metrics.scores import SampleScores
from medunlearn.metrics.stats import auc_interval

N_TRAIN, N_TEST, N_VAL = 200, 150, 100
FORGET = torch.arange(0, 40)
RETAIN = torch.arange(40, N_TRAIN)


def _scores(phi: np.ndarray) -> SampleScores:
    """Scores of a model from its phi alone (loss and confidence follow from it)."""
    return SampleScores(np.logaddexp(0.0, -phi), 1 / (1 + np.exp(-phi)), phi)


def _model(rng, forget_shift: float = 0.0, difficulty=None) -> ModelScores:
    """A model's scores: each example has its own difficulty (shared by every model), plus
    noise; the forget rows are lifted by `forget_shift` (a model that remembers them)."""
    train_d, test_d, val_d = difficulty
    train = train_d + rng.normal(0, 0.3, N_TRAIN)
    train[FORGET.numpy()] += forget_shift
    return ModelScores(
        _scores(train),
        _scores(test_d + rng.normal(0, 0.3, N_TEST)),
        _scores(val_d + rng.normal(0, 0.3, N_VAL)),
    )


@pytest.fixture
def world():
    rng = np.random.default_rng(0)
    difficulty = [rng.normal(0, 2, n) for n in (N_TRAIN, N_TEST, N_VAL)]
    bank = reference([_model(rng, 0.0, difficulty) for _ in range(8)], FORGET)
    remembers = _model(rng, 1.5, difficulty)
    forgot = _model(rng, 0.0, difficulty)
    return bank, remembers, forgot


def test_lira_against_the_bank_catches_a_model_that_remembers_and_not_one_that_forgot(world):
    """Per-example calibration sees a shift that the spread of difficulties hides from a
    population threshold."""
    bank, remembers, forgot = world
    caught = bank_attacks(remembers, bank, FORGET, 0.3, PrivacyResult())
    population = population_attacks(remembers, FORGET, RETAIN, PrivacyResult())
    assert caught.columns["lira_auc"] > 0.95
    assert caught.columns["lira_auc"] > population.columns["pop_phi_auc"] + 0.2
    assert caught.columns["rmia_auc"] > 0.8
    clean = bank_attacks(forgot, bank, FORGET, 0.3, PrivacyResult())
    assert abs(clean.columns["lira_auc"] - 0.5) < 0.12


def test_curves_are_kept_on_the_shared_fpr_points_and_histograms_count_every_sample(world):
    bank, remembers, _ = world
    result = bank_attacks(remembers, bank, FORGET, 0.3, PrivacyResult())
    curve = result.curves["lira"]
    assert curve["fpr"] == CURVE_FPR.tolist()
    assert curve["tpr"] == sorted(curve["tpr"]) and curve["tpr"][-1] == 1.0
    counts = result.histograms["lira"]
    assert sum(counts["forget"]) == len(FORGET) and sum(counts["test"]) == N_TEST


def test_intervals_are_those_of_the_bootstrap_with_the_rows_attack_seed(world):
    _, remembers, _ = world
    result = population_attacks(remembers, FORGET, RETAIN, PrivacyResult(seed=5, intervals=True))
    expected = auc_interval(remembers.forget(FORGET).phi, remembers.test.phi, seed=5)
    assert result.columns["pop_phi_auc_low"] == expected.ci_low
    assert result.columns["pop_phi_auc_high"] == expected.ci_high
    assert (
        "pop_phi_auc_low"
        not in population_attacks(remembers, FORGET, RETAIN, PrivacyResult()).columns
    )


def test_rmia_a_is_the_grid_value_that_best_attacks_the_original(world):
    bank, remembers, _ = world
    a = tuned_rmia_a(remembers, bank, FORGET)
    assert a in np.round(np.linspace(0, 1, 11), 10)
    best = bank_attacks(remembers, bank, FORGET, a, PrivacyResult()).columns["rmia_auc"]
    for other in (0.0, 0.5, 1.0):
        assert (
            best
            >= bank_attacks(remembers, bank, FORGET, other, PrivacyResult()).columns["rmia_auc"]
        )


def test_histogram_clips_infinite_scores_into_the_outer_bins():
    counts = histogram(np.array([0.0, 1.0, np.inf]), np.array([-np.inf, 0.5]))
    assert counts["edges"][0] == 0.0 and counts["edges"][-1] == 1.0
    assert sum(counts["forget"]) == 3 and counts["forget"][-1] == 2
    assert sum(counts["test"]) == 2 and counts["test"][0] == 1
    assert len(counts["edges"]) == len(counts["forget"]) + 1
