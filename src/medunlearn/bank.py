"""Banks of models for the per-example attacks: reference Retrains of one forget set, and
repeated unlearning runs of one method, each model with its own seed.

The reference bank's models are Retrains (OUT for every forget and test sample), cached like
any Retrain, so every method and every later run on the same data and forget set reuses them.
It never holds the Retrain under test: its seeds are the bank's own (`Seeds.bank`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from medunlearn.checkpoints import TrainedModel
from medunlearn.config import ExperimentConfig, MethodConfig
from medunlearn.methods import Context, UnlearnData
from medunlearn.metrics import predict
from medunlearn.metrics.accuracy import accuracy
from medunlearn.metrics.privacy import ModelScores
from medunlearn.metrics.scores import SampleScores
from medunlearn.pipeline import row_key, run_method, train_original
from medunlearn.seeds import Seeds
from medunlearn.store import cache_key, load_tensors, save_tensors

SCORE_FIELDS = tuple(field.name for field in dataclasses.fields(SampleScores))


@dataclass
class BankModel:
    """One model of a bank: its seed, per-sample scores, retain and test accuracy (percent),
    and the seconds its training (or unlearning run) took."""

    seed: int
    scores: ModelScores
    ra: float
    ta: float
    seconds: float


SPLITS = ("train", "test", "val")


def _save(path: Path, model: BankModel) -> None:
    """A bank model's scores and accuracies, as safetensors."""
    tensors = {
        f"{split}.{field}": torch.from_numpy(getattr(getattr(model.scores, split), field))
        for split in SPLITS
        for field in SCORE_FIELDS
    }
    meta = {"seed": model.seed, "ra": model.ra, "ta": model.ta, "seconds": model.seconds}
    save_tensors(path, tensors, meta)


def _load(path: Path) -> BankModel:
    """A bank model saved by `_save`."""
    tensors, meta = load_tensors(path)
    splits = {
        split: SampleScores(*(tensors[f"{split}.{field}"].numpy() for field in SCORE_FIELDS))
        for split in SPLITS
    }
    scores = ModelScores(**splits)
    return BankModel(meta["seed"], scores, meta["ra"], meta["ta"], meta["seconds"])


def _bank_model(
    method: MethodConfig,
    data: UnlearnData,
    original: TrainedModel,
    context: Context,
    key: str,
) -> BankModel:
    """One bank model's scores on the training, test and validation splits, trained (or its
    Retrain read from the cache) and scored once: the scores are cached under its key."""
    path = None if context.store is None else context.store.path("bank", key)
    if path is not None and path.is_file():
        return _load(path)
    model, seconds = run_method(method, data, original, context, key)
    predictions = predict(model, data.dataset, context.engine, with_val=True)
    labels, retain = data.dataset.train.labels, data.retain_index
    scored = BankModel(
        context.seed,
        predictions.scores(data.dataset),
        accuracy(predictions.train[retain], labels[retain]),
        accuracy(predictions.test, data.dataset.test.labels),
        seconds,
    )
    if path is not None:
        _save(path, scored)
    return scored


def _models(
    config: ExperimentConfig,
    method: MethodConfig,
    data: UnlearnData,
    originals: list[TrainedModel],
    context: Context,
    seeds: Seeds,
    model_seeds: list[int],
    label: str,
) -> list[BankModel]:
    """One scored model of `method` per seed in `model_seeds`, each from its original (the
    same one, or one per model) and cached under its key: a Retrain's is that of any Retrain
    with its seed (it uses no original), an unlearning run's also names its original."""
    models = []
    for index, (seed, original) in enumerate(zip(model_seeds, originals, strict=True)):
        name = f"{label} {index + 1}/{len(model_seeds)} s{seeds.seed}"
        model_context = dataclasses.replace(context, seed=seed, name=name)
        key = row_key(config, data.dataset, seeds, data.forget_set, method, seed)
        if method.name != "retrain":
            key = cache_key("from", key, original.meta.get("seed"))
        models.append(_bank_model(method, data, original, model_context, key))
    return models


def reference_bank(
    config: ExperimentConfig,
    retrain: MethodConfig,
    data: UnlearnData,
    original: TrainedModel,
    context: Context,
    seeds: Seeds,
    indices: Sequence[int] | None = None,
) -> list[BankModel]:
    """The K = `config.evaluation.bank` reference Retrains of this forget set (or those of
    `indices`: one job of a study trains one), trained once."""
    indices = range(config.evaluation.bank) if indices is None else indices
    bank_seeds = [seeds.bank(index) for index in indices]
    originals = [original] * len(bank_seeds)  # a Retrain never uses it
    return _models(config, retrain, data, originals, context, seeds, bank_seeds, "bank")


def repeated_runs(
    config: ExperimentConfig,
    method: MethodConfig,
    data: UnlearnData,
    original: TrainedModel,
    context: Context,
    seeds: Seeds,
) -> list[BankModel]:
    """N = `config.evaluation.repeats` runs of one method, each with its own seed: the unlearned
    side of the forgetting score and of U-LiRA. Each starts from the original, or, with
    `evaluation.shadow_originals`, from an original of its own trained with its seed (Hayes et
    al.'s shadow pipelines: train with the forget set, then unlearn it; cached and shared by
    every method)."""
    repeat_seeds = [seeds.repeat(index) for index in range(config.evaluation.repeats)]
    originals = [original] * len(repeat_seeds)
    if config.evaluation.shadow_originals:
        store = context.store
        if store is None:
            raise ValueError("shadow originals need the model cache")
        engine, dataset = context.engine, data.dataset
        originals = [train_original(config, dataset, engine, store, s) for s in repeat_seeds]
    label = f"{method.display_name} repeat"
    return _models(config, method, data, originals, context, seeds, repeat_seeds, label)
