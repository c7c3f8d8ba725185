"""Executors of a study's independent jobs: one after another in this process, or as Ray tasks
on a local or remote cluster. Jobs share their work through the model cache, never through
memory, so either executor gives the same results."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from medunlearn.config import MissingExtra, RuntimeConfig
from medunlearn.engine import usable_cores
from medunlearn.progress import NullProgress, Progress, StudyView


@dataclass(frozen=True)
class Job:
    """One unit of a study: `run(*args, progress=...)`, a module-level function (so a Ray
    worker can import it), started once the jobs named in `needs` have finished. `kind`
    groups jobs of a like duration for the study's ETA."""

    name: str
    kind: str
    run: Callable[..., Any]
    args: tuple = ()
    needs: tuple[str, ...] = ()


@dataclass
class Landed:
    """A finished job: its position in the plan, its result, its wall time, and how many
    jobs are still running."""

    index: int
    job: Job
    result: Any
    seconds: float
    running: int


class Executor(Protocol):
    """Runs a plan of jobs (listed so that every job comes after those it needs) and yields
    each one as it finishes."""

    workers: int

    def run(self, jobs: list[Job], progress: Progress) -> Iterator[Landed]: ...

    def close(self) -> None: ...


def _check_plan(jobs: list[Job]) -> None:
    """Every job's needs are earlier jobs of the plan, and names are unique."""
    seen: set[str] = set()
    for job in jobs:
        if missing := [need for need in job.needs if need not in seen]:
            raise ValueError(f"job {job.name} needs {missing}, which no earlier job is")
        if job.name in seen:
            raise ValueError(f"two jobs are named {job.name}")
        seen.add(job.name)


class SequentialExecutor:
    """Each job in plan order, in this process, with the caller's progress bars."""

    workers = 1

    def run(self, jobs: list[Job], progress: Progress) -> Iterator[Landed]:
        """Run the jobs one by one and yield each as it finishes."""
        _check_plan(jobs)
        for index, job in enumerate(jobs):
            started = time.perf_counter()
            result = job.run(*job.args, progress=progress)
            left = len(jobs) - index - 1
            yield Landed(index, job, result, time.perf_counter() - started, min(left, 1))

    def close(self) -> None:
        """Nothing to release."""


def _ray():
    """The ray module, or an error saying how to install it."""
    try:
        import ray
    except ImportError:
        raise MissingExtra(
            "runtime.executor is 'ray' but Ray is not installed: pip install -e '.[ray]'"
        ) from None
    return ray


def _timed_call(run: Callable[..., Any], args: tuple) -> tuple[Any, float]:
    """A job's result and wall time, measured on its worker."""
    started = time.perf_counter()
    result = run(*args, progress=NullProgress())
    return result, time.perf_counter() - started


@dataclass
class RayExecutor:
    """Each job as a Ray task of `job_cpus` cores (its torch threads, through OMP_NUM_THREADS)
    and `job_gpus` GPUs, submitted as soon as the jobs it needs have finished.

    It joins the cluster at `address`, else at $RAY_ADDRESS, else starts a local one sized to
    this machine. Workers must have medunlearn installed; on a cluster of several machines,
    the cache folder and the output folder must be on a shared filesystem."""

    runtime: RuntimeConfig
    started_here: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        ray = _ray()
        address = self.runtime.address or os.environ.get("RAY_ADDRESS")
        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=usable_cores(), include_dashboard=False, log_to_driver=False)
                self.started_here = True
        cpus = ray.cluster_resources().get("CPU", 1)
        self.workers = max(1, int(cpus // self.runtime.job_cpus))
        threads = str(self.runtime.job_cpus)
        self.remote = ray.remote(_timed_call).options(
            num_cpus=self.runtime.job_cpus,
            num_gpus=self.runtime.job_gpus,
            runtime_env={"env_vars": {"OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}},
        )

    def run(self, jobs: list[Job], progress: Progress) -> Iterator[Landed]:
        """Submit each job once its needs have landed; yield jobs as they finish."""
        ray = _ray()
        _check_plan(jobs)
        done: set[str] = set()
        waiting = list(enumerate(jobs))
        running: dict[Any, tuple[int, Job]] = {}
        try:
            while waiting or running:
                ready = [(i, job) for i, job in waiting if set(job.needs) <= done]
                for index, job in ready:
                    running[self.remote.remote(job.run, job.args)] = (index, job)
                waiting = [(i, job) for i, job in waiting if not set(job.needs) <= done]
                finished, _ = ray.wait(list(running), num_returns=1)
                index, job = running.pop(finished[0])
                result, seconds = ray.get(finished[0])
                done.add(job.name)
                yield Landed(index, job, result, seconds, min(len(running), self.workers))
        finally:
            for ref in running:
                ray.cancel(ref, force=True)

    def close(self) -> None:
        """Stop the local cluster this executor started (a joined one is left running)."""
        if self.started_here:
            _ray().shutdown()


def make_executor(runtime: RuntimeConfig) -> Executor:
    """The executor a runtime config names."""
    return RayExecutor(runtime) if runtime.executor == "ray" else SequentialExecutor()


@contextlib.contextmanager
def executor_for(runtime: RuntimeConfig, given: Executor | None = None) -> Iterator[Executor]:
    """The caller's executor, or one made from the runtime config and closed at the end."""
    if given is not None:
        yield given
        return
    made = make_executor(runtime)
    try:
        yield made
    finally:
        made.close()


def run_jobs(
    executor: Executor, jobs: list[Job], progress: Progress, view: StudyView | None = None
) -> Iterator[Landed]:
    """Run a plan on an executor with one view of the whole study (a bar with jobs done,
    running and waiting and an ETA, and a line per finished job); yields each job as it lands.
    A study run as several plans (a search's batches of trials) passes its one `view`."""
    view = view or StudyView([job.kind for job in jobs], executor.workers)
    with progress.task(view.describe(0), view.done + len(view.left)) as bar:
        bar.advance(view.done)
        for landed in executor.run(jobs, progress):
            view.landed(landed.job.kind, landed.seconds)
            bar.advance()
            bar.describe(view.describe(landed.running))
            progress.log(
                f"done: {landed.job.name} ({landed.seconds:.1f} s); {view.describe(landed.running)}"
            )
            yield landed
