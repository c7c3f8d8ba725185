"""The sequential-requests study (`medunlearn sequential`): how many deletion requests a model
survives when each is served approximately on the output of the one before.

Every method starts from the config's original model. Request k forgets its patients' training
images (from a patient map, closed over exact duplicates) from the method's model after request
k-1, with a forget set whose `excluded` holds every earlier request's ids, so no forgotten
image is trained on again. Each step's model is cached under a key that chains the previous
step's, and each row is saved as it lands: a stopped study resumes without redoing a step. An
exact Retrain (the training set minus everything forgotten so far) is trained at every
`exact_every`-th request, once, whatever the methods (its key is the forget set's content).
Each model is evaluated once by the one evaluator: test accuracy, the miss rate, and on the
images of every request so far their accuracy and the class-matched phi attack AUC with its
bootstrap interval; `analyses.sequential` reads the drift, reversal and k* off the rows.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from medunlearn.analyses.sequential import annotated
from medunlearn.checkpoints import TrainedModel, load_model, weights_key
from medunlearn.config import ConfigError, ExperimentConfig, MethodConfig, dump_config
from medunlearn.data import Dataset
from medunlearn.deletion.requests import (
    RequestError,
    check_classes_remain,
    close_request,
    patients_to_ids,
    read_patient_map,
    synthetic_patient_map,
    write_patient_map,
)
from medunlearn.forget import ForgetSet
from medunlearn.methods import Context, UnlearnData
from medunlearn.metrics.evaluate import Evaluation, Request, evaluate, evaluate_logits, is_binary
from medunlearn.progress import Progress
from medunlearn.report.write import results_csv, write_results
from medunlearn.roles import ORIGINAL, ORIGINAL_METHOD, RETRAIN, retrain_of, role_of
from medunlearn.seeds import Seeds, derived_seed
from medunlearn.store import atomic_write_json, atomic_write_text, cache_key, save_checkpoint
from medunlearn.study.pipeline import note_influence, row_key, run_method, train_original
from medunlearn.study.setup import Session, open_session
from medunlearn.study.validate import validate

# what each model is evaluated on: the accuracies, and the class-matched phi attack
METRICS = ("accuracy", "pop_phi_matched")
# on a binary task the clinical metrics too (the positive class's FNR)
BINARY_METRICS = ("clinical",)


def label(step: int) -> str:
    """A request's name in rows, tables and folders."""
    return f"request-{step}"


@dataclass(frozen=True)
class SequentialRequest:
    """Request `step` of the study: its patients, the training ids it forgets (theirs closed
    over exact duplicates, less any forgotten earlier), and every id forgotten before it."""

    step: int
    patients: list[str]
    ids: np.ndarray
    earlier: np.ndarray
    n_named: int = 0
    n_duplicates: int = 0
    test_duplicates: int = 0

    def forget_set(self, dataset: Dataset) -> ForgetSet:
        """The request's forget set: its ids, every earlier request's excluded."""
        return ForgetSet(self.ids, len(dataset.train), dataset.name, dataset.fingerprint,
                         {"mode": "request", "label": label(self.step)}, self.step,
                         self.earlier)  # fmt: skip

    def summary(self) -> dict:
        """What requests.json records of it."""
        return {"request": self.step, "patients": self.patients, "ids": self.ids.tolist(),
                "n_images": int(self.ids.size), "n_named": self.n_named,
                "n_duplicates": self.n_duplicates, "test_duplicates": self.test_duplicates}  # fmt: skip


def patient_map(config: ExperimentConfig, dataset: Dataset) -> dict[str, np.ndarray]:
    """The study's patient map: the config's CSV, else the seeded synthetic one."""
    settings = config.sequential
    n_train = len(dataset.train)
    if settings.patient_map is not None:
        return read_patient_map(settings.patient_map, n_train)
    return synthetic_patient_map(n_train, settings.seed,
                                 (settings.min_images, settings.max_images))  # fmt: skip


