"""A study as a plan of jobs, each after the jobs it needs: per scenario (augmentation mode) and
seed the original model (a sharded one after a job per shard, and another for each method that
starts from a model of its own recipe: SISA's shards and slices); per forget set its bank
models, RMIA's `a`, each method's repeated runs, each method's row, then the forget set's
pending attacks. Jobs share their work through the cache only, so any executor runs them."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from medunlearn.config import ExperimentConfig
from medunlearn.executor import Job
from medunlearn.methods.registry import original_recipe
from medunlearn.progress import Progress
from medunlearn.roles import METHOD, role_of, study_methods
from medunlearn.seeds import Seeds
from medunlearn.store import cache_key
from medunlearn.study.bank import reference_model, repeated_run, shadow_original
from medunlearn.study.pipeline import train_original, train_shard
from medunlearn.study.rows import finish_rows, forget_run, run_row
from medunlearn.study.setup import open_session


@dataclass(frozen=True)
class Step:
    """What one job computes, by `kind`: the `original` of a scenario and seed (of method
    `method`'s recipe where set), `shard` `index` of a sharded one, the `shadow` original of
    repeat `index`, or for forget set `forget`: `bank` model `index`, RMIA's `a` (`rmia`),
    `repeat` `index` of method `method`, method `method`'s `row`, or its `attacks` (the forget
    set's finished rows). Indices point into `scenarios`, `config.forget` and
    `study_methods`."""

    kind: str
    scenario: int
    seed: int
    forget: int | None = None
    method: int | None = None
    index: int | None = None


def run_step(
    config: ExperimentConfig, out: Path, step: Step, progress: Progress | None = None
) -> list[dict] | None:
    """Do one step of a study in this process, reading what earlier steps cached; the rows for
    the attacks step, else None."""
    scenario = scenarios(config)[step.scenario]
    session = open_session(scenario, progress)
    engine, dataset, store = session.engine, session.dataset, session.store
    if step.kind in ("original", "shard"):
        trained = recipe_config(scenario, step.method)
        if step.kind == "shard":
            train_shard(trained, dataset, engine, store, step.seed, step.index or 0)
        else:
            train_original(trained, dataset, engine, store, step.seed)
        return None
    seeds, index = Seeds(step.seed), step.index or 0
    if step.kind == "shadow":
        shadow_original(scenario, dataset, engine, store, seeds, index)
        return None
    run = forget_run(scenario, scenario.forget[step.forget or 0], session, step.seed, out)
    methods = study_methods(scenario)
    if step.kind == "bank":
        reference_model(scenario, run.data, run.original, run.context, seeds, index)
    elif step.kind == "rmia":
        run.rmia_a()
    elif step.kind == "repeat":
        method = methods[step.method or 0]
        repeated_run(scenario, method, run.data, run.original, run.context, seeds, index)
    elif step.kind == "row":
        run_row(run, methods[step.method or 0])
    else:
        return finish_rows(run, methods)
    return None


def recipe_config(scenario: ExperimentConfig, method: int | None) -> ExperimentConfig:
    """The scenario with the training recipe of the original method `method` (an index into
    `study_methods`) starts from; the scenario itself for None."""
    if method is None:
        return scenario
    recipe = original_recipe(scenario.train, study_methods(scenario)[method])
    return dataclasses.replace(scenario, train=recipe)


# adds a job (its step, name and needs) to a plan and returns its name
Add = Callable[[Step, str, list[str]], str]


def _original(add: Add, a: int, seed: int, trained: ExperimentConfig, method: int | None,
              prefix: str) -> str:  # fmt: skip
    """Add the jobs of one original: a job per shard where it is sharded, then its own (which
    aggregates the shards); its name. A method's own recipe is named by its shards and slices."""
    train = trained.train
    shape = "" if method is None else f" ({train.shards} shards x {train.slices} slices)"
    shards = [
        add(Step("shard", a, seed, method=method, index=k),
            f"{prefix}shard {k + 1}/{train.shards}{shape} s{seed}", [])
        for k in range(train.shards if train.sharded else 0)
    ]  # fmt: skip
    return add(Step("original", a, seed, method=method), f"{prefix}original{shape} s{seed}", shards)


def _originals(
    add: Add, a: int, seed: int, scenario: ExperimentConfig, prefix: str
) -> tuple[str, list[str]]:
    """The study's original job, and the one each of `study_methods` starts from: the study's,
    or one of the method's own recipe (added once per distinct recipe)."""
    study = _original(add, a, seed, scenario, None, prefix)
    by_recipe = {cache_key("recipe", scenario.train): study}
    names = []
    for m in range(len(study_methods(scenario))):
        trained = recipe_config(scenario, m)
        key = cache_key("recipe", trained.train)
        if key not in by_recipe:
            by_recipe[key] = _original(add, a, seed, trained, m, prefix)
        names.append(by_recipe[key])
    return study, names


def plan(config: ExperimentConfig, out: Path) -> list[Job]:
    """The jobs of a study in an order where every job comes after those it needs."""
    jobs: list[Job] = []

    def add(step: Step, name: str, needs: list[str]) -> str:
        jobs.append(Job(name, step.kind, run_step, (config, out, step), tuple(needs)))
        return name

    for a, scenario in enumerate(scenarios(config)):
        prefix = f"{scenario.train.augment} " if config.augmentations else ""
        methods = study_methods(scenario)
        evaluation = scenario.evaluation
        for seed in scenario.seeds:
            original, starts = _originals(add, a, seed, scenario, prefix)
            shadows = [
                add(Step("shadow", a, seed, index=i), f"{prefix}shadow original {i + 1} s{seed}",
                    [original])
                for i in range(evaluation.repeats if evaluation.shadow_originals else 0)
            ]  # fmt: skip
            for f, forget_config in enumerate(scenario.forget):
                where = f"{prefix}{forget_config.display_name} s{seed}"
                banks = [
                    add(Step("bank", a, seed, f, index=i), f"{where} bank {i + 1}", [original])
                    for i in range(evaluation.bank)
                ]
                rmia = [add(Step("rmia", a, seed, f), f"{where} RMIA a", banks)] if (
                    banks and evaluation.rmia_a is None) else []  # fmt: skip
                rows = []
                for m, method in enumerate(methods):
                    first = list(dict.fromkeys([original, starts[m]]))
                    repeats = [
                        add(Step("repeat", a, seed, f, m, i),
                            f"{where} {method.display_name} repeat {i + 1}",
                            [*first, *shadows[i : i + 1]])
                        for i in range(evaluation.repeats if role_of(method) == METHOD else 0)
                    ]  # fmt: skip
                    needs = [*first, *banks, *rmia, *repeats]
                    rows.append(add(Step("row", a, seed, f, m), f"{where} {method.display_name}",
                                    needs))  # fmt: skip
                add(Step("attacks", a, seed, f), f"{where} attacks", rows)
    return jobs


def with_augment(config: ExperimentConfig, mode: str) -> ExperimentConfig:
    """The config with one augmentation mode in every phase: original, Retrain, every method."""
    methods = [dataclasses.replace(m, params={**m.params, "augment": mode}) for m in config.methods]
    train = dataclasses.replace(config.train, augment=mode)
    return dataclasses.replace(config, train=train, methods=methods, augmentations=[])


def scenarios(config: ExperimentConfig) -> list[ExperimentConfig]:
    """One config per mode of an augmentation study, else the config itself."""
    return [with_augment(config, mode) for mode in config.augmentations] or [config]
