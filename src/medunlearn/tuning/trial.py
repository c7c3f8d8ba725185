"""One tuning trial: the problem every trial shares (per tuning seed: its data, a probe of it,
the original and Retrain's metrics on both), the objective, and the trial itself, cached so
that a search replays from the cache and a trial killed mid-way resumes from its last epoch."""

from __future__ import annotations

import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medunlearn.checkpoints import TrainedModel
from medunlearn.config import ConfigError, ExperimentConfig, MethodConfig, TuneConfig
from medunlearn.data import Split
from medunlearn.engine import Engine
from medunlearn.forget import ForgetSet, select_forget
from medunlearn.methods import Context, UnlearnData
from medunlearn.methods.base import sample_rows
from medunlearn.methods.registry import get_method, method_params
from medunlearn.metrics.evaluate import Request, evaluate
from medunlearn.metrics.gap import AG_METRICS, average_gap
from medunlearn.progress import Progress
from medunlearn.roles import retrain_of
from medunlearn.seeds import Seeds
from medunlearn.store import Store, atomic_write_json, cache_key
from medunlearn.study.pipeline import resumable_context, row_key, run_method, train_original
from medunlearn.study.setup import open_session
from medunlearn.tuning.search import should_prune

# the metrics a trial records of its final models (means over the tuning seeds)
TRIAL_METRICS = ("ua", "ra", "ta", "mia", "risk_2")
# the registered metrics the objective reads: no per-sample attack but the SVC
OBJECTIVE_METRICS = ("accuracy", "clinical", "svc")


def read_json(path: Path) -> dict:
    """A JSON file this package wrote (atomically, so whole)."""
    return json.loads(path.read_text())


class Pruned(Exception):
    """Raised inside a trial's fit when the median pruner stops it."""


def objective(metrics: dict, target: dict, kind: str) -> float:
    """What the search minimises: AG to Retrain, or the model's Global Risk II on test."""
    if kind == "risk_2":
        return float(metrics["risk_2"])
    return average_gap(metrics, target, AG_METRICS)


@dataclass(frozen=True)
class Problem:
    """What every trial of one search shares for one tuning seed: its data, the probe its
    epochs are checked on, the original, Retrain's metrics on both (the targets) and Retrain's
    cost."""

    config: ExperimentConfig
    seeds: Seeds
    data: UnlearnData
    probe: UnlearnData
    original: TrainedModel
    target: dict
    reference_seconds: float
    context: Context

    @property
    def store(self) -> Store:
        """The model cache."""
        assert self.context.store is not None
        return self.context.store


def probe_data(data: UnlearnData, seed: int) -> UnlearnData:
    """The forget set, as many retain rows as the test split has (seeded) and the test split:
    what a trial's per-epoch objective is measured on, at about half the cost of the whole
    training split (the MIA's SVC draws that many members anyway)."""
    dataset, forget_set = data.dataset, data.forget_set
    generator = torch.Generator().manual_seed(seed)
    retain = sample_rows(data.retain_index, len(dataset.test), generator)
    rows = torch.cat([data.forget_index, retain.sort().values])
    train = Split(dataset.train.images[rows], dataset.train.labels[rows])
    probe = dataclasses.replace(dataset, train=train)
    ids = np.arange(len(data.forget_index))
    spec = {**forget_set.spec, "probe": True}
    subset = ForgetSet(ids, len(rows), dataset.name, forget_set.data_fingerprint, spec, seed)
    return UnlearnData(probe, subset)


def objective_metrics(model: nn.Module, data: UnlearnData, engine: Engine, seed: int) -> dict:
    """UA, RA, TA, the SVC MIA (and clinical metrics on binary tasks) of a model, from the one
    evaluator: the metrics the objective reads, without the per-sample attacks."""
    request = Request(seed, names=OBJECTIVE_METRICS)
    return evaluate(model, data.dataset, data.forget_set, engine, request).columns


def problem(config: ExperimentConfig, seed: int, progress: Progress | None = None) -> Problem:
    """Train (or read) one tuning seed's original and Retrain, and Retrain's metrics on the
    forget set's data and on its probe (cached)."""
    session = open_session(config, progress)
    engine, dataset, store = session.engine, session.dataset, session.store
    seeds = Seeds(seed)
    original = train_original(config, dataset, engine, store, seeds.train)
    forget_set = select_forget(dataset, config.forget[0], seeds.forget, original.difficulty)
    data = UnlearnData(dataset, forget_set)
    probe = probe_data(data, seeds.attack)
    context = Context(engine, seeds.retrain, config.train, config.model, store, name="retrain")
    retrain = retrain_of(config)
    key = row_key(config, dataset, seeds, forget_set, retrain)
    reference = cache_key("reference", key, seeds.attack, engine.inference_path)
    path = store.path("tune-reference", reference, ".json")
    if path.is_file():
        saved = read_json(path)
    else:
        model, seconds = run_method(retrain, data, original, context, key)
        target = {
            "data": objective_metrics(model, data, engine, seeds.attack),
            "probe": objective_metrics(model, probe, engine, seeds.attack),
        }
        saved = {"target": target, "seconds": seconds}
        atomic_write_json(path, saved)
    context = dataclasses.replace(context, seed=seeds.unlearn)
    return Problem(config, seeds, data, probe, original, saved["target"], saved["seconds"], context)


