"""Experiments: config -> cached original -> Retrain -> methods -> metrics -> result rows.

This module plans and orders the work only: checkpoints and cache keys live in `store` and
`checkpoints`, evaluation and the MIA attacks in `metrics`, the fit loop in `training`.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from medunlearn.bank import BankModel, reference_bank, repeated_runs
from medunlearn.checkpoints import TrainedModel
from medunlearn.config import (
    ConfigError,
    EvaluationConfig,
    ExperimentConfig,
    ForgetConfig,
    MethodConfig,
    dump_config,
)
from medunlearn.data import Dataset, load_dataset
from medunlearn.engine import Engine, configure_process
from medunlearn.executor import Executor, Job, executor_for, run_jobs
from medunlearn.forget import check_forget, select_forget
from medunlearn.methods import Context, UnlearnData
from medunlearn.methods.registry import get_method, method_params
from medunlearn.metrics import evaluate_row
from medunlearn.metrics.evaluation import RowEvaluation
from medunlearn.metrics.gap import add_gaps
from medunlearn.metrics.mia import AttackDone, MiaResult, PendingAttacks, save_inputs
from medunlearn.metrics.privacy import (
    BANK_ATTACKS,
    Reference,
    bank_attacks,
    reference,
    tuned_rmia_a,
)
from medunlearn.metrics.unlearning_tests import final_score, forgetting_score, ulira_held_out
from medunlearn.pipeline import RETRAIN, row_key, run_method, train_original
from medunlearn.progress import Progress
from medunlearn.report import csv_text, write_results
from medunlearn.seeds import Seeds
from medunlearn.store import (
    Store,
    atomic_write_json,
    atomic_write_text,
    cache_key,
    cache_root,
)


def _mia_path(path: Path) -> Path:
    """Where a row whose MIA is pending keeps the attack's inputs: beside the row's JSON."""
    return path.with_suffix(".mia.npz")


def _complete_row(path: Path, row: dict) -> AttackDone:
    """What writes a pending row whole once its attack has run."""

    def done(result: MiaResult, seconds: float) -> None:
        row.update(mia=result.efficacy, mia_constant=result.constant)
        row["eval_s"] += seconds
        saved = {**json.loads(path.read_text()), "row": row}
        del saved["mia_pending"]
        atomic_write_json(path, saved)

    return done


@dataclass
class ForgetRun:
    """One forget set of one seed: what all its rows share, the reference bank included."""

    config: ExperimentConfig
    data: UnlearnData
    original: TrainedModel
    context: Context
    seeds: Seeds
    folder: Path
    bank: list[BankModel] = field(default_factory=list)
    reference: Reference | None = None
    rmia_a: float | None = None

    def row_path(self, method: MethodConfig) -> Path:
        """Where a method's row is kept."""
        return self.folder / f"{method.display_name}.json"

    def model_key(self, method: MethodConfig) -> str:
        """The key of a row's model (see `pipeline.row_key`)."""
        return row_key(self.config, self.data.dataset, self.seeds, self.data.forget_set, method)

    def run_key(self, method: MethodConfig) -> str:
        """What a finished row must match to be reused: its model's key and the evaluation."""
        return cache_key("row", self.model_key(method), self.config.evaluation)


def _bank_columns(run: ForgetRun, method: MethodConfig, evaluation: RowEvaluation) -> dict:
    """Offline LiRA and RMIA of the row's model against the bank (nothing without a bank).

    RMIA's `a`, unless configured, is tuned on the original model's row (the first one, its
    scores at hand) and kept in it, so later rows, and a resumed run, use the same value."""
    if run.reference is None:
        return {}
    forget = run.data.forget_index
    if run.rmia_a is None and method.name == "original":
        run.rmia_a = tuned_rmia_a(evaluation.scores, run.reference, forget)
    bank_attacks(evaluation.scores, run.reference, forget, run.rmia_a, evaluation.privacy)
    columns = {k: v for k, v in evaluation.privacy.columns.items() if k.startswith(BANK_ATTACKS)}
    return {
        **columns,
        "rmia_a": run.rmia_a,
        "bank_n": len(run.bank),
        "bank_seeds": [model.seed for model in run.bank],
        "bank_min": _minutes(run.bank),
    }


def _minutes(models: list[BankModel]) -> float:
    """What training a bank's models took, in minutes."""
    return sum(model.seconds for model in models) / 60


