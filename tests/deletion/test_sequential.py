"""The sequential-requests study on the tiny fixture: the synthetic patient map, the requests
(closed over duplicates, never a patient twice), no forgotten image trained on again, the exact
Retrain trained once per due request and shared, a stopped study resumed without redoing a
step, the miss rate, the command."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from medunlearn.cli import app
from medunlearn.config import (
    ConfigError,
    MethodConfig,
    SequentialConfig,
    UserError,
    dump_config,
    load_config,
)
from medunlearn.data.medmnist import load_medmnist
from medunlearn.deletion import sequential
from medunlearn.deletion.requests import (
    RequestError,
    read_patient_map,
    synthetic_patient_map,
    write_patient_map,
)
from medunlearn.deletion.sequential import draw_requests, miss_rate, run_sequential
from medunlearn.methods import retrain as retrain_module

QUICK = {"epochs": 1, "batch_size": 16}
FOUR = [MethodConfig(name, dict(QUICK)) for name in ("ft", "rl", "salun", "neggrad+")]


@pytest.fixture
def study_config(make_config):
    """The tiny experiment with a sequential study of 4 requests of 2 patients, the exact
    Retrain at every second."""

    def make(methods=None, **settings):
        config = make_config(methods or [MethodConfig("ft", dict(QUICK))])
        values = {"requests": 4, "patients": 2, "exact_every": 2, **settings}
        return dataclasses.replace(config, sequential=SequentialConfig(**values))

    return make


def test_the_synthetic_map_gives_every_image_one_patient_of_1_to_5_images(tmp_path: Path) -> None:
    mapping = synthetic_patient_map(997, seed=3)
    ids = np.concatenate(list(mapping.values()))
    assert sorted(ids.tolist()) == list(range(997))  # every training id exactly once
    sizes = {len(v) for v in mapping.values()}
    assert sizes == {1, 2, 3, 4, 5}  # all sizes occur, none outside
    again = synthetic_patient_map(997, seed=3)
    assert all(np.array_equal(again[p], mapping[p]) for p in mapping)
    other = synthetic_patient_map(997, seed=4)
    assert any(not np.array_equal(other.get(p, []), mapping[p]) for p in mapping)
    # the CSV it writes is the one a deployment's patient map is read from
    read = read_patient_map(write_patient_map(tmp_path / "map.csv", mapping), 997)
    assert read.keys() == mapping.keys()
    assert all(np.array_equal(read[p], mapping[p]) for p in mapping)


def test_the_synthetic_map_keeps_other_bounds_or_refuses() -> None:
    for n in [3, 4, *range(6, 120)]:  # 5 is no sum of 3s and 4s
        for seed in range(3):
            mapping = synthetic_patient_map(n, seed, images=(3, 4))
            assert {len(v) for v in mapping.values()} <= {3, 4}, (n, seed)
            assert sorted(np.concatenate(list(mapping.values())).tolist()) == list(range(n))
    with pytest.raises(UserError, match="cannot be cut"):
        synthetic_patient_map(5, seed=0, images=(3, 4))
    with pytest.raises(UserError, match="1 <= min <= max"):
        synthetic_patient_map(10, seed=0, images=(4, 2))


def test_requests_are_new_patients_closed_over_duplicates(write_npz, study_config) -> None:
    def duplicate(arrays: dict) -> None:
        arrays["train_images"][40] = arrays["train_images"][3]  # image 40 is image 3 again

    root = write_npz("bloodmnist", 64, 24, 24, mutate=duplicate).parent
    dataset = load_medmnist("bloodmnist", 28, root=root, download=False)
    mapping = {f"p{i}": np.array([i]) for i in range(64)}
    config = study_config(requests=5, patients=6)
    requests = draw_requests(config, dataset, mapping)
    patients = [p for r in requests for p in r.patients]
    assert len(patients) == len(set(patients)) == 30
    holder = next(r for r in requests if "p3" in r.patients or "p40" in r.patients)
    assert {3, 40} <= set(holder.ids.tolist()) and holder.n_duplicates <= 1
    forgotten: set[int] = set()
    for request in requests:
        forget_set = request.forget_set(dataset)
        assert set(forget_set.excluded.tolist()) == forgotten
        assert not forgotten & set(request.ids.tolist())
        assert not forgotten & set(forget_set.retain_ids.tolist())
        forgotten |= set(request.ids.tolist())
    with pytest.raises(RequestError, match="need 70 patients"):
        draw_requests(study_config(requests=7, patients=10), dataset, mapping)


def test_no_request_is_trained_on_after_it(study_config, batch_rows, monkeypatch, tmp_path):
    windows = []
    real = sequential.run_method

    def recording(method, data, original, context, key):
        start = len(batch_rows)
        result = real(method, data, original, context, key)
        windows.append((method.name, data.forget_set.spec["label"], start, len(batch_rows)))
        return result

    monkeypatch.setattr(sequential, "run_method", recording)
    run_sequential(study_config(FOUR), tmp_path / "out")
    requests = json.loads((tmp_path / "out" / "requests.json").read_text())
    ids = {f"request-{r['request']}": set(r["ids"]) for r in requests}
    assert len(windows) == 4 * 4 + 2  # each method at each request, Retrain at 2 and 4
    for name, label, start, end in windows:
        step = int(label.split("-")[1])
        seen = set().union(*batch_rows[start:end])
        gone = set().union(*(ids[f"request-{j}"] for j in range(1, step)))
        assert not seen & gone, (name, label)  # nothing forgotten earlier comes back
        if name == "retrain":
            assert not seen & ids[label]
        elif name == "rl":
            assert ids[label] <= seen  # the request's own images are in its relabelled batches


def test_the_exact_retrain_is_trained_once_per_due_request_and_shared(
    study_config, monkeypatch, tmp_path
) -> None:
    trained = []
    real = retrain_module.train_model
    monkeypatch.setattr(retrain_module, "train_model",
                        lambda *a, **k: trained.append(1) or real(*a, **k))  # fmt: skip
    two = [MethodConfig("ft", dict(QUICK)), MethodConfig("rl", dict(QUICK))]
    rows = run_sequential(study_config(two), tmp_path / "two")
    assert len(trained) == 2  # requests 2 and 4, whatever the number of methods
    assert [r["step"] for r in rows if r["role"] == "retrain"] == [2, 4]
    # another study of the same requests (one method) trains no Retrain: same forget sets, same key
    again = run_sequential(study_config(two[1:]), tmp_path / "one")
    assert len(trained) == 2
    exact = [r["ta"] for r in rows if r["role"] == "retrain"]
    assert [r["ta"] for r in again if r["role"] == "retrain"] == exact


def test_a_stopped_study_resumes_without_redoing_a_step(
    study_config, monkeypatch, tmp_path
) -> None:
    config = study_config([MethodConfig("ft", dict(QUICK)), MethodConfig("rl", dict(QUICK))])
    runs, evaluations = [], []
    real_run, real_evaluate = sequential.run_method, sequential.evaluate

    def stopping(method, data, original, context, key):
        if len(runs) == 5:
            raise KeyboardInterrupt  # stopped before the 6th run: ft, rl, ft, rl, Retrain done
        runs.append((method.name, data.forget_set.spec["label"]))
        return real_run(method, data, original, context, key)

    def counting(*args, **kwargs):
        evaluations.append(1)
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(sequential, "run_method", stopping)
    monkeypatch.setattr(sequential, "evaluate", counting)
    with pytest.raises(KeyboardInterrupt):
        run_sequential(config, tmp_path / "out")
    assert len(evaluations) == 6  # the original and the five finished steps
    runs.clear()
    evaluations.clear()
    monkeypatch.setattr(sequential, "run_method", lambda *a: runs.append(a) or real_run(*a))
    rows = run_sequential(config, tmp_path / "out")
    assert len(runs) == 5 and len(evaluations) == 5  # ft, rl at 3; ft, rl and Retrain at 4
    assert len(rows) == 1 + 2 * 4 + 2
    runs.clear()
    evaluations.clear()
    fresh = dataclasses.replace(config, runtime=dataclasses.replace(
        config.runtime, cache_dir=str(tmp_path / "fresh-cache")))  # fmt: skip
    whole = run_sequential(fresh, tmp_path / "whole")
    assert len(runs) == 2 * 4 + 2  # the same study in one go, from nothing
    keys = ("method", "step", "ta", "ua", "pop_phi_matched_auc", "drift", "reversal")
    assert [[r.get(k) for k in keys] for r in rows] == [[r.get(k) for k in keys] for r in whole]


def test_the_miss_rate_is_the_fnr_or_the_macro_miss_rate(blood) -> None:
    columns = {f"ta_c{c}": value for c, value in enumerate([90.0, 70.0, None, 80.0])}
    kind, value = miss_rate(columns, dataclasses.replace(blood, n_classes=4))
    assert kind == "macro" and value == pytest.approx(100.0 - 80.0)  # classes with test images


def test_a_study_of_several_seeds_or_no_method_is_refused(study_config, tmp_path) -> None:
    with pytest.raises(ConfigError, match="one seed"):
        run_sequential(dataclasses.replace(study_config(), seeds=[0, 1]), tmp_path / "a")
    with pytest.raises(ConfigError, match="at least one unlearning method"):
        run_sequential(study_config([MethodConfig("retrain")]), tmp_path / "b")
    with pytest.raises(ConfigError, match="exceeds requests"):
        SequentialConfig(requests=2, exact_every=3)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_the_command_writes_the_study(study_config, tmp_path) -> None:
    path = tmp_path / "study.yaml"
    path.write_text(dump_config(study_config(requests=2, patients=3)))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["sequential", str(path), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "k*" in result.output
    for name in ("results.csv", "results.json", "report.md", "sequential.png", "patients.csv"):
        assert (out / name).is_file(), name
    assert len(read_patient_map(out / "patients.csv", 64)) >= 13  # 64 images, 1-5 each
    assert load_config(out / "config.yaml").sequential.patients == 3
