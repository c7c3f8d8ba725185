"""Experiments: config -> cached original -> Retrain -> methods -> metrics -> result rows."""

from __future__ import annotations

import copy
import dataclasses
import json
import time
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medunlearn.augment import build_augment
from medunlearn.config import (
    ConfigError,
    ExperimentConfig,
    ForgetConfig,
    MethodConfig,
    dump_config,
    fingerprint,
    to_dict,
)
from medunlearn.data import Dataset, load_dataset
from medunlearn.engine import Engine, usable_cores
from medunlearn.forget import ForgetSet, select_forget
from medunlearn.methods import Context, UnlearnData, unlearn
from medunlearn.methods.base import check_common
from medunlearn.methods.registry import get_method, method_params
from medunlearn.metrics import metrics_before_mia, mia_inputs, predict
from medunlearn.metrics.gap import AG_METRICS, average_gap, speedup
from medunlearn.metrics.mia import MiaInputs
from medunlearn.models import build_model, load_weights, model_meta
from medunlearn.progress import Progress
from medunlearn.report import write_results
from medunlearn.store import (
    Store,
    atomic_write,
    atomic_write_json,
    atomic_write_text,
    cache_root,
    load_checkpoint,
    save_checkpoint,
)
from medunlearn.training import SCHEDULES, train_model

RETRAIN = MethodConfig("retrain")
# most MIA attacks fitted at once (each holds up to libsvm's 200 MB kernel cache)
MIA_WORKERS = 4


@dataclass
class TrainedModel:
    """A model with the metadata its checkpoint carries."""

    model: nn.Module
    meta: dict


def data_key(dataset: Dataset) -> dict:
    """What identifies the data in cache keys: its content hash and task, not its folder."""
    return {"fingerprint": dataset.fingerprint, "name": dataset.name, "size": dataset.size}


def checkpoint_meta(config: ExperimentConfig, dataset: Dataset, seed: int, **extra) -> dict:
    """A checkpoint's metadata: the model to rebuild, the data config, the recipe, the seed."""
    return {
        "model": model_meta(config.model, dataset.channels, dataset.n_classes),
        "data": to_dict(config.data),
        "data_fingerprint": dataset.fingerprint,
        "train": to_dict(config.train),
        "seed": seed,
        **extra,
    }


def load_model(path: Path, config: ExperimentConfig, dataset: Dataset) -> TrainedModel:
    """Rebuild a checkpoint's model, refusing one of another architecture or task."""
    state, meta = load_checkpoint(path)
    model = build_model(config.model, dataset.channels, dataset.n_classes)
    expected = model_meta(config.model, dataset.channels, dataset.n_classes)
    load_weights(model, state, meta.get("model", {}), expected)
    return TrainedModel(model, meta)


def train_original(
    config: ExperimentConfig, dataset: Dataset, engine: Engine, store: Store, seed: int
) -> TrainedModel:
    """The original model on the whole training split, trained once per config and seed."""
    key = fingerprint(data_key(dataset), config.model, config.train, seed)
    path = store.path("original", key)
    if path.is_file():
        engine.progress.log(f"original model (seed {seed}): reusing {path}")
        return load_model(path, config, dataset)
    torch.manual_seed(seed)
    model = build_model(config.model, dataset.channels, dataset.n_classes)
    all_rows = torch.arange(len(dataset.train))
    state_path = store.path("states", f"original-{key}")
    result = train_model(
        model, dataset, all_rows, config.train, engine, seed, state_path, f"original s{seed}"
    )
    meta = checkpoint_meta(
        config, dataset, seed, seconds=result.seconds, best_epoch=result.best_epoch,
        best_val=result.best_val, history=result.history,
    )  # fmt: skip
    save_checkpoint(path, result.model, meta)
    state_path.unlink(missing_ok=True)
    return TrainedModel(result.model, meta)


