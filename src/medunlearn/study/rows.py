"""The rows of one forget set and seed: what its jobs share, each method's row (cached, written
with its deferred attacks pending), RMIA's `a`, and the pending attacks fitted in threads."""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path

import torch

from medunlearn.checkpoints import TrainedModel, weights_key
from medunlearn.config import ExperimentConfig, ForgetConfig, MethodConfig
from medunlearn.engine import Engine, usable_cores
from medunlearn.forget import select_forget
from medunlearn.methods import Context, UnlearnData
from medunlearn.methods.registry import get_method, original_recipe
from medunlearn.metrics.accuracy import accuracy
from medunlearn.metrics.attacks.rmia import tuned_a
from medunlearn.metrics.evaluate import Request, evaluate, finish
from medunlearn.metrics.evidence import Reference, Relearning, reference
from medunlearn.roles import METHOD, ORIGINAL, REFERENCES, RETRAIN, retrain_of, role_of
from medunlearn.seeds import Seeds
from medunlearn.sharding import DELETION_COLUMNS, ShardedModel, deletion_columns
from medunlearn.store import atomic_write_json, cache_key, load_arrays, save_arrays
from medunlearn.study.bank import (
    BankModel,
    minutes,
    reference_model,
    repeated_run,
    repeats_of,
)
from medunlearn.study.pipeline import row_key, run_method, train_original
from medunlearn.study.setup import Session

# most deferred attacks fitted at once (each SVC holds up to libsvm's 200 MB kernel cache)
ATTACK_WORKERS = 4


@dataclass
class ForgetRun:
    """One forget set of one seed: what all its jobs share."""

    config: ExperimentConfig
    data: UnlearnData
    original: TrainedModel
    context: Context
    seeds: Seeds
    folder: Path

    @property
    def engine(self) -> Engine:
        """The engine every job of the forget set runs on."""
        return self.context.engine

    def row_path(self, method: MethodConfig) -> Path:
        """Where a method's row is kept."""
        return self.folder / f"{method.display_name}.json"

    def model_key(self, method: MethodConfig) -> str:
        """The key of a row's model (see `pipeline.row_key`); it names the original's origin
        where the original is not the config's own (a deployment's current model)."""
        key = row_key(self.config, self.data.dataset, self.seeds, self.data.forget_set, method)
        origin = self.original.meta.get("origin")
        return (
            key
            if origin is None or role_of(method) == RETRAIN
            else cache_key("origin", key, origin)
        )

    def run_key(self, method: MethodConfig) -> str:
        """What a finished row must match to be reused: its model, the evaluation settings and
        the inference path its numbers came from."""
        evaluation, path = self.config.evaluation, self.engine.inference_path
        return cache_key("row", self.model_key(method), evaluation, path)

    def bank(self) -> list[BankModel]:
        """The K = `evaluation.bank` reference Retrains (each a job of its own; read here)."""
        return [
            reference_model(self.config, self.data, self.original, self.context, self.seeds, i)
            for i in range(self.config.evaluation.bank)
        ]

    def reference(self) -> Reference | None:
        """The bank's scores as the attacks read them (None without a bank)."""
        bank = self.bank()
        return reference([m.scores for m in bank], self.data.forget_index) if bank else None

    def original_for(self, method: MethodConfig) -> TrainedModel:
        """The original a method unlearns from: the study's, or one trained with the method's own
        recipe (SISA's shards and slices; its jobs trained it, so it is read from the cache)."""
        recipe = original_recipe(self.config.train, method)
        if recipe == self.config.train:
            return self.original
        store = self.context.store
        assert store is not None, "a study runs with the model cache"
        config = dataclasses.replace(self.config, train=recipe)
        return train_original(config, self.data.dataset, self.engine, store, self.seeds.train)

    def repeats(self, method: MethodConfig) -> list[BankModel]:
        """The method's N = `evaluation.repeats` runs with their own seeds (each a job)."""
        original = self.original_for(method)
        return [
            repeated_run(self.config, method, self.data, original, self.context, self.seeds, i)
            for i in range(self.config.evaluation.repeats)
        ]

    def rmia_a(self) -> float | None:
        """Offline RMIA's `a`: the config's, else tuned on the original model against the bank
        once (its own job) and cached; None without a bank."""
        if not self.config.evaluation.bank:
            return None
        if self.config.evaluation.rmia_a is not None:
            return self.config.evaluation.rmia_a
        store = self.context.store
        assert store is not None, "a study runs with the model cache"
        original = weights_key("original", self.config, self.data.dataset, self.seeds.train)
        bank = [self.seeds.bank(i) for i in range(self.config.evaluation.bank)]
        key = cache_key("rmia-a", original, self.model_key(retrain_of(self.config)), bank,
                        self.engine.inference_path)  # fmt: skip
        path = store.path("rmia-a", key, ".json")
        if path.is_file():
            return json.loads(path.read_text())["a"]
        request = Request(self.seeds.attack, names=(), keep=("train", "test", "val"))
        scored = evaluate(self.original.model, self.data.dataset, self.data.forget_set,
                          self.engine, request)  # fmt: skip
        a = tuned_a(scored.evidence.model_scores(), self.reference(), self.data.forget_index)
        atomic_write_json(path, {"a": a})
        return a

    def relearning(self) -> Relearning | None:
        """How rows relearn the forget set, where `evaluation.relearn` asks: the target is the
        original model's accuracy on it."""
        evaluation = self.config.evaluation
        if not evaluation.relearn:
            return None
        split, rows = self.data.dataset.train, self.data.forget_index
        logits = self.engine.logits(self.original.model, split.images[rows], "relearn target")
        target = accuracy(logits, split.labels[rows])
        return Relearning(self.config.train, target, self.engine, self.seeds.attack,
                          evaluation.relearn_epochs, evaluation.relearn_tolerance)  # fmt: skip


