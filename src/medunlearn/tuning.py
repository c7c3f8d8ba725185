"""Hyper-parameter search of an unlearning method against Retrain (Optuna), with its cost.

Trials run on one forget set and seed (`tune.seed`) and are scored by their distance to
Retrain there; the best params are then evaluated on held-out seeds (other originals, forget
sets and Retrains), so the AG reported is not the one tuned on. Tuning needs a Retrain, and
each trial is an unlearning run: that cost, the one the RTE column hides (Nasirigerdeh et al.
2024), is counted and reported beside the method's run time.

The study replays from the cache: each trial's result (and, while it runs, its per-epoch
objective) is stored under a key of its params and of the trials its pruning saw, so a study
interrupted anywhere (even by kill -9 inside a trial, which then resumes from its last epoch)
continues with the same trials, and the same sampler seed gives the same study again.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from medunlearn.config import (
    ConfigError,
    ExperimentConfig,
    MethodConfig,
    MissingExtra,
    SearchRange,
    TuneConfig,
    dump_config,
)
from medunlearn.data import Split
from medunlearn.engine import Engine
from medunlearn.executor import Executor, Job, executor_for, run_jobs
from medunlearn.experiment import method_list, prepare_run, run, validate
from medunlearn.figures import overhead_figure, trials_figure
from medunlearn.forget import ForgetSet, select_forget
from medunlearn.methods import Context, UnlearnData
from medunlearn.methods.base import sample_rows
from medunlearn.methods.registry import method_params
from medunlearn.metrics import predict
from medunlearn.metrics.evaluation import metrics_before_mia, mia_inputs
from medunlearn.metrics.gap import AG_METRICS, average_gap
from medunlearn.pipeline import row_key, run_method, train_original
from medunlearn.progress import NullProgress, Progress, StudyView
from medunlearn.report import (
    UNLEARNING_TABLE,
    Column,
    csv_text,
    markdown_table,
    summarise,
    table_rows,
)
from medunlearn.seeds import Seeds
from medunlearn.store import Store, atomic_write_json, atomic_write_text, cache_key

try:
    import optuna
except ImportError:  # the `tune` extra
    raise MissingExtra("medunlearn tune needs Optuna: pip install -e '.[tune]'") from None

optuna.logging.set_verbosity(optuna.logging.WARNING)  # a study per pruning check: no chatter

# the metrics a trial records of its final model
TRIAL_METRICS = ("ua", "ra", "ta", "mia", "risk_2")


def _read(path: Path) -> dict:
    """A JSON file this module wrote (atomically, so whole)."""
    return json.loads(path.read_text())


class Pruned(Exception):
    """Raised inside a trial's fit when the median pruner stops it."""


@dataclass
class Tuning:
    """A finished search: its trials, the best params and the search's cost."""

    method: MethodConfig
    trials: list[dict]
    best: dict
    reference_seconds: float

    @property
    def trial_seconds(self) -> float:
        """Wall time of every trial, pruned ones included."""
        return sum(trial["seconds"] for trial in self.trials)

    @property
    def cost(self) -> dict:
        """What the search cost: its Retrain reference and trials, in minutes and trainings."""
        return {
            "reference_min": self.reference_seconds / 60,
            "trials_min": self.trial_seconds / 60,
            "tune_min": (self.reference_seconds + self.trial_seconds) / 60,
            "trials": len(self.trials),
            "pruned": sum(trial["state"] == "pruned" for trial in self.trials),
            "trial_epochs": sum(trial["epochs"] for trial in self.trials),
            "trainings": 1 + len(self.trials),  # the Retrain reference, then one run a trial
        }


def tuned_method(config: ExperimentConfig, name: str | None) -> MethodConfig:
    """The method to tune: the config's method of that label or name (its params are the
    fixed ones), else the registry's method with its defaults."""
    name = name or config.tune.method
    if not name:
        raise ConfigError("name the method to tune: --method NAME or tune.method in the config")
    if name == "retrain":
        raise ConfigError("Retrain is the reference of the search and has nothing to tune")
    for method in config.methods:
        if name in (method.label, method.name):
            return method
    method_params(name, {})  # an unknown name is refused with the list of methods
    return MethodConfig(name)


