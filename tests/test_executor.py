"""Executors: plan checks, the study view's ETA, and the same results whichever runs a study."""

import csv
import importlib.util
import sys

import pytest

from medunlearn import experiment
from medunlearn.config import (
    ConfigError,
    EvaluationConfig,
    ForgetConfig,
    MethodConfig,
    MissingExtra,
    RuntimeConfig,
)
from medunlearn.executor import Job, SequentialExecutor, make_executor, run_jobs
from medunlearn.progress import NullProgress, StudyView

HAS_RAY = importlib.util.find_spec("ray") is not None
needs_ray = pytest.mark.skipif(not HAS_RAY, reason="Ray is not installed: pip install -e '.[ray]'")
# columns that differ between two runs of the same study: wall times, and rows' run times
TIMING = {"rte_min", "eval_s", "speedup", "bank_min", "repeats_min", "relearn_s"}


def _double(value: int, *, progress) -> int:
    return 2 * value


def test_sequential_executor_runs_jobs_in_plan_order():
    jobs = [Job(f"j{i}", "k", _double, (i,), (f"j{i - 1}",) if i else ()) for i in range(4)]
    landed = list(run_jobs(SequentialExecutor(), jobs, NullProgress()))
    assert [(job.index, job.result) for job in landed] == [(i, 2 * i) for i in range(4)]


def test_a_plan_whose_job_needs_a_later_one_is_refused():
    jobs = [Job("a", "k", _double, (1,), ("b",)), Job("b", "k", _double, (2,))]
    with pytest.raises(ValueError, match="needs"):
        list(SequentialExecutor().run(jobs, NullProgress()))


def test_study_eta_uses_each_kinds_mean_time_over_the_workers():
    view = StudyView(["original", "original", "row", "row", "row"], workers=2)
    assert view.eta() is None
    view.landed("original", 60.0)
    assert view.eta() == pytest.approx((60 + 3 * 60) / 2)  # rows take the overall mean
    view.landed("row", 10.0)
    assert view.eta() == pytest.approx((60 + 2 * 10) / 2)
    assert view.describe(2) == "study: 2/5 done, 2 running, 1 waiting, ETA 0.7 min"


def test_ray_executor_without_ray_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails as if not installed
    with pytest.raises(MissingExtra, match=r"pip install -e '\.\[ray\]'"):
        make_executor(RuntimeConfig(executor="ray"))


def _table(path):
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(handle)]


@needs_ray
@pytest.mark.slow
def test_ray_and_sequential_executors_give_the_same_results_csv(make_config, tmp_path):
    methods = [MethodConfig("retrain"), MethodConfig("ft", {"epochs": 1, "batch_size": 16})]
    config = make_config(methods)
    config.forget = [ForgetConfig(fraction=0.2), ForgetConfig(fraction=0.4)]
    config.seeds = [0, 1]
    sequential = experiment.run(config, tmp_path / "sequential")
    config.runtime.cache_dir = str(tmp_path / "ray-cache")  # nothing shared with the first run
    config.runtime.executor = "ray"
    executor = make_executor(config.runtime)
    try:
        ray_rows = experiment.run(config, tmp_path / "ray", executor=executor)
        assert executor.workers >= 1
    finally:
        executor.close()
    assert len(ray_rows) == len(sequential) == 2 * 2 * 3
    assert _table(tmp_path / "ray" / "results.csv") == _table(
        tmp_path / "sequential" / "results.csv"
    )


def test_ray_jobs_threads_must_match_their_cores():
    with pytest.raises(ConfigError, match="job_cpus"):
        RuntimeConfig(executor="ray", threads=2, job_cpus=1)
    assert RuntimeConfig(executor="ray", threads=2, job_cpus=2).job_cpus == 2


@needs_ray
@pytest.mark.slow
def test_repeats_bank_and_rmia_jobs_on_ray_give_the_sequential_rows(make_config, tmp_path):
    """Each repeated run, bank model and RMIA's a is a Ray task of its own; the rows are those
    of the sequential executor."""
    config = make_config([MethodConfig("ft", {"epochs": 1, "batch_size": 16})])
    config.evaluation = EvaluationConfig(bank=3, repeats=3)
    experiment.run(config, tmp_path / "sequential")
    config.runtime.cache_dir = str(tmp_path / "ray-cache")
    config.runtime.executor = "ray"
    executor = make_executor(config.runtime)
    try:
        experiment.run(config, tmp_path / "ray", executor=executor)
    finally:
        executor.close()
    ray_table = _table(tmp_path / "ray" / "results.csv")
    assert ray_table == _table(tmp_path / "sequential" / "results.csv")
    assert ray_table[2]["ulira_acc"] != ""
