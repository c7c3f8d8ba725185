"""An experiment from end to end: validate the config, run its plan of jobs on an executor
(rows added to results.csv as each forget set lands), then write the report."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from medunlearn.config import ExperimentConfig, dump_config
from medunlearn.executor import Executor, executor_for, run_jobs
from medunlearn.metrics.gap import add_gaps
from medunlearn.progress import Progress
from medunlearn.report.write import results_csv, write_results
from medunlearn.store import atomic_write_text
from medunlearn.study.pipeline import train_original
from medunlearn.study.plan import plan
from medunlearn.study.setup import open_session
from medunlearn.study.validate import validate


def resolved(config: ExperimentConfig, inference_path: str) -> ExperimentConfig:
    """The config with its inference path resolved (`auto` named): what every job runs with,
    so that no worker resolves it otherwise."""
    runtime = dataclasses.replace(config.runtime, inference_path=inference_path)
    return dataclasses.replace(config, runtime=runtime)


def run(
    config: ExperimentConfig,
    out: str | Path,
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> list[dict]:
    """Run a whole experiment into folder `out`: config.yaml, per-run JSON, results.csv,
    results.json, report.md and figures.

    Its jobs run on `executor` (default: the one `runtime.executor` names), every job on the
    inference path resolved here (each row records it); each forget set's rows are added to
    results.csv as they land. Finished work is reused when the command is repeated, so an
    interrupted run resumes.
    """
    out = Path(out)
    session = open_session(config, progress)
    validate(config, session.dataset)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump_config(config))
    path = session.engine.inference_path
    session.engine.progress.log(f"data: {session.dataset.describe()}; inference path: {path}")
    jobs = plan(resolved(config, path), out)
    landed: dict[int, list[dict]] = {}
    with executor_for(config.runtime, executor) as runner:
        for job in run_jobs(runner, jobs, session.engine.progress):
            if job.result is not None:
                landed[job.index] = job.result
                atomic_write_text(out / "results.csv", results_csv(_ordered(landed)))
    rows = _ordered(landed)
    write_results(out, rows, config)
    return rows


def _ordered(landed: dict[int, list[dict]]) -> list[dict]:
    """The rows landed so far in plan order, with their gaps to Retrain."""
    rows = [row for index in sorted(landed) for row in landed[index]]
    add_gaps(rows)
    return rows


def export_original(
    config: ExperimentConfig, out: str | Path, seed: int = 0, progress: Progress | None = None
) -> tuple[Path, dict]:
    """Train (or reuse) the original model of a config and copy it to `out/model.safetensors`
    (a sharded one with its slice checkpoints beside it, in `out/model.slices/`)."""
    out = Path(out)
    session = open_session(config, progress)
    original = train_original(config, session.dataset, session.engine, session.store, seed)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump_config(config))
    path = out / "model.safetensors"
    original.save(path, beside=True)
    return path, original.meta