def draw_requests(
    config: ExperimentConfig, dataset: Dataset, mapping: dict[str, np.ndarray]
) -> list[SequentialRequest]:
    """The study's requests: `patients` random patients each, none requested twice (seeded by
    `sequential.seed`), each closed over exact duplicates in the training split."""
    settings, deletion = config.sequential, config.deletion
    wanted = settings.requests * settings.patients
    if wanted > len(mapping):
        raise RequestError(
            f"{settings.requests} requests of {settings.patients} patients need {wanted} "
            f"patients; the map has {len(mapping)}: ask for fewer requests or patients"
        )
    rng = np.random.default_rng(derived_seed(settings.seed, "sequential-requests"))
    order = [str(p) for p in rng.permutation(sorted(mapping))[:wanted]]
    forgotten = np.zeros(0, dtype=np.int64)
    requests = []
    for step in range(1, settings.requests + 1):
        patients = order[(step - 1) * settings.patients : step * settings.patients]
        named = patients_to_ids(patients, mapping)
        closure = close_request(dataset, named, deletion.phash_distance,
                                deletion.forget_neighbours)  # fmt: skip
        new = np.setdiff1d(closure.ids, forgotten)
        if not new.size:
            raise RequestError(f"request {step}: every image was forgotten by an earlier one")
        check_classes_remain(dataset, np.union1d(forgotten, new))
        requests.append(SequentialRequest(
            step, patients, new, forgotten, int(closure.named.size),
            int(closure.duplicates.size), int(closure.test_duplicates.size)))  # fmt: skip
        forgotten = np.union1d(forgotten, new)
    return requests


def check_study(config: ExperimentConfig, dataset: Dataset) -> list[MethodConfig]:
    """The config's approximate methods, checked (a study of one seed, with a method)."""
    validate(config, dataset)
    if len(config.seeds) != 1:
        raise ConfigError(
            f"the sequential study runs one seed; got seeds {config.seeds}: run it once per "
            "seed (--set 'seeds=[1]') into its own folder"
        )
    methods = [m for m in config.methods if role_of(m) != RETRAIN]
    if not methods:
        raise ConfigError("the sequential study needs at least one unlearning method in methods")
    return methods


