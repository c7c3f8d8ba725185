"""One trial: scored against each tuning seed's Retrain (the mean over the seeds, its epochs
numbered k x E + e), pruned by the median rule whatever loop the method trains with, and a
study killed inside a trial that resumes to the same rows without redoing any work."""

import csv
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("optuna", reason="Optuna is not installed: pip install -e '.[tune]'")

from medunlearn.config import (
    ConfigError,
    MethodConfig,
    SearchRange,
    TuneConfig,
    dump_config,
    load_config,
)
from medunlearn.executor import SequentialExecutor
from medunlearn.progress import NullProgress
from medunlearn.tuning import trial
from medunlearn.tuning.run import search
from medunlearn.tuning.trial import problem, run_trial

GAP = ("ua", "ra", "ta", "mia")


def _gap(metrics: dict, target: dict) -> float:
    """AG by hand: the mean absolute gap of UA, RA, TA and MIA to Retrain's."""
    return sum(abs(metrics[k] - target[k]) for k in GAP) / len(GAP)


def _tune_config(make_config, method="ga", epochs=3, **tune):
    """Retrain and `method` on the tiny fixture, searched over lr."""
    config = make_config(
        [MethodConfig("retrain"), MethodConfig(method, {"epochs": epochs, "batch_size": 16})]
    )
    values = dict(method=method, trials=4, startup_trials=1, warmup_epochs=1, held_out=[1],
                  space={"lr": SearchRange(1e-4, 1e-1)})  # fmt: skip
    config.tune = TuneConfig(**{**values, **tune})
    return config


def _search(config):
    """The search alone (no held-out evaluation), sequentially."""
    return search(config, config.methods[1], SequentialExecutor(), NullProgress())


def _steps(result: dict) -> list[int]:
    """A trial's per-epoch steps (JSON turns them into text once the trial is cached)."""
    return sorted(int(step) for step in result["intermediate"])


def test_a_trial_on_two_tuning_seeds_scores_the_mean_of_their_gaps_to_retrain(
    make_config, monkeypatch
):
    epochs = 2
    config = _tune_config(make_config, epochs=epochs, trials=2, prune=False, seed=[0, 1],
                          held_out=[2])  # fmt: skip
    problems = [problem(config, seed) for seed in (0, 1)]  # the references, before the spy
    forgets = [p.data.forget_set.forget_ids for p in problems]
    assert not np.array_equal(*forgets)  # two forget sets, two Retrains
    calls = []
    real = trial.objective_metrics

    def spy(model, data, engine, seed):
        metrics = real(model, data, engine, seed)
        calls.append((data, metrics))
        return metrics

    monkeypatch.setattr(trial, "objective_metrics", spy)
    tuning = _search(config)
    assert tuning.cost["trainings"] == 2 + 2 * 2  # a Retrain per seed, a run per seed and trial
    per_trial = 2 * (epochs + 1)  # per seed: the probe after each epoch, then the forget set's
    assert len(calls) == 2 * per_trial
    for number, result in enumerate(tuning.trials):
        assert result["state"] == "complete" and result["runs"] == 2
        assert _steps(result) == [1, 2, 3, 4] and result["epochs"] == 2 * epochs
        mine = calls[number * per_trial : (number + 1) * per_trial]
        finals = []
        for k, setup in enumerate(problems):
            seed_calls = mine[k * (epochs + 1) : (k + 1) * (epochs + 1)]
            *probes, (data, final) = seed_calls
            assert np.array_equal(data.forget_set.forget_ids, forgets[k])  # seed k's forget set
            for e, (probe, metrics) in enumerate(probes, start=1):
                assert torch.equal(probe.dataset.train.images, setup.probe.dataset.train.images)
                step = result["intermediate"][k * epochs + e]  # seed k's epoch e
                assert step == pytest.approx(_gap(metrics, setup.target["probe"]))
            finals.append(final)
        gaps = [_gap(m, p.target["data"]) for m, p in zip(finals, problems, strict=True)]
        assert gaps[0] != pytest.approx(gaps[1])  # so one seed twice would not pass
        assert result["value"] == pytest.approx(np.mean(gaps))
        assert result["ua"] == pytest.approx(np.mean([m["ua"] for m in finals]))


def test_a_scalar_tuning_seed_loads_as_a_list_and_held_out_seeds_must_differ(make_config, tmp_path):
    tree = yaml.safe_load(dump_config(make_config()))
    tree["tune"].update(seed=0, held_out=[1])
    path = tmp_path / "scalar.yaml"
    path.write_text(yaml.safe_dump(tree))
    assert load_config(path).tune.seed == [0]
    tree["tune"].update(seed=[0, 1], held_out=[1, 2])
    path.write_text(yaml.safe_dump(tree))
    with pytest.raises(ConfigError, match=r"holds the tuning seed\(s\) \[1\]"):
        load_config(path)
    with pytest.raises(ConfigError, match="held-out seeds must be other seeds"):
        TuneConfig(seed=[0, 1], held_out=[2, 0])
    with pytest.raises(ConfigError, match="distinct seeds"):
        TuneConfig(seed=[0, 0], held_out=[1])


