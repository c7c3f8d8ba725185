"""The search: Optuna finds a known optimum, median pruning, the unlearning objective against
Retrain, held-out evaluation, and a study killed inside a trial that resumes to the same rows."""

import csv
import importlib.util
import math
import os
import signal
import subprocess
import sys

import pytest
import yaml

pytest.importorskip("optuna", reason="Optuna is not installed: pip install -e '.[tune]'")

from medunlearn import tuning
from medunlearn.config import (
    ConfigError,
    MethodConfig,
    SearchRange,
    TuneConfig,
    dump_config,
    load_config,
)


def _synthetic(params: dict) -> dict:
    """A cheap objective with its optimum at lr = 1e-2: (log10 lr + 2)^2, one epoch."""
    value = (math.log10(params["lr"]) + 2) ** 2
    return {"params": params, "state": "complete", "value": value, "intermediate": {1: value}}


def _serial(batch):
    return [_synthetic(params) for params, _, _ in batch]


def test_tpe_search_finds_the_known_optimum_of_a_synthetic_objective():
    config = TuneConfig(trials=30, prune=False)
    trials = tuning.optimise(config, _serial)
    best = tuning.best_trial(trials)
    assert len(trials) == 30
    assert abs(math.log10(best["params"]["lr"]) + 2) < 0.15  # within 1.4x of 1e-2
    assert best["value"] == min(t["value"] for t in trials)


def test_grid_search_tries_the_published_grid_and_finds_its_best_point():
    config = TuneConfig(sampler="grid", trials=100, prune=False)
    trials = tuning.optimise(config, _serial)
    assert sorted(t["params"]["lr"] for t in trials) == [1e-4, 1e-3, 1e-2, 1e-1]
    assert tuning.best_trial(trials)["params"]["lr"] == 1e-2


def test_the_same_seed_gives_the_same_study_and_batches_see_only_earlier_trials():
    config = TuneConfig(trials=8, prune=False, parallel=3)
    seen = []

    def batch_runner(batch):
        seen.append([len(earlier) for _, _, earlier in batch])
        return _serial(batch)

    first = tuning.optimise(config, batch_runner)
    assert seen == [[0, 0, 0], [3, 3, 3], [6, 6]]
    again = tuning.optimise(config, _serial)
    assert [t["params"] for t in first] == [t["params"] for t in again]


def test_median_pruning_stops_a_trial_worse_than_the_median_of_earlier_ones():
    config = TuneConfig(startup_trials=2, warmup_epochs=1)
    earlier = [
        {"state": "complete", "value": 1.0, "intermediate": {"1": 3.0, "2": 1.0}},
        {"state": "complete", "value": 2.0, "intermediate": {"1": 4.0, "2": 2.0}},
    ]
    assert tuning.should_prune(earlier, {1: 5.0}, config)  # worse than the median 3.5
    assert not tuning.should_prune(earlier, {1: 3.0}, config)
    assert not tuning.should_prune(earlier[:1], {1: 5.0}, config)  # before startup_trials
    late = TuneConfig(startup_trials=2, warmup_epochs=2)
    assert not tuning.should_prune(earlier, {1: 5.0}, late)  # still warming up


def test_search_ranges_are_checked_once_when_built():
    with pytest.raises(ConfigError, match="low < high"):
        SearchRange(0.1, 0.01)
    with pytest.raises(ConfigError, match="low > 0"):
        SearchRange(0.0, 0.1)
    with pytest.raises(ConfigError, match="held-out seeds must be other seeds"):
        TuneConfig(seed=1, held_out=[1, 2])
    assert SearchRange(choices=[0.3, 0.5]).grid_values() == [0.3, 0.5]


def _tune_config(make_config, **tune):
    config = make_config(
        [MethodConfig("retrain"), MethodConfig("ga", {"epochs": 3, "batch_size": 16})]
    )
    config.tune = TuneConfig(
        method="ga", trials=4, startup_trials=1, warmup_epochs=1, held_out=[1],
        space={"lr": SearchRange(1e-4, 1e-1)}, **tune,
    )  # fmt: skip
    return config