def _forgetting_columns(run: ForgetRun, method: MethodConfig) -> dict:
    """The NeurIPS 2023 forgetting score of a method: its repeated runs against as many bank
    models (nothing without repeats, or for the original model and Retrain)."""
    repeats = run.config.evaluation.repeats
    if not repeats or method.name in ("original", "retrain"):
        return {}
    unlearned = repeated_runs(run.config, method, run.data, run.original, run.context, run.seeds)
    retrained = run.bank[:repeats]
    forget = run.data.forget_index.numpy()
    unlearned_phi = np.stack([model.scores.train.phi[forget] for model in unlearned])
    retrained_phi = np.stack([model.scores.train.phi[forget] for model in retrained])
    score = forgetting_score(unlearned_phi, retrained_phi)
    held_out = ulira_held_out(unlearned_phi, retrained_phi)
    ra_u, ta_u = (float(np.mean([getattr(m, k) for m in unlearned])) for k in ("ra", "ta"))
    ra_r, ta_r = (float(np.mean([getattr(m, k) for m in retrained])) for k in ("ra", "ta"))
    return {
        "forget_quality": score.f,
        "forget_score": final_score(score.f, ra_u, ra_r, ta_u, ta_r),
        "forget_score_n": score.n_models,
        "ulira_acc": held_out.balanced_accuracy,
        "ulira_auc": held_out.auc,
        "repeats_min": _minutes(unlearned),
    }


def _run_row(method: MethodConfig, run: ForgetRun) -> dict:
    """One method's metrics row, read back from its JSON when this exact run already finished.

    A new row is written with its MIA pending ("mia": None, the attack's inputs saved beside
    it) for `PendingAttacks`, so an interruption before the attacks loses no training.
    """
    path, key = run.row_path(method), run.run_key(method)
    context, seeds, data = run.context, run.seeds, run.data
    if path.is_file():
        saved = json.loads(path.read_text())
        pending = saved.get("mia_pending", False)
        if not pending:  # inputs left by a stop between finishing the row and deleting them
            _mia_path(path).unlink(missing_ok=True)
        if saved.get("run_key") == key and (not pending or _mia_path(path).is_file()):
            context.engine.progress.log(f"{method.display_name}: done earlier, {path}")
            return saved["row"]
    context.name = f"{method.display_name} s{seeds.seed}"
    context.seed = seeds.retrain if method.name == "retrain" else seeds.unlearn
    if method.name == "original":
        model, seconds = run.original.model, run.original.meta.get("seconds", 0.0)
    else:
        model, seconds = run_method(method, data, run.original, context, run.model_key(method))
    forget_set = data.forget_set
    checked = method.name in ("original", "retrain")  # their AUC intervals are checked
    evaluation = evaluate_row(
        model, data.dataset, forget_set, context.engine, seeds.attack, bool(run.bank), checked
    )
    row = {
        "method": method.display_name,
        "aug": context.train.augment if context.train else "",
        "forget": forget_set.spec.get("label") or "",
        "seed": seeds.seed,
        **seeds.record(),
        **evaluation.metrics,
        **_bank_columns(run, method, evaluation),
        **_forgetting_columns(run, method),
        "rte_min": seconds / 60,
        "eval_s": evaluation.seconds,
        "forget_key": forget_set.key,
        "curves": evaluation.privacy.curves,
        "histograms": evaluation.privacy.histograms,
    }
    save_inputs(_mia_path(path), evaluation.mia_inputs)
    saved = {"run_key": key, "params": method.params, "row": row, "mia_pending": True}
    atomic_write_json(path, saved)
    return row


def method_list(config: ExperimentConfig) -> list[MethodConfig]:
    """The original model's row, Retrain (always: it is the reference) and the methods."""
    methods = [m for m in config.methods if m.name != "retrain"]
    retrain = next((m for m in config.methods if m.name == "retrain"), RETRAIN)
    return [MethodConfig("original"), retrain, *methods]


def forget_run(
    config: ExperimentConfig,
    forget_config: ForgetConfig,
    dataset: Dataset,
    original: TrainedModel,
    context: Context,
    out: Path,
    bank: Sequence[int] | None = None,
) -> ForgetRun:
    """What the rows of one forget spec and seed share; saves the forget set in their folder.

    The reference bank (when configured) is trained or read first: all of it, or the models
    of `bank` (one job of a study trains one)."""
    seeds = Seeds(context.seed)
    forget_set = select_forget(dataset, forget_config, seeds.forget, original.difficulty)
    label = forget_set.spec["label"] = forget_config.display_name
    folder = out / "runs" / config.train.augment / label / f"seed{seeds.seed}"
    forget_set.save(folder / "forget_set.json")
    data = UnlearnData(dataset, forget_set)
    run = ForgetRun(config, data, original, context, seeds, folder)
    retrain = method_list(config)[1]
    run.bank = reference_bank(config, retrain, data, original, context, seeds, bank)
    if run.bank and bank is None:
        run.reference = reference([model.scores for model in run.bank], forget_set.forget_index)
        run.rmia_a = config.evaluation.rmia_a
    return run