@dataclass
class SequentialStudy:
    """One sequential study: its session, the original model, the requests and the folder."""

    config: ExperimentConfig
    session: Session
    original: TrainedModel
    requests: list[SequentialRequest]
    out: Path
    latest: dict[str, tuple[int, TrainedModel]] = field(default_factory=dict)

    @property
    def seeds(self) -> Seeds:
        """The seeds of the study's one experiment seed."""
        return Seeds(self.config.seeds[0])

    @property
    def dataset(self) -> Dataset:
        """The study's data."""
        return self.session.dataset

    def data(self, step: int) -> UnlearnData:
        """The data of request `step`."""
        return UnlearnData(self.dataset, self.requests[step - 1].forget_set(self.dataset))

    def context(self, name: str, seed: int) -> Context:
        """What a method's run at one request uses."""
        config, session = self.config, self.session
        return Context(session.engine, seed, config.train, config.model, session.store,
                       name=name)  # fmt: skip

    def keys(self, method: MethodConfig) -> list[str]:
        """The key of a method's model after each request (index 0: the original): each chains
        the key before it with the request's forget set and the method, so a model is reused
        only after the very same sequence of requests."""
        config, dataset, seeds = self.config, self.dataset, self.seeds
        keys = [weights_key("original", config, dataset, seeds.train)]
        for step in range(1, len(self.requests) + 1):
            forget_set = self.requests[step - 1].forget_set(dataset)
            keys.append(cache_key("sequential", keys[-1],
                                  row_key(config, dataset, seeds, forget_set, method)))  # fmt: skip
        return keys

    def model(self, method: MethodConfig, step: int) -> TrainedModel:
        """A method's model after request `step` (0: the original), read from the cache or
        unlearned from its model after request `step` - 1, then cached."""
        if step == 0:
            return self.original
        name = method.display_name
        if name in self.latest and self.latest[name][0] == step:
            return self.latest[name][1]
        key = self.keys(method)[step]
        store = self.session.store
        path = store.path("sequential", key)
        if path.is_file():
            trained = load_model(path, self.config.model, self.dataset)
        else:
            previous = self.model(method, step - 1)
            data = self.data(step)
            context = self.context(f"{name} {label(step)}", self.seeds.unlearn)
            model, seconds = run_method(method, data, previous, context, key)
            meta = {**self.original.meta, "seconds": seconds, "unlearned": method.name,
                    "requests": step}  # fmt: skip
            save_checkpoint(path, model, meta)
            note_influence(store, path, data, method)
            trained = TrainedModel(model, meta)
        self.latest[name] = (step, trained)
        return trained

    def retrain(self, step: int) -> tuple[torch.nn.Module, float]:
        """The exact Retrain at request `step`: the training set minus every image forgotten
        so far, cached by the forget set's content (shared by every method's view of it)."""
        method = retrain_of(self.config)
        data = self.data(step)
        key = row_key(self.config, self.dataset, self.seeds, data.forget_set, method)
        context = self.context(f"retrain {label(step)}", self.seeds.retrain)
        return run_method(method, data, self.original, context, key)

    def request(self) -> Request:
        """The evaluation request of every model (the attack's interval included)."""
        names = METRICS + (BINARY_METRICS if is_binary(self.dataset) else ())
        return Request(self.seeds.attack, names=names, intervals=True)

    def measure(self, model: torch.nn.Module, step: int, upto: int) -> tuple[Evaluation, list]:
        """A model's evaluation on request `step`'s forget set, and its accuracy and attack
        entry on the images of each request 1..`upto` (one inference pass)."""
        dataset, engine, request = self.dataset, self.session.engine, self.request()
        current = self.requests[max(step, 1) - 1]
        result = evaluate(model, dataset, current.forget_set(dataset), engine, request)
        logits = result.evidence.logits if result.evidence is not None else {}
        sets = []
        for entry in self.requests[:upto]:
            forget_set = current.forget_set(dataset) if entry is current else ForgetSet(
                entry.ids, len(dataset.train), dataset.name, dataset.fingerprint)  # fmt: skip
            columns = (result if entry is current else evaluate_logits(
                logits, dataset, forget_set, request)).columns  # fmt: skip
            sets.append({"request": entry.step, "acc": 100.0 - columns["ua"],
                         "auc": columns["pop_phi_matched_auc"],
                         "auc_low": columns.get("pop_phi_matched_auc_low"),
                         "auc_high": columns.get("pop_phi_matched_auc_high")})  # fmt: skip
        return result, sets

    def row_key(self, method: MethodConfig, step: int, model_key: str) -> str:
        """What a saved row must match to be reused: its model, the evaluation, the sets."""
        sets = [r.forget_set(self.dataset).key for r in self.requests]
        return cache_key("sequential-row", model_key, step, self.request(), sets,
                         self.session.engine.inference_path)  # fmt: skip

    def row(self, method: MethodConfig, step: int) -> dict:
        """A method's (or the original's, or the exact Retrain's) row at request `step`,
        read back when saved by this very study."""
        role = role_of(method)
        if role == ORIGINAL:
            model_key = self.keys(method)[0]
        elif role == RETRAIN:
            forget_set = self.requests[step - 1].forget_set(self.dataset)
            model_key = row_key(self.config, self.dataset, self.seeds, forget_set, method)
        else:
            model_key = self.keys(method)[step]
        path = self.out / "runs" / label(step) / f"{method.display_name}.json"
        key = self.row_key(method, step, model_key)
        if path.is_file() and (saved := json.loads(path.read_text())).get("run_key") == key:
            self.session.engine.progress.log(f"{method.display_name} {label(step)}: done earlier")
            return saved["row"]
        if role == ORIGINAL:
            model, seconds = self.original.model, self.original.meta.get("seconds", 0.0)
        elif role == RETRAIN:
            model, seconds = self.retrain(step)
        else:
            trained = self.model(method, step)
            model, seconds = trained.model, trained.meta["seconds"]
        upto = len(self.requests) if role == ORIGINAL else step
        result, sets = self.measure(model, step, upto)
        row = self.row_of(method, step, result, sets, seconds)
        atomic_write_json(path, {"run_key": key, "params": method.params, "row": row})
        return row

    def row_of(
        self, method: MethodConfig, step: int, result: Evaluation, sets: list, seconds: float
    ) -> dict:
        """A row's columns: identity, the request and the debt, the evaluator's columns, the
        miss rate, the sets' entries, the cost."""
        role = role_of(method)
        before = self.requests[:step]
        forgotten = int(sum(r.ids.size for r in before))
        request = self.requests[step - 1] if step else None
        columns = {k: v for k, v in result.columns.items() if role != ORIGINAL or
                   not k.startswith(("ua", "pop_phi_matched"))}  # fmt: skip
        kind, miss = miss_rate(result.columns, self.dataset)
        return {
            "method": method.display_name, "role": role, "aug": self.config.train.augment,
            "forget": label(step), "seed": self.seeds.seed, "step": step,
            **self.seeds.record(),
            "n_patients": len(request.patients) if request else 0,
            "n_images": int(request.ids.size) if request else 0,
            "n_duplicates": request.n_duplicates if request else 0,
            "test_duplicates": request.test_duplicates if request else 0,
            "forgotten": forgotten,
            "debt_images": forgotten if role not in (ORIGINAL, RETRAIN) else 0,
            **columns, "miss_rate": miss, "miss_rate_kind": kind,
            "rte_min": seconds / 60, "eval_s": result.seconds,
            "forget_key": request.forget_set(self.dataset).key if request else "",
            "inference_path": self.session.engine.inference_path, "sets": sets,
        }  # fmt: skip

    def plan(self, methods: Sequence[MethodConfig]) -> list[tuple[MethodConfig, int]]:
        """Every row in order: the original, then per request each method and, where due,
        the exact Retrain."""
        every = self.config.sequential.exact_every
        order: list[tuple[MethodConfig, int]] = [(ORIGINAL_METHOD, 0)]
        for step in range(1, len(self.requests) + 1):
            order += [(method, step) for method in methods]
            if step % every == 0:
                order.append((retrain_of(self.config), step))
        return order


