"""benchmarks/gpu.sh, the prepared GPU run, in its CPU dry run on the tiny fixture."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
WRITTEN = [
    "checks.log",
    "experiment.json",
    "experiment.log",
    "gpu.log",
    "salun64.log",
    "throughput.json",
    "throughput.log",
]


@pytest.mark.slow
def test_the_gpu_script_runs_every_step_on_the_cpu_and_writes_its_tables(write_npz, tmp_path):
    data = write_npz().parent
    out = tmp_path / "out"
    command = ["bash", "benchmarks/gpu.sh", "--device", "cpu", "--tiny", "--data", str(data)]
    env = {**os.environ, "PYTHON": sys.executable, "MEDUNLEARN_DATA": str(data)}
    env.pop("OUT", None)
    result = subprocess.run(
        [*command, str(out)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert sorted(path.name for path in out.iterdir()) == WRITTEN
    steps = (out / "gpu.log").read_text()
    for step in ("throughput eager", "CUDA-only tests", "forgetting score", "salun64"):
        assert f"{step} " in steps
    assert "experiment " in steps and "0 step(s) failed" in steps
    assert "cnn: loop" in steps  # the throughput targets, beside the run
    assert json.loads((out / "throughput.json").read_text())["rows"][0]["model"] == "cnn"
    phases = json.loads((out / "experiment.json").read_text())["phases"]
    assert any(phase.startswith("repeats") for phase in phases)
    checks = (out / "checks.log").read_text()
    assert "needs a CUDA device" in checks and "largest epsilon difference 0" in checks
    salun = (out / "salun64.log").read_text()
    assert "64 px from the 28 px file" in salun and "\nsalun," in salun


@pytest.mark.slow
def test_the_gpu_script_goes_on_after_a_failed_step_and_says_so(tmp_path):
    """A data folder without the file: the steps that read it fail, the script still ends,
    with status 1 and each failure in its log."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHON": sys.executable}
    command = ["bash", "benchmarks/gpu.sh", "--device", "cpu", "--tiny", "--steps", "salun64"]
    result = subprocess.run(
        [*command, "--data", str(tmp_path / "none"), str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    steps = (out / "gpu.log").read_text()
    assert "salun64" in steps and "FAILED" in steps and "1 step(s) failed" in steps


@pytest.mark.slow
def test_the_sisa_benchmark_prints_both_budgets_as_ratios(write_npz, tmp_path):
    """benchmarks/sisa.py's dry run on the tiny fixture: every step runs, and the JSON has the
    two budgets' ratios and what each deletion retrained."""
    data = write_npz().parent
    out = tmp_path / "sisa.json"
    command = [sys.executable, "benchmarks/sisa.py", "--data-root", str(data), "--json", str(out)]
    quick = ["train.epochs=4", "model.width=4", "train.batch_size=16"]
    command += [arg for setting in quick for arg in ("--set", setting)]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(target <= 1.15x)" in result.stdout and "(target <= 0.6x)" in result.stdout
    measured = json.loads(out.read_text())
    assert measured["four_ratio"] > 0
    one, ten = measured["deletions"]["1"], measured["deletions"]["10"]
    assert one["shards_retrained"] == 1 and one["shards_expected"] == pytest.approx(1)
    assert ten["shards_retrained"] >= one["shards_retrained"]
    assert 0 < one["retrain_share"] <= ten["retrain_share"] <= 1


@pytest.mark.slow
def test_the_deletion_benchmark_times_a_protocol_and_requests(write_npz, tmp_path):
    """benchmarks/deletion.py's smoke run on the tiny fixture: a protocol, then two requests in
    turn, each with its phases and its evidence's share of the method's run time."""
    data = write_npz().parent
    out = tmp_path / "deletion.json"
    command = [sys.executable, "deletion.py", "--data-root", str(data), "--quick", "--loose",
               "--method", "ft", "--size", "4", "--cache", str(tmp_path / "cache"),
               "--json", str(out)]  # fmt: skip
    result = subprocess.run(command, cwd=ROOT / "benchmarks", capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert "(target <= 30 min" in result.stdout and "(target <= 15%" in result.stdout
    measured = json.loads(out.read_text())
    assert measured["validated"] and len(measured["requests"]) == 2
    for request in measured["requests"]:
        assert request["method_s"] > 0 and request["share"] > 0
        assert request["decision"] in {"released", "retrained", "retrained (debt)"}