def _rows(run: ForgetRun, methods: Sequence[MethodConfig]) -> list[dict]:
    """The rows of `methods` (the original model's first: RMIA's `a` is tuned on it), each
    read back when done earlier, with its MIA pending when new."""
    rows = []
    for method in methods:
        rows.append(_run_row(method, run))
        run.rmia_a = rows[0].get("rmia_a", run.rmia_a)
    return rows


def run_forget_set(run: ForgetRun) -> list[dict]:
    """Every method's row of one forget set, with its SVC attack: the rows still pending are
    fitted together by `PendingAttacks`, after the trainings."""
    methods = method_list(run.config)
    rows = _rows(run, methods)
    with PendingAttacks(run.context.engine) as attacks:
        for method, row in zip(methods, rows, strict=True):
            if row["mia"] is None:
                path = run.row_path(method)
                attacks.add(_mia_path(path), _complete_row(path, row))
        attacks.finish()
    return rows


@dataclass(frozen=True)
class Step:
    """What one job of an experiment computes: the original model of a scenario and seed, one
    bank model of a forget set, one method's row (its attack pending), or a forget set's
    finished rows (their attacks fitted). Indices point into `scenarios`, `config.forget`,
    the bank and `method_list`."""

    scenario: int
    seed: int
    forget: int | None = None
    bank: int | None = None
    method: int | None = None

    @property
    def kind(self) -> str:
        """What the job does, for the study's ETA."""
        if self.forget is None:
            return "original"
        if self.bank is not None:
            return "bank"
        return "row" if self.method is not None else "attacks"


def run_step(
    config: ExperimentConfig, out: Path, step: Step, progress: Progress | None = None
) -> list[dict] | None:
    """Do one step of an experiment in this process, reading what earlier steps cached; the
    rows for the forget-set step, else None."""
    scenario = scenarios(config)[step.scenario]
    engine, dataset, store = prepare_run(scenario, progress)
    original = train_original(scenario, dataset, engine, store, Seeds(step.seed).train)
    if step.forget is None:
        return None
    context = Context(engine, step.seed, scenario.train, scenario.model, store)
    forget_config = scenario.forget[step.forget]
    bank = None if step.bank is None else [step.bank]
    run = forget_run(scenario, forget_config, dataset, original, context, out, bank)
    if step.bank is not None:
        return None
    if step.method is not None:
        methods = method_list(scenario)
        _rows(run, methods[:1] + methods[step.method : step.method + 1])
        return None
    return run_forget_set(run)


def plan(config: ExperimentConfig, out: Path) -> list[Job]:
    """The jobs of an experiment, each after the jobs it needs: per scenario and seed the
    original; per forget set its bank models, the original model's row (RMIA's `a` is tuned
    on it against the bank), every other row, then the forget set's attacks and rows."""
    jobs: list[Job] = []

    def add(step: Step, name: str, needs: list[str]) -> str:
        jobs.append(Job(name, step.kind, run_step, (config, out, step), tuple(needs)))
        return name

    for a, scenario in enumerate(scenarios(config)):
        prefix = f"{scenario.train.augment} " if config.augmentations else ""
        methods = method_list(scenario)
        for seed in scenario.seeds:
            original = add(Step(a, seed), f"{prefix}original s{seed}", [])
            for f, forget_config in enumerate(scenario.forget):
                where = f"{prefix}{forget_config.display_name} s{seed}"
                banks = [
                    add(Step(a, seed, f, bank=i), f"{where} bank {i + 1}", [original])
                    for i in range(scenario.evaluation.bank)
                ]
                first = add(Step(a, seed, f, method=0), f"{where} original", banks or [original])
                rows = [first] + [
                    add(Step(a, seed, f, method=m), f"{where} {method.display_name}", [first])
                    for m, method in enumerate(methods[1:], start=1)
                ]
                add(Step(a, seed, f), f"{where} attacks", rows)
    return jobs