def run_method(
    method: MethodConfig,
    data: UnlearnData,
    original: TrainedModel,
    context: Context,
) -> tuple[nn.Module, float]:
    """Unlearn with one method from a copy of the original; Retrain results are cached."""
    if method.name != "retrain" or context.store is None:
        result = unlearn(copy.deepcopy(original.model), data, method, context)
        return result.model, result.seconds
    params = method_params("retrain", method.params)
    key = fingerprint(
        original.meta["data_fingerprint"], original.meta["model"], context.train, params,
        data.forget_set.forget_ids.tolist(), context.seed,
    )  # fmt: skip
    path = context.store.path("retrain", key)
    if path.is_file():
        state, meta = load_checkpoint(path)
        model = copy.deepcopy(original.model)
        load_weights(model, state, meta["model"], original.meta["model"])
        context.engine.progress.log(f"retrain: reusing {path}")
        return model, meta["seconds"]
    state_path = context.store.path("states", f"retrain-{key}")
    resumable = dataclasses.replace(context, state_path=state_path)
    result = unlearn(copy.deepcopy(original.model), data, method, resumable)
    save_checkpoint(path, result.model, {**original.meta, "seconds": result.seconds})
    state_path.unlink(missing_ok=True)
    return result.model, result.seconds


def evaluate_row(
    model: nn.Module, dataset: Dataset, forget_set: ForgetSet, engine: Engine, seed: int
) -> tuple[dict, MiaInputs, float]:
    """Every metric of one model but the MIA, the MIA's inputs, and the seconds they took."""
    started = time.perf_counter()
    predictions = predict(model, dataset, engine)
    metrics = metrics_before_mia(predictions, dataset, forget_set)
    inputs = mia_inputs(predictions, dataset, forget_set, seed)
    return metrics, inputs, time.perf_counter() - started


def _timed_efficacy(inputs: MiaInputs) -> tuple[float, float]:
    """MIA-efficacy and the seconds its attack took."""
    started = time.perf_counter()
    return inputs.efficacy(), time.perf_counter() - started


def evaluate_model(
    model: nn.Module, dataset: Dataset, forget_set: ForgetSet, engine: Engine, seed: int
) -> tuple[dict, float]:
    """All metrics of one model from one inference pass, and the seconds it took."""
    metrics, inputs, seconds = evaluate_row(model, dataset, forget_set, engine, seed)
    metrics["mia"], attack_seconds = _timed_efficacy(inputs)
    return metrics, seconds + attack_seconds


def _mia_path(path: Path) -> Path:
    """Where a row whose MIA is pending keeps the attack's inputs: beside the row's JSON."""
    return path.with_suffix(".mia.npz")


def _save_mia_inputs(path: Path, inputs: MiaInputs) -> None:
    """Write a pending row's attack inputs (one npz array per field), atomically."""

    def write(tmp: Path) -> None:
        with tmp.open("wb") as handle:
            np.savez(handle, **dataclasses.asdict(inputs))

    atomic_write(path, write)


def _load_mia_inputs(path: Path) -> MiaInputs:
    """Read back the attack inputs `_save_mia_inputs` wrote."""
    with np.load(path, allow_pickle=False) as saved:
        fields = {field.name: saved[field.name] for field in dataclasses.fields(MiaInputs)}
    return MiaInputs(**{**fields, "seed": int(fields["seed"])})


def attacks_in_background(engine: Engine) -> bool:
    """Whether attacks may run while methods train: yes when the device is not the CPU."""
    return engine.device.type != "cpu"


