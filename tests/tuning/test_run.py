"""`medunlearn tune`: a search scored against Retrain and its report, the held-out evaluation
and best.yaml, several methods with their tuning overhead, the command line, and Ray."""

import csv
import importlib.util
import json

import pytest

pytest.importorskip("optuna", reason="Optuna is not installed: pip install -e '.[tune]'")

from medunlearn.config import ConfigError, MethodConfig, SearchRange, TuneConfig, load_config
from medunlearn.tuning import tune, tune_methods
from medunlearn.tuning.trial import problem


def _tune_config(make_config, **tune):
    config = make_config(
        [MethodConfig("retrain"), MethodConfig("ga", {"epochs": 3, "batch_size": 16})]
    )
    values = dict(method="ga", trials=4, startup_trials=1, warmup_epochs=1, held_out=[1],
                  space={"lr": SearchRange(1e-4, 1e-1)})  # fmt: skip
    config.tune = TuneConfig(**{**values, **tune})
    return config


def _rows(path):
    with open(path, newline="") as handle:
        return [{k: v for k, v in row.items() if k != "minutes"} for row in csv.DictReader(handle)]


def test_tuning_ga_scores_trials_against_retrain_and_reports_held_out_seeds(make_config, tmp_path):
    config = _tune_config(make_config)
    summary = tune(config, tmp_path / "out")
    out = tmp_path / "out"
    with open(out / "trials.csv", newline="") as handle:
        trials = list(csv.DictReader(handle))
    assert len(trials) == 4 and {t["state"] for t in trials} <= {"complete", "pruned"}
    complete = [t for t in trials if t["state"] == "complete"]
    best = min(complete, key=lambda t: float(t["objective"]))
    assert summary["best_params"]["lr"] == pytest.approx(float(best["lr"]))
    # the objective is the AG of the trial's metrics to Retrain's on the tuning seed
    target = problem(config, 0).target["data"]
    for trial in complete:
        gap = sum(abs(float(trial[k]) - target[k]) for k in ("ua", "ra", "ta", "mia")) / 4
        assert float(trial["objective"]) == pytest.approx(gap)
    held_out = {entry["method"]: entry for entry in summary["held_out"]}
    assert set(held_out) == {"original", "retrain", "ga-untuned", "ga-tuned"}
    assert all(entry["n_seeds"] == 1 for entry in held_out.values())
    assert summary["cost"]["trainings"] == 5 and summary["cost"]["tune_min"] > 0
    assert held_out["ga-tuned"]["tune_min"] == summary["cost"]["tune_min"]
    assert summary["tuning_seeds"] == [0] and summary["held_out_seeds"] == [1]
    assert json.loads((out / "tuning.json").read_text())["best_params"] == summary["best_params"]
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
        tune(config, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_tuning_every_method_of_a_config_writes_each_search_and_their_overhead(
    make_config, tmp_path
):
    config = _tune_config(make_config, trials=2)
    config.methods.append(MethodConfig("ft", {"epochs": 2, "batch_size": 16}))
    config.tune.method = None  # no method named: every method but Retrain
    summaries = tune_methods(config, tmp_path / "out")
    assert [s["method"] for s in summaries] == ["ga", "ft"]
    for method in ("ga", "ft"):
        assert (tmp_path / "out" / method / "best.yaml").is_file()
    with open(tmp_path / "out" / "overhead.csv", newline="") as handle:
        overhead = list(csv.DictReader(handle))
    assert [row["method"] for row in overhead] == ["ga", "ft"]
    assert all(float(row["tune_min"]) > 0 for row in overhead)
    assert (tmp_path / "out" / "overhead.png").read_bytes()[:4] == b"\x89PNG"
    assert "speed-up" in (tmp_path / "out" / "overhead.md").read_text()


def test_a_config_with_nothing_to_tune_is_refused(make_config, tmp_path):
    config = make_config([MethodConfig("retrain")])
    with pytest.raises(ConfigError, match="no method to tune"):
        tune_methods(config, tmp_path / "out")


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
    sequential = tune(config, tmp_path / "sequential")
    config.runtime.cache_dir = str(tmp_path / "ray-cache")  # nothing shared with the first run
    config.runtime.executor = "ray"
    executor = make_executor(config.runtime)
    try:
        on_ray = tune(config, tmp_path / "ray", executor=executor)
    finally:
        executor.close()
    ray_rows = _rows(tmp_path / "ray" / "trials.csv")
    assert ray_rows == _rows(tmp_path / "sequential" / "trials.csv")
    assert on_ray["best_params"] == sequential["best_params"]