def miss_rate(columns: dict, dataset: Dataset) -> tuple[str, float | None]:
    """The study's FNR: the positive class's false-negative rate on a binary task, else the
    macro miss rate, 100 - the balanced accuracy (the mean over the test split's classes of
    the share of each class missed), from the per-class test accuracies."""
    if is_binary(dataset):
        return "fnr", columns.get("fnr")
    recalls = [v for c in range(dataset.n_classes) if (v := columns.get(f"ta_c{c}")) is not None]
    return "macro", 100.0 - float(np.mean(recalls)) if recalls else None


def run_sequential(
    config: ExperimentConfig, out: str | Path, progress: Progress | None = None
) -> list[dict]:
    """Run the sequential study of a config into folder `out` (see the module docstring):
    config.yaml, patients.csv (the patient map), requests.json, one JSON per row under runs/,
    results.csv (rewritten as rows land), results.json, report.md and sequential.png.
    Finished steps are reused when the command is repeated."""
    out = Path(out)
    session = open_session(config, progress)
    methods = check_study(config, session.dataset)
    dataset, engine = session.dataset, session.engine
    mapping = patient_map(config, dataset)
    requests = draw_requests(config, dataset, mapping)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump_config(config))
    write_patient_map(out / "patients.csv", mapping)
    atomic_write_json(out / "requests.json", [r.summary() for r in requests])
    engine.progress.log(
        f"data: {dataset.describe()}; {len(requests)} requests of {config.sequential.patients} "
        f"patients ({', '.join(str(r.ids.size) for r in requests)} images); inference path: "
        f"{engine.inference_path}"
    )
    original = train_original(config, dataset, engine, session.store, Seeds(config.seeds[0]).train)
    study = SequentialStudy(config, session, original, requests, out)
    debt = config.deletion.debt  # every row carries the bounds, so the rows alone give k*
    bounds = {"drift_bound": debt.drift, "reversal_margin": debt.reversal}
    rows: list[dict] = []
    for method, step in study.plan(methods):
        rows.append({**study.row(method, step), **bounds})
        atomic_write_text(out / "results.csv", results_csv(annotated(rows)))
    rows = annotated(rows)
    write_results(out, rows, dataclasses.replace(config, forget=[]))
    return rows