def _check_space(method: MethodConfig, tune: TuneConfig) -> None:
    """Every searched name is a param of the method (checked with a value from its range)."""
    for name, values in tune.space.items():
        probe = values.choices[0] if values.choices is not None else values.low
        try:
            method_params(method.name, {**method.params, name: probe})
        except ConfigError as error:
            raise ConfigError(f"tune.space.{name}: {error}") from None


def _distribution(values: SearchRange, grid: bool) -> optuna.distributions.BaseDistribution:
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


def objective(metrics: dict, target: dict, kind: str) -> float:
    """What the search minimises: AG to Retrain, or the model's Global Risk II on test."""
    if kind == "risk_2":
        return float(metrics["risk_2"])
    return average_gap(metrics, target, AG_METRICS)


@dataclass(frozen=True)
class Problem:
    """What every trial of one search shares: its data, the probe its epochs are checked on,
    the original, Retrain's metrics on both (the targets) and Retrain's cost."""

    config: ExperimentConfig
    data: UnlearnData
    probe: UnlearnData
    original: Any
    target: dict
    reference_seconds: float
    context: Context
    seeds: Seeds

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
    """UA, RA, TA, the SVC MIA (and clinical metrics on binary tasks) of a model: the metrics
    the objective reads, without the population attacks' per-sample scores."""
    predictions = predict(model, data.dataset, engine)
    metrics = metrics_before_mia(predictions, data.dataset, data.forget_set)
    inputs = mia_inputs(predictions, data.dataset, data.forget_set, seed)
    return {**metrics, "mia": inputs.attack().efficacy}


def problem(config: ExperimentConfig, progress: Progress | None) -> Problem:
    """Train (or read) the tuning seed's original and Retrain, and Retrain's metrics on the
    forget set's data and on its probe."""
    engine, dataset, store = prepare_run(config, progress)
    seeds = Seeds(config.tune.seed)
    original = train_original(config, dataset, engine, store, seeds.train)
    forget_set = select_forget(dataset, config.forget[0], seeds.forget, original.difficulty)
    data = UnlearnData(dataset, forget_set)
    probe = probe_data(data, seeds.attack)
    context = Context(engine, seeds.retrain, config.train, config.model, store, name="retrain")
    retrain = method_list(config)[1]
    key = row_key(config, dataset, seeds, forget_set, retrain)
    path = store.path("tune-reference", cache_key("reference", key, seeds.attack), ".json")
    if path.is_file():
        saved = _read(path)
    else:
        model, seconds = run_method(retrain, data, original, context, key)
        target = {
            "data": objective_metrics(model, data, engine, seeds.attack),
            "probe": objective_metrics(model, probe, engine, seeds.attack),
        }
        saved = {"target": target, "seconds": seconds}
        atomic_write_json(path, saved)
    context = dataclasses.replace(context, seed=seeds.unlearn)
    args = (config, data, probe, original, saved["target"], saved["seconds"], context, seeds)
    return Problem(*args)


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


def _pruning_view(trials: Sequence[dict]) -> list[dict]:
    """What pruning uses of the earlier trials (and what a trial's key names of them)."""
    return [{k: t[k] for k in ("state", "value", "intermediate")} for t in trials]


def run_trial(
    config: ExperimentConfig,
    method: MethodConfig,
    params: dict,
    number: int,
    earlier: list[dict],
    progress: Progress | None = None,
) -> dict:
    """One trial: the method with `params` on the tuning problem, its objective after every
    epoch (pruned by the median rule against `earlier`), then on its final model; cached."""
    tune = config.tune
    setup = problem(config, progress)
    trial_method = MethodConfig(method.name, {**method.params, **params}, method.label)
    model_key = row_key(
        config, setup.data.dataset, setup.seeds, setup.data.forget_set, trial_method
    )
    pruning = (tune.prune, tune.startup_trials, tune.warmup_epochs)
    seen = earlier if tune.prune else []  # without pruning a trial depends on no other
    key = cache_key("trial", model_key, setup.target, tune.objective, pruning, seen)
    path = setup.store.path("trials", key, ".json")
    if path.is_file():
        return _read(path)
    partial = setup.store.path("trials", key, ".partial.json")
    sofar = _read(partial) if partial.is_file() else {"intermediate": {}, "seconds": 0.0}
    intermediate = {int(step): value for step, value in sofar["intermediate"].items()}
    engine = setup.context.engine
    started = time.perf_counter()

    def on_epoch(epoch: int, model: nn.Module) -> None:
        metrics = objective_metrics(model, setup.probe, engine, setup.seeds.attack)
        intermediate[epoch] = objective(metrics, setup.target["probe"], tune.objective)
        seconds = sofar["seconds"] + time.perf_counter() - started
        atomic_write_json(partial, {"intermediate": intermediate, "seconds": seconds})
        if tune.prune and should_prune(earlier, intermediate, tune):
            raise Pruned

    name = f"trial {number + 1}/{n_trials(tune)}"
    context = dataclasses.replace(setup.context, name=name, on_epoch=on_epoch)
    state, metrics, value = "complete", {}, None
    try:
        model, _ = run_method(trial_method, setup.data, setup.original, context, key)
        metrics = objective_metrics(model, setup.data, engine, setup.seeds.attack)
        value = objective(metrics, setup.target["data"], tune.objective)
    except Pruned:
        state = "pruned"
        for stale in context.state_files():
            stale.unlink(missing_ok=True)
    result = {
        "number": number,
        "params": params,
        "state": state,
        "value": value,
        "intermediate": intermediate,
        "epochs": max(intermediate, default=0),
        "seconds": sofar["seconds"] + time.perf_counter() - started,
        **{k: metrics.get(k) for k in TRIAL_METRICS if k in metrics},
    }
    atomic_write_json(path, result)
    partial.unlink(missing_ok=True)
    return result


