"""`medunlearn tune`: search a method's params against Retrain, evaluate the best on held-out
seeds, write the search's report; for several methods, the tuning-overhead analysis of them."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from medunlearn.analyses.base import Study
from medunlearn.analyses.tables import csv_text
from medunlearn.analyses.tuning_overhead import overhead_rows
from medunlearn.config import ConfigError, ExperimentConfig, MethodConfig, dump_config
from medunlearn.executor import Executor, Job, executor_for, run_jobs
from medunlearn.experiment import run
from medunlearn.methods.registry import method_params
from medunlearn.metrics.evaluate import is_binary
from medunlearn.progress import NullProgress, Progress, StudyView
from medunlearn.report.write import markdown_report, write_figures
from medunlearn.roles import RETRAIN
from medunlearn.store import atomic_write_json, atomic_write_text
from medunlearn.study.setup import open_session
from medunlearn.study.validate import validate
from medunlearn.tuning.heldout import Tuning, best_yaml, held_out_config
from medunlearn.tuning.report import held_out_entries, trial_rows, trials_figure, tuning_markdown
from medunlearn.tuning.search import best_trial, n_trials, optimise
from medunlearn.tuning.trial import check_space, reference_seconds, run_trial


def tuned_method(config: ExperimentConfig, name: str | None) -> MethodConfig:
    """The method to tune: the config's method of that label or name (its params are the
    fixed ones), else the registry's method with its defaults."""
    name = name or config.tune.method
    if not name:
        raise ConfigError("name the method to tune: --method NAME or tune.method in the config")
    if name == RETRAIN:
        raise ConfigError("Retrain is the reference of the search and has nothing to tune")
    for method in config.methods:
        if name in (method.label, method.name):
            return method
    method_params(name, {})  # an unknown name is refused with the list of methods
    return MethodConfig(name)


def search(
    config: ExperimentConfig, method: MethodConfig, executor: Executor, progress: Progress
) -> Tuning:
    """The search of one method: the Retrain reference of each tuning seed as the first jobs,
    then the trials, each a job of the executor (a batch of them side by side on Ray)."""
    seeds = config.tune.seed
    view = StudyView(["reference"] * len(seeds) + ["trial"] * n_trials(config.tune),
                     executor.workers)  # fmt: skip
    references = [Job(f"reference s{seed}", "reference", reference_seconds, (config, seed))
                  for seed in seeds]  # fmt: skip
    spent = sum(job.result for job in run_jobs(executor, references, progress, view))

    def run_batch(batch: list[tuple[dict, int, list[dict]]]) -> list[dict]:
        jobs = [
            Job(f"trial {number + 1}", "trial", run_trial, (config, method, params, number, seen))
            for params, number, seen in batch
        ]
        landed = {job.index: job.result for job in run_jobs(executor, jobs, progress, view)}
        return [landed[index] for index in range(len(jobs))]

    trials = optimise(config.tune, run_batch)
    return Tuning(method, trials, best_trial(trials), spent, len(seeds))


def tune(
    config: ExperimentConfig,
    out: str | Path,
    method_name: str | None = None,
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> dict:
    """Search a method's params against Retrain, then evaluate the best on held-out seeds.

    Writes, in `out`: trials.csv, trials.png, best.yaml (a runnable config of the tuned
    method), the held-out experiment (held-out/), tuning.json (best params, the search's cost,
    the held-out rows' summary) and tuning.md. Returns what tuning.json holds."""
    out = Path(out)
    progress = progress or NullProgress()
    method = tuned_method(config, method_name)
    check_space(method, config.tune)
    session = open_session(config, progress)
    if config.tune.objective == "risk_2" and not is_binary(session.dataset):
        raise ConfigError("tune.objective risk_2 (Global Risk II) needs a binary task: data.binary")
    validate(dataclasses.replace(config, methods=[method]), session.dataset)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump_config(config))
    with executor_for(config.runtime, executor) as runner:
        tuning = search(config, method, runner, progress)
        trials = trial_rows(tuning)
        atomic_write_text(out / "trials.csv", csv_text(trials))
        atomic_write_text(out / "best.yaml", best_yaml(config, tuning))
        rows = run(held_out_config(config, tuning), out / "held-out", progress, runner)
    summary = {
        "method": method.display_name,
        "best_params": tuning.best["params"],
        "best_objective": tuning.best["value"],
        "objective": config.tune.objective,
        "tuning_seeds": list(config.tune.seed),
        "cost": tuning.cost,
        "held_out_seeds": list(config.tune.held_out),
        "held_out": held_out_entries(rows, tuning),
    }
    atomic_write_json(out / "tuning.json", summary)
    atomic_write_text(out / "tuning.md", tuning_markdown(summary, trials))
    trials_figure(trials, out / "trials.png", f"{method.display_name}: tuning trials")
    return summary


def _config_methods(config: ExperimentConfig, names: Sequence[str | None]) -> list[str | None]:
    """The methods to tune: those named, else tune.method, else every method of the config."""
    named = [name for name in names if name]
    if named or config.tune.method:
        return named or [config.tune.method]
    methods = [m.display_name for m in config.methods if m.name != RETRAIN]
    if not methods:
        raise ConfigError("no method to tune: pass --method NAME, or list methods in the config")
    return methods


def tune_methods(
    config: ExperimentConfig,
    out: str | Path,
    names: Sequence[str | None] = (None,),
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> list[dict]:
    """Tune each method into `out/<method>/`, then write the tuning-overhead analysis of them
    all in `out`: overhead.md, overhead.csv and overhead.png."""
    out = Path(out)
    with executor_for(config.runtime, executor) as runner:
        summaries = [
            tune(config, out / str(tuned_method(config, name).display_name), name, progress, runner)
            for name in _config_methods(config, names)
        ]
    study = Study([], config.name, tunings=summaries)
    atomic_write_text(out / "overhead.csv", csv_text(overhead_rows(summaries)))
    atomic_write_text(out / "overhead.md", markdown_report(study))
    write_figures(out, study)
    return summaries