def forget_run(
    config: ExperimentConfig, forget_config: ForgetConfig, session: Session, seed: int, out: Path
) -> ForgetRun:
    """What the jobs of one forget spec and seed share; saves the forget set in their folder."""
    seeds = Seeds(seed)
    engine, dataset, store = session.engine, session.dataset, session.store
    original = train_original(config, dataset, engine, store, seeds.train)
    forget_set = select_forget(dataset, forget_config, seeds.forget, original.difficulty)
    label = forget_set.spec["label"] = forget_config.display_name
    folder = out / "runs" / config.train.augment / label / f"seed{seeds.seed}"
    forget_set.save(folder / "forget_set.json")
    context = Context(engine, seed, config.train, config.model, store)
    return ForgetRun(config, UnlearnData(dataset, forget_set), original, context, seeds, folder)


@dataclass
class SavedRow:
    """A method's row, and its deferred attacks still pending: name -> their inputs' file."""

    row: dict
    pending: dict[str, Path]


def _inputs_path(path: Path, name: str) -> Path:
    """Where a row keeps a pending attack's inputs: beside its JSON, `<method>.<attack>.npz`."""
    return path.with_name(f"{path.stem}.{name}.npz")


def saved_row(path: Path, key: str) -> SavedRow | None:
    """A row done earlier by this exact run, if any (a pending attack's inputs must be there)."""
    if not path.is_file():
        return None
    saved = json.loads(path.read_text())
    pending = {name: _inputs_path(path, name) for name in saved.get("pending", [])}
    for stray in path.parent.glob(f"{path.stem}.*.npz"):  # left by a stop after completion
        if stray not in pending.values():
            stray.unlink(missing_ok=True)
    if saved.get("run_key") != key or not all(p.is_file() for p in pending.values()):
        return None
    return SavedRow(saved["row"], pending)


def run_row(run: ForgetRun, method: MethodConfig) -> SavedRow:
    """One method's row, read back when this exact run already finished it; else its model is
    trained (or read) and evaluated, and the row written with its deferred attacks pending (their
    inputs saved beside it), so that an interruption before the attacks loses no training."""
    path, key = run.row_path(method), run.run_key(method)
    if (saved := saved_row(path, key)) is not None:
        run.engine.progress.log(f"{method.display_name}: done earlier, {path}")
        return saved
    role, seeds, data = role_of(method), run.seeds, run.data
    context = dataclasses.replace(
        run.context,
        name=f"{method.display_name} s{seeds.seed}",
        seed=seeds.retrain if role == RETRAIN else seeds.unlearn,
    )
    if role == ORIGINAL:
        model, seconds = run.original.model, run.original.meta.get("seconds", 0.0)
    else:
        original = run.original_for(method)
        model, seconds = run_method(method, data, original, context, run.model_key(method))
    evaluation = run.config.evaluation
    bank = run.bank()
    repeats = run.repeats(method) if role == METHOD and evaluation.repeats else []
    request = Request(
        seeds.attack,
        evaluation=evaluation,
        reference=run.reference(),
        rmia_a=run.rmia_a(),
        repeats=repeats_of(repeats, bank[: len(repeats)], data.forget_index) if repeats else None,
        relearning=run.relearning(),
        intervals=role in REFERENCES,
        defer=True,
    )
    result = evaluate(model, data.dataset, data.forget_set, run.engine, request)
    forget_set = data.forget_set
    row = {
        "method": method.display_name,
        "role": role,
        "aug": context.train.augment if context.train else "",
        "forget": forget_set.spec.get("label") or "",
        "seed": seeds.seed,
        **seeds.record(),
        **result.columns,
        **_bank_columns(bank),
        **_repeat_columns(repeats, request),
        **_deletion_columns(model, data),
        **({"exact": True} if role == METHOD and get_method(method.name).exact else {}),
        "rte_min": seconds / 60,
        "eval_s": result.seconds,
        "forget_key": forget_set.key,
        "inference_path": run.engine.inference_path,
        "curves": result.curves,
        "histograms": result.histograms,
    }
    for name, inputs in result.pending.items():
        save_arrays(_inputs_path(path, name), inputs)
    atomic_write_json(path, {"run_key": key, "params": method.params, "row": row,
                             "pending": list(result.pending)})  # fmt: skip
    return SavedRow(row, {name: _inputs_path(path, name) for name in result.pending})


