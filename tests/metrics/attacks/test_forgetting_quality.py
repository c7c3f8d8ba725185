"""The NeurIPS 2023 unlearning challenge's forgetting score, checked by hand."""

import math

import numpy as np
import pytest
import torch

import medunlearn.metrics.attacks.forgetting_quality as forgetting_quality
from medunlearn.metrics.attacks.forgetting_quality import (
    EPSILON_CAP,
    bucket_points,
    example_epsilon,
    final_score,
    forgetting_epsilons,
    forgetting_score,
    max_epsilon,
    rule_epsilons,
)

BANK_KINDS = ("normal", "ties", "peaky", "identical", "constant", "wide", "same median")


def test_rule_epsilons_by_hand():
    eps = rule_epsilons([0.1, 0.0, 0.0, 0.5, 1.0, 0.5], [0.2, 0.0, 0.5, 0.0, 0.5, 0.5])
    delta = 1e-5
    assert eps[0] == pytest.approx(
        max(math.log(0.9 - delta) - math.log(0.2), math.log(0.8 - delta) - math.log(0.1))
    )
    assert eps[1] == np.inf  # perfect separation
    assert np.isnan(eps[2]) and np.isnan(eps[3])  # exactly one of FPR, FNR is 0: dropped
    assert eps[4] == 0.0  # log(1 - delta - 1) undefined, the other term negative: clipped
    assert eps[5] == 0.0  # a coin flip


def test_buckets_by_hand():
    assert max_epsilon(16) == 3.0  # ceil(ln 15 = 2.71)
    assert max_epsilon(512) == 7.0  # ceil(ln 511 = 6.24), the challenge's
    points = bucket_points([0.0, 0.49, 0.5, 1.2, 2.99, 3.0, 50.0], 16)
    np.testing.assert_allclose(points, [1, 1, 0.5, 0.25, 1 / 32, 0, 0])
    assert bucket_points([0.0], 2)[0] == 0.0  # ln 1 = 0: no bucket


def test_identical_banks_give_full_points():
    bank = np.random.default_rng(0).normal(size=(16, 4))
    score = forgetting_score(bank, bank.copy())
    np.testing.assert_array_equal(score.epsilons, 0.0)
    assert score.f == 1.0 and score.n_models == 16 and score.max_epsilon == 3.0


def test_separable_banks_give_no_points():
    rng = np.random.default_rng(0)
    score = forgetting_score(rng.normal(0, 1, (16, 3)), rng.normal(20, 1, (16, 3)))
    np.testing.assert_array_equal(score.epsilons, EPSILON_CAP)
    assert score.f == 0.0


def test_an_interval_separates_what_no_single_threshold_can():
    """Unlearned phi inside a gap of the retrained ones (same median 0): one interval
    separates them perfectly (epsilon capped at 50), no single threshold does."""
    unlearned = np.linspace(-0.5, 0.5, 16)
    retrained = np.r_[np.linspace(-5, -4, 8), np.linspace(4, 5, 8)]
    assert example_epsilon(unlearned, retrained) == EPSILON_CAP


def test_a_peaky_bank_gets_the_cap_and_a_single_point_mass_zero():
    """Unlearned phi within 1e-4 of 0 (range < 1% of the retrained range 2), where two retrained
    values also lie: the 0.01 threshold grid cannot isolate them (epsilon 2.6 without the rule)."""
    retrained = np.r_[np.linspace(-1, 1, 15), 0.0]
    assert example_epsilon(1e-4 * np.linspace(-1, 1, 16), retrained) == EPSILON_CAP
    assert example_epsilon(np.zeros(16), np.zeros(16)) == 0.0


def test_mixed_banks_score_between_the_extremes():
    rng = np.random.default_rng(0)
    unlearned = rng.normal(0, 1, (64, 6))
    retrained = rng.normal(np.array([0, 0, 0, 10, 10, 10]), 1, (64, 6))
    score = forgetting_score(unlearned, retrained)
    np.testing.assert_array_equal(score.epsilons[3:], EPSILON_CAP)
    assert (score.epsilons[:3] < score.max_epsilon).all()
    assert score.f == pytest.approx(bucket_points(score.epsilons, 64).mean())
    assert 0.0 < score.f <= 0.5