def _reference(config: ExperimentConfig, progress: Progress | None = None) -> float:
    """The search's first job: the tuning seed's original and Retrain; Retrain's seconds."""
    return problem(config, progress).reference_seconds


# runs a batch of trials, each given as (params, number, the earlier trials' pruning view),
# and returns their results (dicts with state, value, intermediate) in the same order
BatchRunner = Callable[[list[tuple[dict, int, list[dict]]]], list[dict]]


def optimise(tune: TuneConfig, run_batch: BatchRunner) -> list[dict]:
    """The Optuna study: `tune.parallel` trials asked at a time, each pruned against the
    trials finished before its batch, told back in order, so any executor (and a replay from
    the cache) gives the same study. Returns the trials' results in order."""
    total = n_trials(tune)
    sampler = optuna.samplers.TPESampler(seed=tune.seed)
    study = optuna.create_study(direction="minimize", sampler=sampler)
    space = {name: _distribution(v, tune.sampler == "grid") for name, v in tune.space.items()}
    for point in grid(tune)[:total] if tune.sampler == "grid" else []:
        study.enqueue_trial(point)
    trials: list[dict] = []
    while len(trials) < total:
        asked = [study.ask(space) for _ in range(min(tune.parallel, total - len(trials)))]
        earlier = _pruning_view(trials)
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


def search(
    config: ExperimentConfig,
    method: MethodConfig,
    executor: Executor,
    progress: Progress,
) -> Tuning:
    """The search of one method: its Retrain reference as the first job, then the trials,
    each a job of the executor (a batch of them side by side on Ray)."""
    view = StudyView(["reference"] + ["trial"] * n_trials(config.tune), executor.workers)
    reference_job = [Job("reference", "reference", _reference, (config,))]
    (reference,) = run_jobs(executor, reference_job, progress, view)

    def run_batch(batch: list[tuple[dict, int, list[dict]]]) -> list[dict]:
        jobs = [
            Job(f"trial {number + 1}", "trial", run_trial, (config, method, params, number, seen))
            for params, number, seen in batch
        ]
        landed = {job.index: job.result for job in run_jobs(executor, jobs, progress, view)}
        return [landed[index] for index in range(len(jobs))]

    trials = optimise(config.tune, run_batch)
    return Tuning(method, trials, best_trial(trials), reference.result)


def _trial_rows(tuning: Tuning) -> list[dict]:
    """The trials table: one row a trial, its params as columns."""
    rows = []
    for trial in tuning.trials:
        row = {"trial": trial["number"] + 1, **trial["params"], "state": trial["state"]}
        row.update(objective=trial["value"], epochs=trial["epochs"], minutes=trial["seconds"] / 60)
        rows.append({**row, **{k: trial.get(k) for k in TRIAL_METRICS if k in trial}})
    return rows


