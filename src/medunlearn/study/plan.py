"""A study as a plan of jobs, each after the jobs it needs: per scenario (augmentation mode) and
seed the original model; per forget set its bank models, RMIA's `a`, each method's repeated
runs, each method's row, then the forget set's pending attacks. Jobs share their work through
the cache only, so any executor runs them."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from medunlearn.config import ExperimentConfig
from medunlearn.executor import Job
from medunlearn.progress import Progress
from medunlearn.roles import METHOD, role_of, study_methods
from medunlearn.seeds import Seeds
from medunlearn.study.bank import reference_model, repeated_run, shadow_original
from medunlearn.study.pipeline import train_original
from medunlearn.study.rows import finish_rows, forget_run, run_row
from medunlearn.study.setup import open_session


@dataclass(frozen=True)
class Step:
    """What one job computes, by `kind`: the `original` of a scenario and seed, the `shadow`
    original of repeat `index`, or for forget set `forget`: `bank` model `index`, RMIA's `a`
    (`rmia`), `repeat` `index` of method `method`, method `method`'s `row`, or its `attacks`
    (the forget set's finished rows). Indices point into `scenarios`, `config.forget` and
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
    if step.kind == "original":
        train_original(scenario, session.dataset, session.engine, session.store, step.seed)
        return None
    seeds, index = Seeds(step.seed), step.index or 0
    if step.kind == "shadow":
        shadow_original(scenario, session.dataset, session.engine, session.store, seeds, index)
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
            original = add(Step("original", a, seed), f"{prefix}original s{seed}", [])
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
                    repeats = [
                        add(Step("repeat", a, seed, f, m, i),
                            f"{where} {method.display_name} repeat {i + 1}",
                            [original, *shadows[i : i + 1]])
                        for i in range(evaluation.repeats if role_of(method) == METHOD else 0)
                    ]  # fmt: skip
                    needs = [original, *banks, *rmia, *repeats]
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
