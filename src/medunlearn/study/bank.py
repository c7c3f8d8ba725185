"""Banks of models for the per-example attacks: reference Retrains of one forget set, and
repeated unlearning runs of one method, each model with its own seed and each its own job.

The reference bank's models are Retrains (OUT for every forget and test sample), cached like
any Retrain, so every method and every later run on the same data and forget set reuses them.
It never holds the Retrain under test: its seeds are the bank's own (`Seeds.bank`). A bank
model is kept as its per-sample scores on every split and its retain and test accuracy."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from medunlearn.checkpoints import TrainedModel
from medunlearn.config import ExperimentConfig, MethodConfig
from medunlearn.data import Dataset
from medunlearn.engine import Engine
from medunlearn.methods import Context, UnlearnData
from medunlearn.methods.registry import original_recipe
from medunlearn.metrics.evaluate import Request, evaluate
from medunlearn.metrics.evidence import ModelScores, Repeats
from medunlearn.metrics.scores import SampleScores
from medunlearn.roles import RETRAIN, retrain_of, role_of
from medunlearn.seeds import Seeds
from medunlearn.store import Store, cache_key, load_tensors, save_tensors
from medunlearn.study.pipeline import note_influence, row_key, run_method, train_original

SCORE_FIELDS = tuple(field.name for field in dataclasses.fields(SampleScores))
SPLITS = ("train", "test", "val")


@dataclass
class BankModel:
    """One model of a bank: its seed, per-sample scores, retain and test accuracy (percent),
    and the seconds its training (or unlearning run) took."""

    seed: int
    scores: ModelScores
    ra: float
    ta: float
    seconds: float


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
    return BankModel(meta["seed"], ModelScores(**splits), meta["ra"], meta["ta"], meta["seconds"])


def bank_model(
    method: MethodConfig,
    data: UnlearnData,
    original: TrainedModel,
    context: Context,
    weights: str,
) -> BankModel:
    """One bank model, trained (or its Retrain read from the cache) under its `weights` key and
    evaluated once: its scores are cached under that key and the inference path."""
    store = context.store
    key = cache_key("scored", weights, context.engine.inference_path)
    path = None if store is None else store.path("bank", key)
    if path is not None and path.is_file():
        return _load(path)
    model, seconds = run_method(method, data, original, context, weights)
    request = Request(context.seed, names=("accuracy",), keep=SPLITS)
    evaluation = evaluate(model, data.dataset, data.forget_set, context.engine, request)
    columns = evaluation.columns
    scores = evaluation.evidence.model_scores()
    scored = BankModel(context.seed, scores, columns["ra"], columns["ta"], seconds)
    if path is not None:
        _save(path, scored)
        note_influence(store, path, data, method)
    return scored


def weights_of(
    config: ExperimentConfig,
    method: MethodConfig,
    data: UnlearnData,
    seeds: Seeds,
    seed: int,
    original: TrainedModel,
) -> str:
    """A bank model's weights key: a Retrain's is that of any Retrain with its seed (it uses no
    original), an unlearning run's also names its original (its seed, and its origin where it
    is not the config's own original: a deployment's current model)."""
    key = row_key(config, data.dataset, seeds, data.forget_set, method, seed)
    if role_of(method) == RETRAIN:
        return key
    origin = [original.meta["origin"]] if "origin" in original.meta else []
    return cache_key("from", key, original.meta.get("seed"), *origin)


def reference_model(
    config: ExperimentConfig,
    data: UnlearnData,
    original: TrainedModel,
    context: Context,
    seeds: Seeds,
    index: int,
) -> BankModel:
    """Reference Retrain `index` of this forget set's bank, with its own seed (cached)."""
    seed = seeds.bank(index)
    retrain = retrain_of(config)
    name = f"bank {index + 1}/{config.evaluation.bank} s{seeds.seed}"
    model_context = dataclasses.replace(context, seed=seed, name=name)
    key = weights_of(config, retrain, data, seeds, seed, original)
    return bank_model(retrain, data, original, model_context, key)


def shadow_original(
    config: ExperimentConfig,
    dataset: Dataset,
    engine: Engine,
    store: Store | None,
    seeds: Seeds,
    index: int,
) -> TrainedModel:
    """The original that repeat `index` starts from under `evaluation.shadow_originals`: one
    trained with the repeat's seed (Hayes et al.'s shadow pipelines: train with the forget set,
    then unlearn it), cached and shared by every method and forget set."""
    if store is None:
        raise ValueError("shadow originals need the model cache")
    return train_original(config, dataset, engine, store, seeds.repeat(index))


def repeated_run(
    config: ExperimentConfig,
    method: MethodConfig,
    data: UnlearnData,
    original: TrainedModel,
    context: Context,
    seeds: Seeds,
    index: int,
) -> BankModel:
    """Unlearning run `index` of the N = `evaluation.repeats` runs of a method behind the
    forgetting score and U-LiRA, with its own seed, from the original (the challenge's
    protocol) or from its shadow original (cached; of the method's own recipe where it has one,
    e.g. SISA's shards)."""
    if config.evaluation.shadow_originals:
        engine, store = context.engine, context.store
        own = dataclasses.replace(config, train=original_recipe(config.train, method))
        original = shadow_original(own, data.dataset, engine, store, seeds, index)
    seed = seeds.repeat(index)
    name = f"{method.display_name} repeat {index + 1}/{config.evaluation.repeats} s{seeds.seed}"
    model_context = dataclasses.replace(context, seed=seed, name=name)
    key = weights_of(config, method, data, seeds, seed, original)
    return bank_model(method, data, original, model_context, key)


def repeats_of(unlearned: list[BankModel], retrained: list[BankModel], forget) -> Repeats:
    """The two banks of the unlearning tests: phi of the forget rows under each run and each
    bank Retrain, and their mean retain and test accuracy."""
    rows = forget.numpy()
    return Repeats(
        np.stack([model.scores.train.phi[rows] for model in unlearned]),
        np.stack([model.scores.train.phi[rows] for model in retrained]),
        float(np.mean([m.ra for m in unlearned])), float(np.mean([m.ta for m in unlearned])),
        float(np.mean([m.ra for m in retrained])), float(np.mean([m.ta for m in retrained])),
    )  # fmt: skip


def minutes(models: list[BankModel]) -> float:
    """What training a bank's models took, in minutes."""
    return sum(model.seconds for model in models) / 60