def test_tuning_ga_scores_trials_against_retrain_and_reports_held_out_seeds(make_config, tmp_path):
    config = _tune_config(make_config)
    summary = tuning.tune(config, tmp_path / "out")
    out = tmp_path / "out"
    with open(out / "trials.csv", newline="") as handle:
        trials = list(csv.DictReader(handle))
    assert len(trials) == 4 and {t["state"] for t in trials} <= {"complete", "pruned"}
    complete = [t for t in trials if t["state"] == "complete"]
    best = min(complete, key=lambda t: float(t["objective"]))
    assert summary["best_params"]["lr"] == pytest.approx(float(best["lr"]))
    # the objective is the AG of the trial's metrics to Retrain's on the tuning seed
    target = tuning.problem(config, None).target["data"]
    for trial in complete:
        gap = sum(abs(float(trial[k]) - target[k]) for k in ("ua", "ra", "ta", "mia")) / 4
        assert float(trial["objective"]) == pytest.approx(gap)
    held_out = {entry["method"]: entry for entry in summary["held_out"]}
    assert set(held_out) == {"original", "retrain", "ga-untuned", "ga-tuned"}
    assert all(entry["n_seeds"] == 1 for entry in held_out.values())
    assert summary["cost"]["trainings"] == 5 and summary["cost"]["tune_min"] > 0
    assert held_out["ga-tuned"]["tune_min"] == summary["cost"]["tune_min"]
    best_yaml = load_config(out / "best.yaml")  # a config `medunlearn run` takes
    assert best_yaml.seeds == [1]
    assert best_yaml.methods[2].params["lr"] == summary["best_params"]["lr"]
    assert "tuning (min)" in (out / "tuning.md").read_text()
    assert (out / "trials.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "held-out" / "results.csv").is_file()


def test_an_unknown_param_in_the_space_is_refused_before_anything_runs(make_config, tmp_path):
    config = _tune_config(make_config)
    config.tune.space = {"momentumm": SearchRange(0.1, 0.9)}
    with pytest.raises(ConfigError, match=r"tune\.space\.momentumm"):
        tuning.tune(config, tmp_path / "out")
    assert not (tmp_path / "out").exists()


# runs `medunlearn tune`, killing itself with SIGKILL at the given call of the objective's
# metrics (0: never): the reference takes 2 calls, the first trial 5 (4 epochs, then its end)
KILLING_CLI = """
import atexit, os, signal, sys
from medunlearn import cli, tuning
metrics, calls, kill_at = tuning.objective_metrics, [], int(sys.argv[1])
atexit.register(lambda: print(f"objective calls: {len(calls)}", file=sys.stderr))
def counted(*args, **kwargs):
    calls.append(1)
    if len(calls) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return metrics(*args, **kwargs)
tuning.objective_metrics = counted
sys.argv = ["medunlearn", *sys.argv[2:]]
cli.app()
"""


def _tune_command(config_path, out, cache, kill_at=0):
    env = {**os.environ, "MEDUNLEARN_CACHE": str(cache)}
    arguments = ["tune", str(config_path), "--out", str(out)]
    command = [sys.executable, "-c", KILLING_CLI, str(kill_at), *arguments]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)


def _calls(stderr: str) -> int:
    """How many times a run computed the objective's metrics (KILLING_CLI prints it)."""
    return int(stderr.rsplit("objective calls: ", 1)[1].split()[0])


def _rows(path):
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if k != "minutes"} for row in csv.DictReader(handle)]


@pytest.mark.slow
def test_a_study_killed_inside_a_trial_resumes_with_identical_rows(make_config, tmp_path):
    config = _tune_config(make_config)
    config.methods[1].params["epochs"] = 4
    config.runtime.cache_dir = None  # each run names its cache through MEDUNLEARN_CACHE
    path = tmp_path / "tune.yaml"
    path.write_text(dump_config(config))
    whole = _tune_command(path, tmp_path / "whole", tmp_path / "cache-whole")
    assert whole.returncode == 0, whole.stderr
    cache = tmp_path / "cache-killed"
    killed = _tune_command(path, tmp_path / "killed", cache, kill_at=2 + 5 + 2)
    assert killed.returncode == -signal.SIGKILL
    assert len(list((cache / "trials").glob("*.partial.json"))) == 1  # inside trial 2
    assert len(list((cache / "states").glob("*.pt"))) == 1  # after its first epoch
    assert not (tmp_path / "killed" / "ga" / "trials.csv").exists()
    resumed = _tune_command(path, tmp_path / "killed", cache)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch 1/4" in resumed.stderr
    # nothing done before the kill is done again: 8 calls finished before it, the 9th is redone
    assert _calls(whole.stderr) == 8 + _calls(resumed.stderr)
    whole_rows = _rows(tmp_path / "whole" / "ga" / "trials.csv")
    assert _rows(tmp_path / "killed" / "ga" / "trials.csv") == whole_rows
    assert len(whole_rows) == 4
    best = [
        yaml.safe_load((tmp_path / run / "ga" / "best.yaml").read_text())
        for run in ("whole", "killed")
    ]
    assert best[0]["methods"] == best[1]["methods"]
    assert not list((cache / "trials").glob("*.partial.json"))


def test_cli_tune_of_an_unknown_method_is_one_line_and_exit_2(tmp_path):
    from typer.testing import CliRunner

    from medunlearn.cli import app

    result = CliRunner().invoke(app, ["tune", "--method", "nosuch", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "unknown method" in result.output.lower() and "Traceback" not in result.output
    assert not (tmp_path / "o").exists()


def test_cli_tune_refuses_retrain_and_a_missing_method(tmp_path):
    from typer.testing import CliRunner

    from medunlearn.cli import app

    runner = CliRunner()
    result = runner.invoke(app, ["tune", "--method", "retrain", "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and "nothing to tune" in result.output


@pytest.mark.slow
@pytest.mark.skipif(
    importlib.util.find_spec("ray") is None, reason="Ray is not installed: pip install -e '.[ray]'"
)
def test_a_search_on_ray_with_trials_side_by_side_is_the_sequential_search(make_config, tmp_path):
    from medunlearn.executor import make_executor

    config = _tune_config(make_config, parallel=2)
    sequential = tuning.tune(config, tmp_path / "sequential")
    config.runtime.cache_dir = str(tmp_path / "ray-cache")  # nothing shared with the first run
    config.runtime.executor = "ray"
    executor = make_executor(config.runtime)
    try:
        on_ray = tuning.tune(config, tmp_path / "ray", executor=executor)
    finally:
        executor.close()
    ray_rows = _rows(tmp_path / "ray" / "trials.csv")
    assert ray_rows == _rows(tmp_path / "sequential" / "trials.csv")
    assert on_ray["best_params"] == sequential["best_params"]