class PendingAttacks:
    """The MIA attacks of a forget set's rows, fitted in threads (libsvm releases the GIL).

    On a CPU they wait for `finish`, after the forget set's trainings: an SVC beside a training
    would take a core from it and inflate its RTE; together they run 1.8-1.9x faster on 2
    cores. When a GPU trains, the CPU is free, so each attack starts as soon as its row is
    written and fits while the next method trains. Each row is written as its attack ends;
    leaving the block (a failure, a stop) cancels the attacks not started.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.background = attacks_in_background(engine)
        workers = min(torch.get_num_threads(), usable_cores(), MIA_WORKERS)
        self.pool = ThreadPoolExecutor(workers)
        self.waiting: list[tuple[Path, dict]] = []
        self.futures: list[Future] = []

    def __enter__(self) -> PendingAttacks:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.pool.shutdown(cancel_futures=True)

    def add(self, path: Path, row: dict) -> None:
        """A row written with its MIA pending: attack it now (GPU) or at `finish` (CPU)."""
        self.waiting.append((path, row))
        if self.background:
            for future in self.futures:  # an attack that already failed stops the run now
                if future.done() and future.exception():
                    raise future.exception()
            self._start()

    def _start(self) -> None:
        for path, row in self.waiting:
            self.futures.append(self.pool.submit(_attack_row, path, row))
        self.waiting.clear()

    def finish(self) -> None:
        """Run the attacks still waiting and return once every row is written."""
        self._start()
        with self.engine.progress.task("membership inference", len(self.futures)) as task:
            for future in as_completed(self.futures):
                future.result()
                task.advance()


def _attack_row(path: Path, row: dict) -> None:
    """Fit a pending row's attack on its saved inputs and write the row whole."""
    mia, seconds = _timed_efficacy(_load_mia_inputs(_mia_path(path)))
    row["mia"] = mia
    row["eval_s"] += seconds
    saved = {**json.loads(path.read_text()), "row": row}
    del saved["mia_pending"]
    atomic_write_json(path, saved)
    _mia_path(path).unlink(missing_ok=True)


def _run_row(
    method: MethodConfig,
    data: UnlearnData,
    original: TrainedModel,
    context: Context,
    path: Path,
    run_key: str,
) -> dict:
    """One method's metrics row, read back from its JSON when this exact run already finished.

    A new row is written with its MIA pending ("mia": None, the attack's inputs saved beside
    it) for `PendingAttacks`, so an interruption before the attacks loses no training.
    """
    if path.is_file():
        saved = json.loads(path.read_text())
        pending = saved.get("mia_pending", False)
        if not pending:  # inputs left by a stop between finishing the row and deleting them
            _mia_path(path).unlink(missing_ok=True)
        if saved.get("run_key") == run_key and (not pending or _mia_path(path).is_file()):
            context.engine.progress.log(f"{method.display_name}: done earlier, {path}")
            return saved["row"]
    context.name = f"{method.display_name} s{context.seed}"
    if method.name == "original":
        model, seconds = original.model, original.meta.get("seconds", 0.0)
    else:
        model, seconds = run_method(method, data, original, context)
    metrics, inputs, eval_seconds = evaluate_row(
        model, data.dataset, data.forget_set, context.engine, context.seed
    )
    row = {
        "method": method.display_name,
        "aug": context.train.augment if context.train else "",
        "forget": data.forget_set.spec.get("label") or "",
        "seed": context.seed,
        **metrics,
        "rte_min": seconds / 60,
        "eval_s": eval_seconds,
    }
    _save_mia_inputs(_mia_path(path), inputs)
    saved = {"run_key": run_key, "params": method.params, "row": row, "mia_pending": True}
    atomic_write_json(path, saved)
    return row


def add_gaps(rows: list[dict]) -> None:
    """AG and speed-up of every row against the Retrain row of its forget set and seed."""
    retrain = {(r["aug"], r["forget"], r["seed"]): r for r in rows if r["method"] == "retrain"}
    for row in rows:
        reference = retrain.get((row["aug"], row["forget"], row["seed"]))
        if reference is None:
            row["ag"], row["speedup"] = None, None
            continue
        row["ag"] = average_gap(row, reference, AG_METRICS)
        row["speedup"] = speedup(reference["rte_min"], row["rte_min"])


def method_list(config: ExperimentConfig) -> list[MethodConfig]:
    """The original model's row, Retrain (always: it is the reference) and the methods."""
    methods = [m for m in config.methods if m.name != "retrain"]
    retrain = next((m for m in config.methods if m.name == "retrain"), RETRAIN)
    return [MethodConfig("original"), retrain, *methods]