def with_augment(config: ExperimentConfig, mode: str) -> ExperimentConfig:
    """The config with one augmentation mode in every phase: original, Retrain, every method."""
    methods = [dataclasses.replace(m, params={**m.params, "augment": mode}) for m in config.methods]
    train = dataclasses.replace(config.train, augment=mode)
    return dataclasses.replace(config, train=train, methods=methods, augmentations=[])


def scenarios(config: ExperimentConfig) -> list[ExperimentConfig]:
    """One config per mode of an augmentation study, else the config itself."""
    return [with_augment(config, mode) for mode in config.augmentations] or [config]


def _repeated(names: list[str]) -> list[str]:
    """The names that occur more than once."""
    return sorted({name for name in names if names.count(name) > 1})


def _validate_evaluation(evaluation: EvaluationConfig) -> None:
    """A bank of at least two models (LiRA fits a spread), and no more repeats than bank models
    (each unlearned run is compared with one retrained model)."""
    if evaluation.bank == 1:
        raise ConfigError("evaluation.bank must be 0 (off) or at least 2; got 1")
    if evaluation.repeats and not 3 <= evaluation.repeats <= evaluation.bank:
        raise ConfigError(
            "evaluation.repeats must be 0 (off) or between 3 and evaluation.bank (the forgetting "
            f"score compares N unlearned with N bank models); got {evaluation.repeats} with "
            f"bank {evaluation.bank}"
        )


def validate(config: ExperimentConfig, dataset: Dataset) -> None:
    """Check what only the data or the registry can tell, before anything is written: each
    method's params and data, distinct method and forget-set names, and each forget spec on
    this dataset. The config's own fields were checked when it was built."""
    if repeated := _repeated([method.display_name for method in method_list(config)]):
        raise ConfigError(
            f"more than one method is named {repeated}: give each a distinct 'label' "
            "(a method's row and files are named by it)"
        )
    if repeated := _repeated([forget.display_name for forget in config.forget]):
        raise ConfigError(
            f"more than one forget set is named {repeated}: give each a distinct 'label' "
            "(a forget set's rows, Retrain reference and folder are named by it)"
        )
    for method in config.methods:
        method_params(method.name, method.params)
        get_method(method.name).check_data(dataset)
    if not config.seeds:
        raise ConfigError("seeds is empty: give at least one seed, e.g. [0]")
    _validate_evaluation(config.evaluation)
    for forget_config in config.forget:
        check_forget(dataset, forget_config, config.seeds[0])


def prepare_run(
    config: ExperimentConfig, progress: Progress | None
) -> tuple[Engine, Dataset, Store]:
    """The process settings, engine, dataset and cache of a config's run."""
    configure_process(config.runtime)
    engine = Engine(config.runtime, progress)
    dataset = load_dataset(config.data, cache_dir=config.runtime.cache_dir)
    return engine, dataset, Store(cache_root(config.runtime.cache_dir))


def run(
    config: ExperimentConfig,
    out: str | Path,
    progress: Progress | None = None,
    executor: Executor | None = None,
) -> list[dict]:
    """Run a whole experiment into folder `out`: config.yaml, per-run JSON, results.csv, report.md.

    Its jobs run on `executor` (default: the one `runtime.executor` names); each forget set's
    rows are added to results.csv as they land. Finished runs are skipped when the command is
    repeated, so an interrupted run resumes.
    """
    out = Path(out)
    engine, dataset, _ = prepare_run(config, progress)
    validate(config, dataset)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump_config(config))
    engine.progress.log(f"data: {dataset.describe()}")
    landed: dict[int, list[dict]] = {}
    with executor_for(config.runtime, executor) as runner:
        for job in run_jobs(runner, plan(config, out), engine.progress):
            if job.result is not None:
                landed[job.index] = job.result
                atomic_write_text(out / "results.csv", csv_text(_ordered(landed)))
    rows = _ordered(landed)
    write_results(out, rows, config)
    return rows


def _ordered(landed: dict[int, list[dict]]) -> list[dict]:
    """The rows landed so far in plan order, with their gaps to Retrain."""
    rows = [row for index in sorted(landed) for row in landed[index]]
    add_gaps(rows)
    return rows


def export_original(
    config: ExperimentConfig, out: str | Path, seed: int = 0, progress: Progress | None = None
) -> tuple[Path, dict]:
    """Train (or reuse) the original model of a config and copy it to `out/model.safetensors`."""
    out = Path(out)
    engine, dataset, store = prepare_run(config, progress)
    original = train_original(config, dataset, engine, store, seed)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "config.yaml", dump_config(config))
    path = out / "model.safetensors"
    original.save(path)
    return path, original.meta