def held_out_config(config: ExperimentConfig, tuning: Tuning) -> ExperimentConfig:
    """The experiment that evaluates the tuned params: Retrain, the method at its untuned
    params and at the tuned ones, on the held-out seeds (other forget sets and originals)."""
    method = tuning.method
    base = method.label or method.name
    retrain = method_list(config)[1]
    default = dataclasses.replace(method, label=f"{base}-untuned")
    tuned = MethodConfig(method.name, {**method.params, **tuning.best["params"]}, f"{base}-tuned")
    name = f"{config.name}-{base}-tuned"
    return dataclasses.replace(
        config, name=name, methods=[retrain, default, tuned], seeds=list(config.tune.held_out)
    )


def _best_yaml(config: ExperimentConfig, tuning: Tuning) -> str:
    """The held-out experiment as a config `medunlearn run` takes, with the search that found
    its params as a comment."""
    tune, cost = config.tune, tuning.cost
    lines = [
        f"# {tuning.method.display_name}: params found by `medunlearn tune` ({tune.sampler}, "
        f"{cost['trials']} trials, {cost['pruned']} pruned, objective {tune.objective} to "
        f"Retrain on seed {tune.seed}, best {tuning.best['value']:.3f})",
        f"# search space: { {k: dataclasses.asdict(v) for k, v in tune.space.items()} }",
        f"# best params: {tuning.best['params']}; cost {cost['tune_min']:.1f} min, "
        f"{cost['trainings']} trainings",
    ]
    return "\n".join(lines) + "\n" + dump_config(held_out_config(config, tuning))


def _held_out_summary(rows: list[dict], tuning: Tuning) -> list[dict]:
    """The held-out table's entries, with the tuning's cost beside the tuned method's RTE."""
    entries = summarise(rows)
    for entry in entries:
        if entry["method"].endswith("-tuned"):
            entry["tune_min"] = tuning.cost["tune_min"]
    return entries


def tune(
    config: ExperimentConfig,
    out: str | Path,
    method_name: str | None = None,
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> dict:
    """Search a method's params against Retrain, then evaluate the best on held-out seeds.

    Writes, in `out`: trials.csv, best.yaml (a runnable config of the tuned method), the
    held-out experiment (held-out/), tuning.json (best params, the search's cost, the held-out
    rows' summary) and tuning.md. Returns what tuning.json holds."""
    out = Path(out)
    progress = progress or NullProgress()
    method = tuned_method(config, method_name)
    _check_space(method, config.tune)
    _, dataset, _ = prepare_run(config, progress)
    if config.tune.objective == "risk_2" and not (
        dataset.n_classes == 2 and dataset.positive_class == 1
    ):
        raise ConfigError("tune.objective risk_2 (Global Risk II) needs a binary task: data.binary")
    validate(dataclasses.replace(config, methods=[method]), dataset)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump_config(config))
    with executor_for(config.runtime, executor) as runner:
        tuning = search(config, method, runner, progress)
        atomic_write_text(out / "trials.csv", csv_text(_trial_rows(tuning), first=()))
        atomic_write_text(out / "best.yaml", _best_yaml(config, tuning))
        held_out = held_out_config(config, tuning)
        rows = run(held_out, out / "held-out", progress, runner)
    summary = {
        "method": method.display_name,
        "best_params": tuning.best["params"],
        "best_objective": tuning.best["value"],
        "objective": config.tune.objective,
        "cost": tuning.cost,
        "held_out_seeds": list(config.tune.held_out),
        "held_out": _held_out_summary(rows, tuning),
    }
    atomic_write_json(out / "tuning.json", summary)
    atomic_write_text(out / "tuning.md", tuning_markdown(summary, _trial_rows(tuning)))
    trials_figure(_trial_rows(tuning), out / "trials.png", f"{method.display_name}: tuning trials")
    return summary