def run_forget_set(
    config: ExperimentConfig,
    forget_config: ForgetConfig,
    dataset: Dataset,
    original: TrainedModel,
    context: Context,
    out: Path,
) -> list[dict]:
    """Rows of every method for one forget spec and seed; saves the forget set beside them.

    The rows' attacks (MIA) are fitted by `PendingAttacks`.
    """
    seed = context.seed
    forget_set = select_forget(dataset, forget_config, seed)
    forget_set.spec["label"] = forget_config.label
    folder = out / "runs" / config.train.augment / forget_config.label / f"seed{seed}"
    forget_set.save(folder / "forget_set.json")
    data = UnlearnData(dataset, forget_set, original.model)
    rows = []
    with PendingAttacks(context.engine) as attacks:
        for method in method_list(config):
            run_key = fingerprint(
                data_key(dataset), config.model, config.train, config.runtime.bf16,
                forget_set.forget_ids.tolist(), method, seed,
            )  # fmt: skip
            path = folder / f"{method.display_name}.json"
            rows.append(_run_row(method, data, original, context, path, run_key))
            if rows[-1]["mia"] is None:
                attacks.add(path, rows[-1])
        attacks.finish()
    return rows


def with_augment(config: ExperimentConfig, mode: str) -> ExperimentConfig:
    """The config with one augmentation mode in every phase: original, Retrain, every method."""
    methods = [dataclasses.replace(m, params={**m.params, "augment": mode}) for m in config.methods]
    train = dataclasses.replace(config.train, augment=mode)
    return dataclasses.replace(config, train=train, methods=methods, augmentations=[])


def scenarios(config: ExperimentConfig) -> list[ExperimentConfig]:
    """One config per mode of an augmentation study, else the config itself."""
    return [with_augment(config, mode) for mode in config.augmentations] or [config]


def validate(config: ExperimentConfig, dataset: Dataset) -> None:
    """Check every method, augmentation, model and forget spec before anything is written."""
    check_common(config.train.epochs, config.train.lr, config.train.augment)
    for mode in config.augmentations:
        build_augment(mode)
    if config.train.schedule not in SCHEDULES:
        raise ConfigError(
            f"unknown train.schedule '{config.train.schedule}'; choose one of {SCHEDULES}"
        )
    build_model(config.model, dataset.channels, dataset.n_classes)
    names = [method.display_name for method in method_list(config)]
    if repeated := sorted({name for name in names if names.count(name) > 1}):
        raise ConfigError(
            f"more than one method is named {repeated}: give each a distinct 'label' "
            "(a method's row and files are named by it)"
        )
    for method in config.methods:
        method_params(method.name, method.params)
        get_method(method.name).check_data(dataset)
    if not config.seeds:
        raise ConfigError("seeds is empty: give at least one seed, e.g. [0]")
    for forget_config in config.forget:
        select_forget(dataset, forget_config, config.seeds[0])


def run(config: ExperimentConfig, out: str | Path, progress: Progress | None = None) -> list[dict]:
    """Run a whole experiment into folder `out`: config.yaml, per-run JSON, results.csv, report.md.

    Finished runs are skipped when the command is repeated, so an interrupted run resumes.
    """
    out = Path(out)
    engine = Engine(config.runtime, progress)
    dataset = load_dataset(config.data)
    validate(config, dataset)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump_config(config))
    store = Store(cache_root(config.runtime.cache_dir))
    engine.progress.log(f"data: {dataset.describe()}")
    rows: list[dict] = []
    for scenario in scenarios(config):
        for seed in scenario.seeds:
            original = train_original(scenario, dataset, engine, store, seed)
            for forget_config in scenario.forget:
                context = Context(engine, seed, scenario.train, scenario.model, store)
                rows += run_forget_set(scenario, forget_config, dataset, original, context, out)
    add_gaps(rows)
    write_results(out, rows, config)
    return rows


def export_original(
    config: ExperimentConfig, out: str | Path, seed: int = 0, progress: Progress | None = None
) -> tuple[Path, dict]:
    """Train (or reuse) the original model of a config and copy it to `out/model.pt`."""
    out = Path(out)
    engine = Engine(config.runtime, progress)
    dataset = load_dataset(config.data)
    build_augment(config.train.augment)
    original = train_original(
        config, dataset, engine, Store(cache_root(config.runtime.cache_dir)), seed
    )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump_config(config))
    path = out / "model.pt"
    save_checkpoint(path, original.model, original.meta)
    return path, original.meta
