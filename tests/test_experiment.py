"""Whole experiments: files written, Retrain as reference, reuse on repeat, reproducibility,
and nothing written for bad input."""

import csv
import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import yaml

import medunlearn.data.cache as data_cache
import medunlearn.experiment as experiment
import medunlearn.methods.retrain as retrain_module
import medunlearn.methods.salun as salun_module
import medunlearn.study.pipeline as pipeline
import medunlearn.study.rows as rows_module
import medunlearn.training as training
from medunlearn.checkpoints import load_model
from medunlearn.config import (
    ConfigError,
    ForgetConfig,
    MethodConfig,
    load_config,
)
from medunlearn.data import DataError, load_dataset
from medunlearn.engine import Engine
from medunlearn.forget import ForgetError, load_forget_set
from medunlearn.metrics.evaluate import Request, evaluate, finish
from medunlearn.metrics.gap import average_gap
from medunlearn.seeds import Seeds
from medunlearn.sharding import ShardedModel, ShardingError
from medunlearn.store import Store, cache_root, load_arrays
from medunlearn.study.validate import validate

METRICS = ("ua", "ra", "ta", "mia", "ag")
METHODS = [
    MethodConfig("retrain"),
    MethodConfig("ft", {"epochs": 1, "batch_size": 16}),
    MethodConfig("rl", {"epochs": 1, "batch_size": 16}),
    MethodConfig("salun", {"epochs": 1, "batch_size": 16}),
]
METHOD_ROWS = ["original", "retrain", "ft", "rl", "salun"]  # the rows a run of METHODS gives


def _run_folder(out, seed=0):
    """The folder of a run's per-method JSON files for a seed (its layout may nest deeper)."""
    (folder,) = [p.parent for p in (out / "runs").rglob("forget_set.json")
                 if p.parent.name == f"seed{seed}"]  # fmt: skip
    return folder