def _bank_columns(bank: list[BankModel]) -> dict:
    """Which bank the row's attacks used, and what it cost (nothing without a bank)."""
    if not bank:
        return {}
    return {"bank_n": len(bank), "bank_seeds": [m.seed for m in bank], "bank_min": minutes(bank)}


def _deletion_columns(model: torch.nn.Module, data: UnlearnData) -> dict:
    """What an exact deletion retrained against what a random one of its size is expected to
    (the `DELETION_COLUMNS`, for SISA's rows); nothing for any other row."""
    if not isinstance(model, ShardedModel):
        return {}
    columns = deletion_columns(model, data.forget_set.forget_ids)
    assert set(columns) <= set(DELETION_COLUMNS), sorted(set(columns) - set(DELETION_COLUMNS))
    return columns


def _repeat_columns(repeats: list[BankModel], request: Request) -> dict:
    """What the repeats cost and how many diverged (nothing without repeats)."""
    if not repeats:
        return {}
    assert request.repeats is not None
    return {"repeats_min": minutes(repeats), "repeats_diverged": request.repeats.diverged}


# what a finished attack hands its columns to, with the seconds it took
AttackDone = Callable[[dict, float], None]


def complete(path: Path, saved: SavedRow, name: str) -> AttackDone:
    """What writes a row's attack result into the row and its JSON, once it has run."""

    def done(columns: dict, seconds: float) -> None:
        saved.row.update(columns)
        saved.row["eval_s"] += seconds
        saved.pending.pop(name)
        stored = {**json.loads(path.read_text()), "row": saved.row, "pending": list(saved.pending)}
        atomic_write_json(path, stored)

    return done


def attacks_in_background(engine: Engine) -> bool:
    """Whether attacks may run while methods train: yes when the device is not the CPU."""
    return engine.device.type != "cpu"


class PendingAttacks:
    """Deferred attacks on saved inputs, fitted in threads (libsvm releases the GIL).

    On a CPU they wait for `finish`, after the trainings: an SVC beside a training would take a
    core from it and inflate its RTE; together they run 1.8-1.9x faster on 2 cores. When a GPU
    trains, the CPU is free, so each attack starts as soon as it is added and fits while the
    next method trains. Each result goes to its `done` callback (one at a time), then the
    inputs are removed; leaving the block (a failure, a stop) cancels the attacks not started.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.background = attacks_in_background(engine)
        workers = min(torch.get_num_threads(), usable_cores(), ATTACK_WORKERS)
        self.pool = ThreadPoolExecutor(workers)
        self.lock = threading.Lock()
        self.waiting: list[tuple[Path, str, AttackDone]] = []
        self.futures: list[Future] = []

    def __enter__(self) -> PendingAttacks:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.pool.shutdown(cancel_futures=True)

    def add(self, inputs_path: Path, name: str, done: AttackDone) -> None:
        """Attack `name` on the inputs saved at `inputs_path`: started now (GPU) or at `finish`."""
        self.waiting.append((inputs_path, name, done))
        if self.background:
            for future in self.futures:  # an attack that already failed stops the run now
                if future.done() and future.exception():
                    raise future.exception()
            self._start()

    def _start(self) -> None:
        for inputs_path, name, done in self.waiting:
            self.futures.append(self.pool.submit(self._attack, inputs_path, name, done))
        self.waiting.clear()

    def _attack(self, inputs_path: Path, name: str, done: AttackDone) -> None:
        """Fit one attack on its saved inputs, hand over the result, then remove the inputs."""
        started = time.perf_counter()
        columns = finish(name, load_arrays(inputs_path))
        with self.lock:
            done(columns, time.perf_counter() - started)
        inputs_path.unlink(missing_ok=True)

    def finish(self) -> None:
        """Run the attacks still waiting and return once every result is handed over."""
        self._start()
        with self.engine.progress.task("membership inference", len(self.futures)) as task:
            for future in as_completed(self.futures):
                future.result()
                task.advance()


def finish_rows(run: ForgetRun, methods: list[MethodConfig]) -> list[dict]:
    """Every method's row of one forget set, its pending attacks fitted together (after the
    trainings, on a CPU)."""
    saved = [run_row(run, method) for method in methods]
    with PendingAttacks(run.engine) as attacks:
        for method, entry in zip(methods, saved, strict=True):
            for name, inputs in list(entry.pending.items()):
                attacks.add(inputs, name, complete(run.row_path(method), entry, name))
        attacks.finish()
    return [entry.row for entry in saved]