def tuning_markdown(summary: dict, trials: list[dict]) -> str:
    """tuning.md: the best params, the search's cost, the held-out table and the trials."""
    cost = summary["cost"]
    lines = [
        f"# Tuning {summary['method']}",
        "",
        f"Best params {summary['best_params']} ({summary['objective']} "
        f"{summary['best_objective']:.3f} on the tuning seed). Search cost: "
        f"{cost['tune_min']:.1f} min ({cost['reference_min']:.1f} min of Retrain reference, "
        f"{cost['trials_min']:.1f} min of {cost['trials']} trials, {cost['pruned']} pruned, "
        f"{cost['trial_epochs']} epochs), {cost['trainings']} trainings.",
        "",
        f"Held-out seeds {summary['held_out_seeds']}: other originals, forget sets and "
        "Retrains than the search saw. `-untuned` is the config's params, `-tuned` the best "
        "found; tuning (min) is the search's cost, paid once, beside the run time (RTE).",
    ]
    columns = [*UNLEARNING_TABLE, Column("tune_min", "tuning (min)", gap=False)]
    held_out = summary["held_out"]
    for aug, forget in dict.fromkeys((e["aug"], e["forget"]) for e in held_out):
        cells = table_rows(held_out, (aug, forget), columns)
        lines += markdown_table(f"held out: {forget}", columns, cells)
    trial_columns = [Column(k, k, gap=False) for k in trials[0] if k != "trial"]
    cells = [[str(t["trial"]), *(_text(t.get(c.key)) for c in trial_columns)] for t in trials]
    lines += markdown_table("trials", trial_columns, cells, first="trial")
    return "\n".join(lines) + "\n"


def _text(value: Any, digits: int | None = None) -> str:
    """A table cell: a number to `digits` decimals (None: 4 significant digits)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return f"{value:.4g}" if digits is None else f"{value:.{digits}f}"
    return "n/a" if value is None else str(value)


def _config_methods(config: ExperimentConfig, names: Sequence[str | None]) -> list[str | None]:
    """The methods to tune: those named, else tune.method, else every method of the config."""
    named = [name for name in names if name]
    if named or config.tune.method:
        return named or [config.tune.method]
    methods = [m.display_name for m in config.methods if m.name != "retrain"]
    if not methods:
        raise ConfigError("no method to tune: pass --method NAME, or list methods in the config")
    return methods


def overhead_rows(summaries: Sequence[dict]) -> list[dict]:
    """Each tuned method's run time beside its tuning cost and Retrain's (held-out means, in
    minutes): the speed-up over Retrain with and without the search counted, and how many
    deletion requests it takes for the search to pay for itself."""
    rows = []
    for summary in summaries:
        by_method = {e["method"]: e for e in summary["held_out"]}
        tuned = next(e for name, e in by_method.items() if name.endswith("-tuned"))
        retrain_min, rte, tune_min = (
            by_method["retrain"]["rte_min"],
            tuned["rte_min"],
            summary["cost"]["tune_min"],
        )
        saving = retrain_min - rte
        rows.append(
            {
                "method": summary["method"],
                "ag": tuned.get("ag"),
                "rte_min": rte,
                "retrain_min": retrain_min,
                "tune_min": tune_min,
                "trials": summary["cost"]["trials"],
                "speedup": retrain_min / rte if rte > 0 else None,
                "speedup_tuned": retrain_min / (rte + tune_min),
                "break_even": tune_min / saving if saving > 0 else None,
            }
        )
    return rows


OVERHEAD_COLUMNS = (
    Column("ag", "held-out AG", gap=False),
    Column("rte_min", "RTE (min)", gap=False),
    Column("retrain_min", "Retrain (min)", gap=False),
    Column("tune_min", "tuning (min)", gap=False),
    Column("trials", "trials", gap=False, digits=0),
    Column("speedup", "speed-up", gap=False, digits=1),
    Column("speedup_tuned", "speed-up, tuning counted", gap=False, digits=2),
    Column("break_even", "requests to repay tuning", gap=False, digits=1),
)


def tune_methods(
    config: ExperimentConfig,
    out: str | Path,
    names: Sequence[str | None] = (None,),
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> list[dict]:
    """Tune each method into `out/<method>/`, then write the tuning overhead table
    (overhead.md, overhead.csv) and figure (overhead.png) of them all in `out`."""
    out = Path(out)
    with executor_for(config.runtime, executor) as runner:
        summaries = [
            tune(config, out / str(tuned_method(config, name).display_name), name, progress, runner)
            for name in _config_methods(config, names)
        ]
    rows = overhead_rows(summaries)
    atomic_write_text(out / "overhead.csv", csv_text(rows, first=()))
    cells = [
        [r["method"], *(_text(r.get(c.key), c.digits) for c in OVERHEAD_COLUMNS)] for r in rows
    ]
    text = markdown_table("tuning overhead", OVERHEAD_COLUMNS, cells)
    atomic_write_text(out / "overhead.md", "\n".join(["# Tuning overhead", *text]) + "\n")
    overhead_figure(rows, out / "overhead.png", f"{config.name}: run time and tuning cost")
    return summaries