def test_sfr_on_trials_report_their_epochs_and_a_bad_one_is_pruned(make_config):
    # SFR-on trains in fit by its own step: each epoch must reach the trial's on_epoch
    config = _tune_config(make_config, "sfr-on", sampler="grid", trials=2, warmup_epochs=0,
                          space={"lr": SearchRange(choices=[1.0, 1e-3])})  # fmt: skip
    first, second = _search(config).trials
    assert first["state"] == "complete" and _steps(first) == [1, 2, 3] and first["epochs"] == 3
    assert second["state"] == "pruned" and 0 < second["epochs"] < 3
    step = second["epochs"]
    assert second["intermediate"][step] > first["intermediate"][step]  # worse than the median


def test_a_pruned_trial_leaves_no_resumable_state(make_config, cache_dir):
    config = _tune_config(make_config, warmup_epochs=0)
    # an earlier trial that only a first epoch beats: pruned after its second
    earlier = [{"state": "complete", "value": 0.0, "intermediate": {"1": 1e9, "2": -1.0}}]
    result = run_trial(config, config.methods[1], {"lr": 0.01}, 1, earlier)
    assert result["state"] == "pruned" and result["epochs"] == 2
    assert not list((cache_dir / "states").glob("*.pt"))
    assert not list((cache_dir / "trials").glob("*.partial.json"))


# runs `medunlearn tune`, killing itself with SIGKILL at the given call of the objective's
# metrics (0: never): a reference takes 2 calls, a trial E + 1 per tuning seed (E epochs, then
# its end)
KILLING_CLI = """
import atexit, os, signal, sys
from medunlearn import cli
from medunlearn.tuning import trial
metrics, calls, kill_at = trial.objective_metrics, [], int(sys.argv[1])
atexit.register(lambda: print(f"objective calls: {len(calls)}", file=sys.stderr))
def counted(*args, **kwargs):
    calls.append(1)
    if len(calls) == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return metrics(*args, **kwargs)
trial.objective_metrics = counted
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


def _killed_and_resumed(config, tmp_path, kill_at: int):
    """Tune whole, then killed at objective call `kill_at` and resumed: the two runs' rows
    and best.yaml agree, the resumed run redoes only the killed call."""
    config.runtime.cache_dir = None  # each run names its cache through MEDUNLEARN_CACHE
    path = tmp_path / "tune.yaml"
    path.write_text(dump_config(config))
    whole = _tune_command(path, tmp_path / "whole", tmp_path / "cache-whole")
    assert whole.returncode == 0, whole.stderr
    cache = tmp_path / "cache-killed"
    killed = _tune_command(path, tmp_path / "killed", cache, kill_at=kill_at)
    assert killed.returncode == -signal.SIGKILL
    assert len(list((cache / "trials").glob("*.partial.json"))) == 1  # inside trial 2
    assert len(list((cache / "states").glob("*.pt"))) == 1  # after its first epoch
    assert not (tmp_path / "killed" / "ga" / "trials.csv").exists()
    resumed = _tune_command(path, tmp_path / "killed", cache)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming after epoch 1/4" in resumed.stderr
    # nothing done before the kill is done again: the calls before it are not redone
    assert _calls(whole.stderr) == kill_at - 1 + _calls(resumed.stderr)
    whole_rows = _rows(tmp_path / "whole" / "ga" / "trials.csv")
    assert _rows(tmp_path / "killed" / "ga" / "trials.csv") == whole_rows
    assert len(whole_rows) == 4
    best = [
        yaml.safe_load((tmp_path / run / "ga" / "best.yaml").read_text())
        for run in ("whole", "killed")
    ]
    assert best[0]["methods"] == best[1]["methods"]
    assert not list((cache / "trials").glob("*.partial.json"))
    return whole_rows


@pytest.mark.slow
def test_a_study_killed_inside_a_trial_resumes_with_identical_rows(make_config, tmp_path):
    config = _tune_config(make_config, epochs=4)
    # the reference 2 calls, trial 1 5 (4 epochs, then its end), killed at trial 2's epoch 2
    _killed_and_resumed(config, tmp_path, kill_at=2 + 5 + 2)


@pytest.mark.slow
def test_a_two_seed_study_killed_in_its_second_seed_resumes_with_identical_rows(
    make_config, tmp_path
):
    config = _tune_config(make_config, epochs=4, seed=[0, 1], held_out=[2])
    # the references 2 x 2 calls, trial 1 2 x 5; trial 2's first seed 5, then killed at the
    # second seed's epoch 2
    rows = _killed_and_resumed(config, tmp_path, kill_at=2 * 2 + 2 * 5 + 5 + 2)
    assert rows[1]["state"] == "complete" and rows[1]["epochs"] == "8"  # both seeds' epochs