def test_banks_must_match():
    with pytest.raises(ValueError, match="same shape"):
        forgetting_score(np.zeros((4, 2)), np.zeros((5, 2)))
    with pytest.raises(ValueError, match="same shape"):
        forgetting_score(np.zeros((1, 2)), np.zeros((1, 2)))


def test_final_score_by_hand():
    assert final_score(0.5, 90.0, 100.0, 80.0, 100.0) == pytest.approx(0.36)


def _banks(kind: str, n_models: int, n_examples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unlearned and retrained banks (models x examples) of one kind: normal phi of random
    levels and spreads; `ties` rounded to 0.5 (ties within and across banks); `peaky` with one
    bank nearly or exactly constant; `identical` banks; `constant` banks, some one shared
    value (no rule left); `wide` spreads of tens of units (long grids); `same median` banks
    whose medians tie."""
    rng = np.random.default_rng(seed)
    shape = (n_models, n_examples)
    level = rng.normal(0, 3, n_examples)
    unlearned = rng.normal(level, rng.uniform(0.2, 3, n_examples), shape)
    retrained = rng.normal(
        level + rng.normal(0, 1, n_examples), rng.uniform(0.2, 3, n_examples), shape
    )
    if kind == "ties":
        unlearned, retrained = np.round(2 * unlearned) / 2, np.round(2 * retrained) / 2
    elif kind == "peaky":
        unlearned = level + rng.choice([0.0, 1e-4, 1e-2], n_examples) * rng.normal(size=shape)
    elif kind == "identical":
        retrained = unlearned.copy()
    elif kind == "constant":
        unlearned = np.broadcast_to(level, shape).copy()
        retrained = np.broadcast_to(np.where(np.arange(n_examples) % 2, level, level + 1), shape)
    elif kind == "wide":
        unlearned, retrained = 10 * unlearned, 10 * retrained
    elif kind == "same median":
        retrained = unlearned + rng.normal(0, 1e-3, shape) * (np.arange(n_models) % 2)[:, None]
        retrained[n_models // 2] = unlearned[n_models // 2]
    return unlearned, np.asarray(retrained)


def _reference(unlearned: np.ndarray, retrained: np.ndarray) -> np.ndarray:
    """The per-example numpy epsilons."""
    return np.array([example_epsilon(u, r) for u, r in zip(unlearned.T, retrained.T, strict=True)])


@pytest.mark.parametrize("kind", BANK_KINDS)
@pytest.mark.parametrize("n_models", range(3, 17))
def test_batched_epsilons_equal_the_per_example_reference(kind, n_models):
    unlearned, retrained = _banks(kind, n_models, 6, seed=n_models)
    np.testing.assert_array_equal(
        forgetting_epsilons(unlearned, retrained), _reference(unlearned, retrained)
    )


def test_the_kinds_of_banks_reach_every_branch_of_the_reference():
    epsilons = {kind: _reference(*_banks(kind, 8, 6, seed=8)) for kind in BANK_KINDS}
    assert (epsilons["peaky"] == EPSILON_CAP).any()
    assert (epsilons["identical"] == 0).all() and (epsilons["constant"] == 0).any()
    assert ((epsilons["normal"] > 0) & (epsilons["normal"] < EPSILON_CAP)).any()


def test_chunks_of_any_size_give_the_same_epsilons(monkeypatch):
    """Chunks of a few examples, and one example alone above the budget, change nothing."""
    unlearned, retrained = _banks("wide", 8, 40, seed=0)
    whole = forgetting_epsilons(unlearned, retrained)
    for budget in (1, 500_000):
        monkeypatch.setattr(forgetting_quality, "CPU_RULES_PER_CHUNK", budget)
        np.testing.assert_array_equal(forgetting_epsilons(unlearned, retrained), whole)
    np.testing.assert_array_equal(whole, _reference(unlearned, retrained))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("kind", BANK_KINDS)
def test_batched_epsilons_on_cuda_equal_the_reference(kind):
    unlearned, retrained = _banks(kind, 16, 40, seed=1)
    np.testing.assert_array_equal(
        forgetting_epsilons(unlearned, retrained, device="cuda"), _reference(unlearned, retrained)
    )


def test_forgetting_score_takes_a_device():
    unlearned, retrained = _banks("normal", 8, 10, seed=2)
    score = forgetting_score(unlearned, retrained, device=torch.device("cpu"))
    np.testing.assert_array_equal(score.epsilons, _reference(unlearned, retrained))
