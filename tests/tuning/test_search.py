"""The Optuna mechanics of a search: TPE finds a known optimum, the grid is the published grid,
the same seed gives the same study whatever the batch size, median pruning, checked ranges."""

import math

import pytest

pytest.importorskip("optuna", reason="Optuna is not installed: pip install -e '.[tune]'")

from medunlearn.config import ConfigError, SearchRange, TuneConfig
from medunlearn.tuning.search import best_trial, grid, n_trials, optimise, should_prune


def _synthetic(params: dict) -> dict:
    """A cheap objective with its optimum at lr = 1e-2: (log10 lr + 2)^2, one epoch."""
    value = (math.log10(params["lr"]) + 2) ** 2
    return {"params": params, "state": "complete", "value": value, "intermediate": {1: value}}


def _serial(batch):
    return [_synthetic(params) for params, _, _ in batch]


def test_tpe_search_finds_the_known_optimum_of_a_synthetic_objective():
    config = TuneConfig(trials=30, prune=False)
    trials = optimise(config, _serial)
    best = best_trial(trials)
    assert len(trials) == 30
    assert abs(math.log10(best["params"]["lr"]) + 2) < 0.15  # within 1.4x of 1e-2
    assert best["value"] == min(t["value"] for t in trials)


def test_grid_search_tries_the_published_grid_and_finds_its_best_point():
    config = TuneConfig(sampler="grid", trials=100, prune=False)
    assert n_trials(config) == len(grid(config)) == 4  # at most the grid's size
    trials = optimise(config, _serial)
    assert sorted(t["params"]["lr"] for t in trials) == [1e-4, 1e-3, 1e-2, 1e-1]
    assert best_trial(trials)["params"]["lr"] == 1e-2


def test_the_same_seed_gives_the_same_study_and_batches_see_only_earlier_trials():
    config = TuneConfig(trials=8, prune=False, parallel=3)
    seen = []

    def batch_runner(batch):
        seen.append([len(earlier) for _, _, earlier in batch])
        return _serial(batch)

    first = optimise(config, batch_runner)
    assert seen == [[0, 0, 0], [3, 3, 3], [6, 6]]
    again = optimise(config, _serial)
    assert [t["params"] for t in first] == [t["params"] for t in again]


def test_the_sampler_seed_is_the_first_tuning_seed():
    one, two = TuneConfig(trials=6, prune=False), TuneConfig(trials=6, prune=False, seed=[0, 5])
    other = TuneConfig(trials=6, prune=False, seed=[5])
    params = [[t["params"] for t in optimise(c, _serial)] for c in (one, two, other)]
    assert params[0] == params[1] != params[2]


def test_median_pruning_stops_a_trial_worse_than_the_median_of_earlier_ones():
    config = TuneConfig(startup_trials=2, warmup_epochs=1)
    earlier = [
        {"state": "complete", "value": 1.0, "intermediate": {"1": 3.0, "2": 1.0}},
        {"state": "complete", "value": 2.0, "intermediate": {"1": 4.0, "2": 2.0}},
    ]
    assert should_prune(earlier, {1: 5.0}, config)  # worse than the median 3.5
    assert not should_prune(earlier, {1: 3.0}, config)
    assert not should_prune(earlier[:1], {1: 5.0}, config)  # before startup_trials
    late = TuneConfig(startup_trials=2, warmup_epochs=2)
    assert not should_prune(earlier, {1: 5.0}, late)  # still warming up


def test_every_trial_pruned_is_one_clear_error():
    with pytest.raises(ConfigError, match="every trial was pruned"):
        best_trial([{"state": "pruned", "value": None}])


def test_search_ranges_are_checked_once_when_built():
    with pytest.raises(ConfigError, match="low < high"):
        SearchRange(0.1, 0.01)
    with pytest.raises(ConfigError, match="low > 0"):
        SearchRange(0.0, 0.1)
    with pytest.raises(ConfigError, match="held-out seeds must be other seeds"):
        TuneConfig(seed=[1], held_out=[1, 2])
    assert SearchRange(choices=[0.3, 0.5]).grid_values() == [0.3, 0.5]
