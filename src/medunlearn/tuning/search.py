"""The Optuna mechanics of a search: the searched params' distributions and grid, median
pruning, and the study asked a batch of trials at a time.

The study lives in memory and is replayed: its sampler is seeded and every trial's result is
read from the cache, so a search stopped anywhere (kill -9 inside a trial included) runs again
to the same trials. Optuna's JournalStorage on a file was tried and not kept: after a kill it
holds the killed trial as RUNNING, and a resumed study asks its next params from a sampler
whose random state started anew, so it differs from the uninterrupted study.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

from medunlearn.config import ConfigError, MissingExtra, SearchRange, TuneConfig

try:
    import optuna
except ImportError:  # the `tune` extra
    raise MissingExtra("medunlearn tune needs Optuna: pip install -e '.[tune]'") from None

optuna.logging.set_verbosity(optuna.logging.WARNING)  # a study per pruning check: no chatter

# runs a batch of trials, each given as (params, number, the earlier trials' pruning view),
# and returns their results (dicts with state, value, intermediate) in the same order
BatchRunner = Callable[[list[tuple[dict, int, list[dict]]]], list[dict]]


def distribution(values: SearchRange, grid: bool) -> optuna.distributions.BaseDistribution:
    """The Optuna distribution of one searched param: its grid, its choices or its range."""
    if grid or values.choices is not None:
        return optuna.distributions.CategoricalDistribution(values.grid_values())
    return optuna.distributions.FloatDistribution(values.low, values.high, log=values.log)


def grid(tune: TuneConfig) -> list[dict]:
    """Every combination of the searched params' grid values, in order: the published
    protocol's grid search (enqueued as fixed trials, so ask-and-tell needs no grid sampler)."""
    names = list(tune.space)
    values = [tune.space[name].grid_values() for name in names]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*values)]


def n_trials(tune: TuneConfig) -> int:
    """The trials to run: `tune.trials`, at most the grid's size on the grid sampler."""
    if tune.sampler != "grid":
        return tune.trials
    return min(tune.trials, len(grid(tune)))


def should_prune(earlier: Sequence[dict], intermediate: dict[int, float], tune: TuneConfig) -> bool:
    """Optuna's median pruner on a trial's objective so far against the `earlier` trials."""
    pruner = optuna.pruners.MedianPruner(tune.startup_trials, tune.warmup_epochs)
    study = optuna.create_study(direction="minimize", pruner=pruner)
    for trial in earlier:
        state = optuna.trial.TrialState.COMPLETE
        if trial["state"] == "pruned":
            state = optuna.trial.TrialState.PRUNED
        steps = {int(step): value for step, value in trial["intermediate"].items()}
        value = trial["value"] if state == optuna.trial.TrialState.COMPLETE else None
        study.add_trial(
            optuna.trial.create_trial(state=state, value=value, intermediate_values=steps)
        )
    current = study.ask()
    for step, value in sorted(intermediate.items()):
        current.report(value, step)
    return current.should_prune()


def pruning_view(trials: Sequence[dict]) -> list[dict]:
    """What pruning uses of the earlier trials (and what a trial's key names of them)."""
    return [{k: t[k] for k in ("state", "value", "intermediate")} for t in trials]


def optimise(tune: TuneConfig, run_batch: BatchRunner) -> list[dict]:
    """The Optuna study: `tune.parallel` trials asked at a time, each pruned against the
    trials finished before its batch, told back in order, so any executor (and a replay from
    the cache) gives the same study. Returns the trials' results in order."""
    total = n_trials(tune)
    sampler = optuna.samplers.TPESampler(seed=tune.seed[0])
    study = optuna.create_study(direction="minimize", sampler=sampler)
    space = {name: distribution(v, tune.sampler == "grid") for name, v in tune.space.items()}
    for point in grid(tune)[:total] if tune.sampler == "grid" else []:
        study.enqueue_trial(point)
    trials: list[dict] = []
    while len(trials) < total:
        asked = [study.ask(space) for _ in range(min(tune.parallel, total - len(trials)))]
        earlier = pruning_view(trials)
        results = run_batch([(trial.params, trial.number, earlier) for trial in asked])
        for trial, result in zip(asked, results, strict=True):
            for step, value in result["intermediate"].items():
                trial.report(value, int(step))
            if result["state"] == "pruned":
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            else:
                study.tell(trial, result["value"])
            trials.append(result)
    return trials


def best_trial(trials: Sequence[dict]) -> dict:
    """The finished trial of the lowest objective (the first of equals)."""
    complete = [t for t in trials if t["state"] == "complete"]
    if not complete:
        raise ConfigError("every trial was pruned: raise tune.startup_trials or set tune.prune off")
    return min(complete, key=lambda t: t["value"])