def _csv(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture
def finished(make_config, tmp_path):
    """A finished tiny run: the config, its output folder and its rows."""
    config = make_config(METHODS)
    out = tmp_path / "out"
    rows = experiment.run(config, out)
    return config, out, rows


def test_run_writes_every_file(finished):
    config, out, rows = finished
    assert load_config(out / "config.yaml") == config
    assert {row["inference_path"] for row in rows} == {Engine(config.runtime).inference_path}
    assert (out / "report.md").is_file()
    assert "# tiny" in (out / "report.md").read_text()

    table = _csv(out / "results.csv")
    header = list(table[0])
    wanted = ["method", "seed", "ua", "ra", "ta", "mia", "ag", "rte_min"]
    assert [c for c in header if c in wanted] == wanted
    assert [r["method"] for r in table] == METHOD_ROWS
    for row in table:
        assert row["seed"] == "0"
        for key in (*METRICS, "rte_min"):
            assert 0.0 <= float(row[key]) <= 100.0, (row["method"], key)

    folder = _run_folder(out)
    assert "random-25pct" in folder.parts
    forget = json.loads((folder / "forget_set.json").read_text())
    assert forget["n_forget"] == 16
    for method in METHOD_ROWS:
        saved = json.loads((folder / f"{method}.json").read_text())
        assert saved["row"]["method"] == method
        assert saved["run_key"]
        assert saved["pending"] == []
    assert not list(folder.glob("*.npz"))  # every attack's inputs dropped once it ran
    assert json.loads((out / "results.json").read_text()) == rows


def test_retrain_is_the_reference(finished):
    _, out, rows = finished
    by_method = {r["method"]: r for r in rows}
    assert by_method["retrain"]["ag"] == 0.0
    assert float(_csv(out / "results.csv")[1]["ag"]) == 0.0
    for row in rows:
        expected = sum(abs(row[k] - by_method["retrain"][k]) for k in METRICS[:4]) / 4
        assert row["ag"] == pytest.approx(expected)


def test_second_run_reuses_everything(finished, monkeypatch):
    config, out, rows = finished

    def forbidden(*args, **kwargs):
        raise AssertionError("trained again instead of reusing the finished run")

    monkeypatch.setattr(pipeline, "train_model", forbidden)
    monkeypatch.setattr(retrain_module, "train_model", forbidden)
    monkeypatch.setattr(pipeline, "unlearn", forbidden)
    stray = _run_folder(out) / "ft.svc.npz"  # as a stop right after the row was finished leaves
    stray.write_bytes(b"")
    again = experiment.run(config, out)
    assert again == rows
    assert not stray.exists()


def test_run_stopped_before_the_attacks_resumes_without_training(
    make_config, tmp_path, monkeypatch
):
    """Rows are kept with their MIA pending; the resumed run fits the attacks on their inputs."""
    config, out = make_config(METHODS), tmp_path / "out"
    monkeypatch.setattr(rows_module.PendingAttacks, "finish", _raise(KeyboardInterrupt))
    with pytest.raises(KeyboardInterrupt):
        experiment.run(config, out)
    folder = _run_folder(out)
    expected = {}
    for name in METHOD_ROWS:
        saved = json.loads((folder / f"{name}.json").read_text())
        assert saved["pending"] == ["svc"] and saved["row"]["mia"] is None
        assert saved["row"]["ua"] is not None
        expected[name] = finish("svc", load_arrays(folder / f"{name}.svc.npz"))["mia"]
    monkeypatch.undo()
    for owner, name in ((pipeline, "train_model"), (retrain_module, "train_model"),
                        (pipeline, "unlearn")):  # fmt: skip
        monkeypatch.setattr(owner, name, _raise(AssertionError("trained again")))
    rows = experiment.run(config, out)
    assert {r["method"]: r["mia"] for r in rows} == expected
    assert not list(folder.glob("*.npz"))
    engine, dataset = Engine(config.runtime), load_dataset(config.data)
    store = Store(cache_root(config.runtime.cache_dir))
    original = pipeline.train_original(config, dataset, engine, store, 0)
    forget_set = load_forget_set(folder / "forget_set.json", dataset)
    inline = evaluate(original.model, dataset, forget_set, engine, Request(Seeds(0).attack,
                      intervals=True)).columns  # fmt: skip
    assert inline == {k: rows[0][k] for k in inline}  # deferred attack == inline attack


def test_attacks_that_finished_before_one_failed_are_kept(make_config, tmp_path, monkeypatch):
    config, out = make_config(METHODS), tmp_path / "out"
    real, calls, lock = rows_module.finish, [], threading.Lock()

    def third_fails(name, inputs):
        with lock:
            calls.append(len(calls))
            if len(calls) == 3:
                raise RuntimeError("attack failed")
        return real(name, inputs)

    monkeypatch.setattr(rows_module, "finish", third_fails)
    with pytest.raises(RuntimeError, match="attack failed"):
        experiment.run(config, out)
    folder = _run_folder(out)
    for name in METHOD_ROWS:  # each row is whole, or pending with its attack's inputs
        saved = json.loads((folder / f"{name}.json").read_text())
        pending = saved["pending"] == ["svc"]
        assert (saved["row"]["mia"] is None) == pending
        assert (folder / f"{name}.svc.npz").is_file() == pending
    assert len(list(folder.glob("*.svc.npz"))) >= 1  # the failed one
    monkeypatch.undo()
    rows = experiment.run(config, out)
    assert all(r["mia"] is not None for r in rows)
    assert not list(folder.glob("*.npz"))


def test_attacks_beside_a_gpu_training_start_as_rows_are_written_with_the_same_results(
    finished, tmp_path, monkeypatch
):
    config, _, rows = finished
    started = []
    finish_all = rows_module.PendingAttacks.finish

    def count_started(attacks):
        started.append(len(attacks.futures))
        finish_all(attacks)

    monkeypatch.setattr(rows_module, "attacks_in_background", lambda engine: True)
    monkeypatch.setattr(rows_module.PendingAttacks, "finish", count_started)
    again = experiment.run(config, tmp_path / "again")
    assert started == [len(METHOD_ROWS)]  # all submitted before the forget set's end
    assert [r["mia"] for r in again] == [r["mia"] for r in rows]


def _raise(error: BaseException):
    def fail(*args, **kwargs):
        raise error

    return fail


def test_new_output_folder_reuses_cached_original_and_retrain(finished, tmp_path, monkeypatch):
    config, _, rows = finished

    def forbidden(*args, **kwargs):
        raise AssertionError("trained again instead of reading the cache")

    monkeypatch.setattr(pipeline, "train_model", forbidden)
    monkeypatch.setattr(retrain_module, "train_model", forbidden)
    again = experiment.run(config, tmp_path / "elsewhere")
    for old, new in zip(rows, again, strict=True):
        assert old["method"] == new["method"]
        assert {k: old[k] for k in METRICS} == {k: new[k] for k in METRICS}


def test_same_seed_same_forget_set_and_metrics(make_config, tmp_path):
    """Two runs with separate caches: everything is recomputed, and equal."""
    methods = [MethodConfig("retrain"), MethodConfig("salun", {"epochs": 1, "batch_size": 16})]
    first_config = make_config(methods)
    second_config = make_config(methods)
    second_config.runtime.cache_dir = str(tmp_path / "other-cache")
    first = experiment.run(first_config, tmp_path / "a")
    second = experiment.run(second_config, tmp_path / "b")
    assert (tmp_path / "other-cache" / "original").is_dir()
    ids = [
        json.loads((_run_folder(tmp_path / run) / "forget_set.json").read_text())
        for run in ("a", "b")
    ]
    assert ids[0]["forget_ids"] == ids[1]["forget_ids"]
    for a, b in zip(first, second, strict=True):
        assert {k: a[k] for k in METRICS} == {k: b[k] for k in METRICS}


def test_other_seed_other_forget_set(make_config, tmp_path):
    config = make_config([MethodConfig("retrain")], seeds=[0, 1])
    rows = experiment.run(config, tmp_path / "out")
    assert [(r["method"], r["seed"]) for r in rows] == [
        ("original", 0), ("retrain", 0), ("original", 1), ("retrain", 1),
    ]  # fmt: skip
    sets = [
        json.loads((_run_folder(tmp_path / "out", s) / "forget_set.json").read_text())
        for s in (0, 1)
    ]
    assert sets[0]["forget_ids"] != sets[1]["forget_ids"]
    assert all(r["ag"] == 0.0 for r in rows if r["method"] == "retrain")
    report = (tmp_path / "out" / "report.md").read_text()
    assert "±" in report  # mean±std over the two seeds


@pytest.mark.parametrize(
    ("change", "error"),
    [
        pytest.param(lambda c: setattr(c.data, "dataset", "nosuchmnist"), DataError,
                     id="unknown-dataset"),
        pytest.param(lambda c: c.methods.append(MethodConfig("scrubb")), ConfigError,
                     id="unknown-method"),
        pytest.param(lambda c: c.methods.append(MethodConfig("salun", {"ratoi": 0.5})),
                     ConfigError, id="unknown-hyper-parameter"),
        pytest.param(lambda c: setattr(c, "forget", [replace(c.forget[0], fraction=1.0)]),
                     ConfigError, id="fraction-1"),
        pytest.param(lambda c: c.forget.append(ForgetConfig(mode="class", classes=[9])),
                     ForgetError, id="class-out-of-range"),
        pytest.param(lambda c: setattr(c, "train", replace(c.train, augment="mixup")),
                     ConfigError, id="unknown-augment"),
        pytest.param(lambda c: setattr(c, "model", replace(c.model, arch="vgg")), ConfigError,
                     id="unknown-arch"),
        pytest.param(lambda c: setattr(c, "seeds", []), ConfigError, id="no-seeds"),
        pytest.param(
            lambda c: setattr(c, "train", replace(c.train, schedule="linear")), ConfigError,
            id="unknown-schedule",
        ),
        pytest.param(
            lambda c: c.methods.append(MethodConfig("salun", {"ratio": 0.0})), ConfigError,
            id="salun-ratio-0",
        ),
        pytest.param(
            lambda c: c.methods.append(MethodConfig("rl", {"loader": "interleaved"})),
            ConfigError, id="unknown-rl-loader",
        ),
        pytest.param(
            lambda c: c.methods.extend([MethodConfig("ft"), MethodConfig("ft", {"lr": 0.1})]),
            ConfigError, id="same-method-name-twice",
        ),
        pytest.param(
            lambda c: c.methods.append(MethodConfig("ft", label="original")), ConfigError,
            id="method-labelled-original",
        ),
        pytest.param(lambda c: setattr(c, "train", replace(c.train, shards=9)), ShardingError,
                     id="more-shards-than-a-class-has"),
        pytest.param(
            lambda c: setattr(c, "train", replace(c.train, epochs=9, shards=8, slices=9)),
            ShardingError, id="more-slices-than-a-shard-has",
        ),
        pytest.param(lambda c: c.methods.append(MethodConfig("sisa")), ConfigError,
                     id="sisa-without-shards"),
        pytest.param(lambda c: c.methods.append(MethodConfig("sisa", {"shards": 9})),
                     ShardingError, id="sisa-with-more-shards-than-a-class-has"),
        pytest.param(lambda c: setattr(c, "forget", [ForgetConfig(mode="patients", count=2)]),
                     ForgetError, id="patients-without-a-mapping"),
        pytest.param(
            lambda c: (setattr(c, "train", replace(c.train, shards=2)),
                       setattr(c, "forget", [ForgetConfig(mode="hard", fraction=0.05)])),
            ConfigError, id="difficulty-of-a-sharded-original",
        ),
    ],
)  # fmt: skip
def test_bad_input_writes_no_output_folder(make_config, tmp_path, change, error):
    config = make_config([MethodConfig("retrain")])
    out = tmp_path / "out"
    with pytest.raises(error):
        change(config)
        experiment.run(config, out)
    assert not out.exists()


def test_config_yaml_is_the_resolved_config(make_config, tmp_path):
    config = make_config([MethodConfig("retrain")])
    experiment.run(config, tmp_path / "out")
    saved = yaml.safe_load((tmp_path / "out" / "config.yaml").read_text())
    assert saved["model"] == {"arch": "cnn", "width": 4}
    assert saved["train"]["epochs"] == 1


def test_export_original(make_config, tmp_path, blood):
    config = make_config()
    path, meta = experiment.export_original(config, tmp_path / "model")
    assert path == tmp_path / "model" / "model.safetensors"
    assert (tmp_path / "model" / "config.yaml").is_file()
    loaded = load_model(path, config.model, blood)
    assert loaded.meta["seed"] == 0
    assert loaded.meta["data_fingerprint"] == blood.fingerprint
    assert meta["best_epoch"] == 1


def _ids_file(folder: Path, ids: list[int]) -> str:
    folder.mkdir(parents=True)
    (folder / "ids.txt").write_text("\n".join(map(str, ids)))
    return str(folder / "ids.txt")


def test_two_forget_sets_with_the_same_label_are_refused(make_config, tmp_path):
    config = make_config([MethodConfig("retrain")])
    config.forget = [
        ForgetConfig(mode="ids", ids_file=_ids_file(tmp_path / "a", [0, 1, 2])),
        ForgetConfig(mode="ids", ids_file=_ids_file(tmp_path / "b", [3, 4, 5, 6])),
    ]
    with pytest.raises(ConfigError, match=r"more than one forget set is named \['ids-ids'\]"):
        experiment.run(config, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_labelled_forget_sets_keep_their_own_retrain_folder_and_gaps(make_config, tmp_path):
    config = make_config([MethodConfig("retrain"), MethodConfig("ft", {"batch_size": 16})])
    config.forget = [
        ForgetConfig(mode="ids", ids_file=_ids_file(tmp_path / "a", [0, 1, 2]), label="alice"),
        ForgetConfig(mode="ids", ids_file=_ids_file(tmp_path / "b", [3, 4, 5, 6]), label="bob"),
    ]
    rows = experiment.run(config, tmp_path / "out")
    by_set = {label: [r for r in rows if r["forget"] == label] for label in ("alice", "bob")}
    for label, ids in (("alice", [0, 1, 2]), ("bob", [3, 4, 5, 6])):
        saved = json.loads(next((tmp_path / "out").rglob(f"{label}/seed0/forget_set.json"))
                           .read_text())  # fmt: skip
        assert saved["forget_ids"] == ids
        retrain, ft = by_set[label][1], by_set[label][2]
        assert retrain["ag"] == 0.0
        assert ft["ag"] == pytest.approx(average_gap(ft, retrain))
    assert by_set["alice"][1]["forget_key"] != by_set["bob"][1]["forget_key"]


def _slow_epochs(monkeypatch, seconds: float, stop_after: int | None = None):
    """Every training epoch lasts at least `seconds`; the run stops after `stop_after` epochs."""
    real, done = training.train_one_epoch, []

    def epoch(*args, **kwargs):
        if stop_after is not None and len(done) == stop_after:
            raise KeyboardInterrupt
        time.sleep(seconds)
        done.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train_one_epoch", epoch)


def test_run_time_is_the_total_across_resumes(make_config, tmp_path, monkeypatch):
    """The original model stopped after 2 of 4 epochs, then Retrain after 2 of 4: each records
    the time of all 4 epochs once resumed."""
    config = make_config([MethodConfig("retrain")], epochs=4)
    for stop_after in (2, 4):  # epochs of this run before the stop
        _slow_epochs(monkeypatch, 0.25, stop_after)
        with pytest.raises(KeyboardInterrupt):
            experiment.run(config, tmp_path / "out")
        monkeypatch.undo()
    _slow_epochs(monkeypatch, 0.25)
    rows = experiment.run(config, tmp_path / "out")
    assert [row["method"] for row in rows] == ["original", "retrain"]
    assert all(row["rte_min"] * 60 >= 4 * 0.25 for row in rows), rows


def test_salun_with_a_cached_mask_counts_the_saliency_pass(make_config, tmp_path, monkeypatch):
    salun = MethodConfig("salun", {"epochs": 1, "batch_size": 16})
    config = make_config([MethodConfig("retrain"), salun])
    real = salun_module.saliency

    def slow_saliency(*args, **kwargs):
        time.sleep(1.0)
        return real(*args, **kwargs)

    monkeypatch.setattr(salun_module, "saliency", slow_saliency)
    first = experiment.run(config, tmp_path / "a")
    monkeypatch.setattr(salun_module, "saliency", _raise(AssertionError("mask not cached")))
    again = experiment.run(config, tmp_path / "b")  # a new folder: the row runs again
    assert first[-1]["rte_min"] * 60 >= 1.0
    assert again[-1]["rte_min"] * 60 >= 1.0  # the cached mask's pass still counts


def test_the_cache_folder_also_holds_the_memory_mapped_data(make_config, tmp_path, monkeypatch):
    """`runtime.cache_dir` (`--cache`) is where a set too large for memory is mapped from."""
    monkeypatch.setattr(data_cache, "MMAP_AUTO_BYTES", 0)  # map even the tiny fixture
    config = make_config()
    experiment.run(config, tmp_path / "out")
    assert (Path(config.runtime.cache_dir) / "arrays" / "bloodmnist_28").is_dir()
    assert not (tmp_path / "env-cache" / "arrays").exists()  # $MEDUNLEARN_CACHE not used


def test_easy_and_hard_forget_sets_come_from_the_originals_difficulty(make_config, tmp_path):
    """Checked before anything trains; drawn from the ends of the original model's ranking;
    reported in the easy / random / hard table and figure."""
    config = make_config([MethodConfig("retrain")], epochs=2)
    config.forget = [ForgetConfig(mode=mode, fraction=0.25, pool=0.5)
                     for mode in ("easy", "random", "hard")]  # fmt: skip
    dataset = load_dataset(config.data)
    validate(config, dataset)  # no difficulty yet: the specs are checked all the same
    out = tmp_path / "out"
    rows = experiment.run(config, out)
    store, engine = Store(cache_root(config.runtime.cache_dir)), Engine(config.runtime)
    difficulty = pipeline.train_original(config, dataset, engine, store, 0).difficulty
    ranked = np.argsort(difficulty)
    folders = {p.parent.parent.name: p for p in (out / "runs").rglob("forget_set.json")}
    easy, hard = (load_forget_set(folders[f"{m}-25pct-pool50"], dataset).forget_ids
                  for m in ("easy", "hard"))  # fmt: skip
    assert set(easy) <= set(ranked[:32]) and set(hard) <= set(ranked[32:])
    assert difficulty[easy].mean() < difficulty[hard].mean()
    assert {r["forget"] for r in rows} == {"easy-25pct-pool50", "random-25pct", "hard-25pct-pool50"}
    assert "easy / random / hard forget sets of 25%" in (out / "report.md").read_text()
    assert (out / "forget_kinds.png").is_file() and (out / "subgroups.png").is_file()


TIMING = {"rte_min", "eval_s", "speedup", "bank_min", "repeats_min", "relearn_s"}


def _slow_path(monkeypatch, slow: set[str]):
    """Make the inference paths in `slow` take 20 ms more per chunk (their logits unchanged)."""
    from medunlearn import inference

    for name, build in list(inference.PATHS.items()):
        if name in slow:

            def slowed(model, build=build):
                graph = build(model)

                def run(images):
                    time.sleep(0.02)
                    return graph(images)

                return run

            monkeypatch.setitem(inference.PATHS, name, slowed)


@pytest.mark.slow
def test_two_runs_with_different_inference_timings_give_identical_rows(
    make_config, write_npz, tmp_path, monkeypatch
):
    """The inference path is chosen once, never by a timing: the same study on a machine where
    other paths happen to be fast gives the same numbers to the last bit. An earlier version
    timed each model's first chunks (enough of them here: 2,600 training images) and rounded
    differently in the second run: pop_loss_auc 0.49901026 against 0.49901282."""
    root = write_npz("bloodmnist", 2600, 300, 600, folder=tmp_path / "larger")
    methods = [MethodConfig("retrain"), MethodConfig("salun", {"epochs": 1, "batch_size": 64})]
    runs = []
    for name, slow in (("a", {"onednn"}), ("b", {"eager", "folded"})):
        config = make_config(methods, batch_size=64)
        config.data.root = str(root.parent)
        config.runtime.cache_dir = str(tmp_path / f"cache-{name}")
        with monkeypatch.context() as patch:
            _slow_path(patch, slow)
            rows = experiment.run(config, tmp_path / name)
        runs.append([{k: v for k, v in row.items() if k not in TIMING} for row in rows])
    assert runs[0] == runs[1]


def test_a_sharded_study_trains_its_shards_and_sisa_retrains_only_what_held_the_images(
    make_config, tmp_path
):
    """train.shards: the original is the shards' aggregate (its run time theirs), Retrain is
    trained sharded too, and sisa's row says what it retrained (its run time counting only
    that is proven in methods/test_sisa.py, without timing anything)."""
    config = make_config([MethodConfig("sisa")], epochs=2, shards=2, slices=2)
    config = replace(config, forget=[ForgetConfig(mode="random", count=1)])
    rows = {row["method"]: row for row in experiment.run(config, tmp_path / "out")}
    sisa, original = rows["sisa"], rows["original"]
    assert (sisa["shards"], sisa["slices"], sisa["shards_retrained"]) == (2, 2, 1)
    assert 1 <= sisa["slices_retrained"] <= 2 and sisa["shards_expected"] == pytest.approx(1)
    assert 0 < sisa["retrain_share"] <= 0.5 and sisa["exact"] is True
    assert original["rte_min"] > 0 and sisa["rte_min"] > 0
    assert "shards_retrained" not in rows["retrain"] and "exact" not in rows["retrain"]
    store = Store(Path(config.runtime.cache_dir))
    (retrain,) = (store.root / "retrain").glob("*.safetensors")
    dataset = load_dataset(config.data)
    assert isinstance(load_model(retrain, config.model, dataset).model, ShardedModel)


def test_sisa_of_its_own_shards_sits_beside_the_methods_of_a_study_trained_whole(
    make_config, tmp_path
):
    methods = [MethodConfig("ft", {"epochs": 1, "batch_size": 16}),
               MethodConfig("sisa", {"shards": 2, "slices": 2}, label="sisa S=2")]  # fmt: skip
    config = make_config(methods, epochs=2)
    rows = {row["method"]: row for row in experiment.run(config, tmp_path / "out")}
    assert set(rows) == {"original", "retrain", "ft", "sisa S=2"}
    assert rows["sisa S=2"]["shards"] == 2 and rows["sisa S=2"]["ag"] is not None
    assert "shards" not in rows["ft"]
    assert "sisa S=2" in (tmp_path / "out" / "report.md").read_text()


def test_export_of_a_sharded_original_keeps_its_slices_beside_it(make_config, tmp_path, blood):
    config = make_config(epochs=2, shards=2, slices=2)
    path, _ = experiment.export_original(config, tmp_path / "model")
    model = load_model(path, config.model, blood).model
    assert isinstance(model, ShardedModel)
    files = [c.path for shard in model.sharding.checkpoints for c in shard]
    assert len(files) == 4 and all(f.parent == tmp_path / "model" / "model.slices" for f in files)