def reference_seconds(
    config: ExperimentConfig, seed: int, progress: Progress | None = None
) -> float:
    """A search's reference job for one tuning seed: its original and Retrain; Retrain's seconds."""
    return problem(config, seed, progress).reference_seconds


def epochs_reported(method: MethodConfig, config: ExperimentConfig) -> int:
    """How many epochs a method reports per run (its registered epoch count; the training
    recipe's where that is None; 0 for a method that trains none)."""
    field = get_method(method.name).epochs
    if field is None:
        return 0
    return getattr(method_params(method.name, method.params), field) or config.train.epochs


def run_trial(
    config: ExperimentConfig,
    method: MethodConfig,
    params: dict,
    number: int,
    earlier: list[dict],
    progress: Progress | None = None,
) -> dict:
    """One trial: the method with `params` on each tuning seed's problem in turn, its objective
    after every epoch (step k x E + e for seed k's epoch e, pruned by the median rule against
    `earlier`), then on its final models; the trial's objective and metrics are the means over
    the seeds. Cached, and resumable from its last epoch (finished seeds are kept)."""
    tune = config.tune
    setups = [problem(config, seed, progress) for seed in tune.seed]
    trial_method = MethodConfig(method.name, {**method.params, **params}, method.label)
    model_keys = [row_key(config, s.data.dataset, s.seeds, s.data.forget_set, trial_method)
                  for s in setups]  # fmt: skip
    pruning = (tune.prune, tune.startup_trials, tune.warmup_epochs)
    seen = earlier if tune.prune else []  # without pruning a trial depends on no other
    targets = [s.target for s in setups]
    key = cache_key("trial", model_keys, targets, tune.objective, pruning, seen)
    store = setups[0].store
    path = store.path("trials", key, ".json")
    if path.is_file():
        return read_json(path)
    partial = store.path("trials", key, ".partial.json")
    sofar = read_json(partial) if partial.is_file() else {}
    intermediate = {int(step): v for step, v in sofar.get("intermediate", {}).items()}
    finished: list[dict] = sofar.get("finished", [])
    spent, started = sofar.get("seconds", 0.0), time.perf_counter()
    per_seed = epochs_reported(trial_method, config)

    def save() -> None:
        seconds = spent + time.perf_counter() - started
        atomic_write_json(partial, {"intermediate": intermediate, "finished": finished,
                                    "seconds": seconds})  # fmt: skip

    state, values = "complete", []
    try:
        for k, setup in enumerate(setups):
            if k < len(finished):
                continue
            engine = setup.context.engine

            def on_epoch(epoch: int, model: nn.Module, setup=setup, k=k, engine=engine) -> None:
                metrics = objective_metrics(model, setup.probe, engine, setup.seeds.attack)
                step = k * per_seed + epoch
                intermediate[step] = objective(metrics, setup.target["probe"], tune.objective)
                save()
                if tune.prune and should_prune(seen, intermediate, tune):
                    raise Pruned

            name = f"trial {number + 1} s{setup.seeds.seed}"
            context = dataclasses.replace(setup.context, name=name, on_epoch=on_epoch)
            try:
                model, _ = run_method(
                    trial_method, setup.data, setup.original, context, f"{key}-{k}"
                )
            except Pruned:
                for stale in resumable_context(context, trial_method, f"{key}-{k}").state_files():
                    stale.unlink(missing_ok=True)
                raise
            finished.append(objective_metrics(model, setup.data, engine, setup.seeds.attack))
            save()
        values = [objective(m, s.target["data"], tune.objective)
                  for m, s in zip(finished, setups, strict=True)]  # fmt: skip
    except Pruned:
        state = "pruned"
    result = {
        "number": number,
        "params": params,
        "state": state,
        "value": float(np.mean(values)) if state == "complete" else None,
        "intermediate": intermediate,
        "epochs": max(intermediate, default=0),
        "runs": len(finished) + (state == "pruned"),
        "seconds": spent + time.perf_counter() - started,
        **_mean_metrics(finished if state == "complete" else []),
    }
    atomic_write_json(path, result)
    partial.unlink(missing_ok=True)
    return result


def _mean_metrics(finished: list[dict]) -> dict:
    """The trial's recorded metrics: their means over the tuning seeds' final models."""
    if not finished:
        return {}
    keys = [k for k in TRIAL_METRICS if all(m.get(k) is not None for m in finished)]
    return {k: float(np.mean([m[k] for m in finished])) for k in keys}


def check_space(method: MethodConfig, tune: TuneConfig) -> None:
    """Every searched name is a param of the method (checked with a value from its range)."""
    for name, values in tune.space.items():
        probe = values.choices[0] if values.choices is not None else values.low
        try:
            method_params(method.name, {**method.params, name: probe})
        except ConfigError as error:
            raise ConfigError(f"tune.space.{name}: {error}") from None
