"""Retrain: a fresh model trained on the retain set only, with the original recipe."""

import copy

import pytest
import torch

import medunlearn.methods.retrain as retrain_module
from medunlearn.config import MethodConfig, TrainConfig
from medunlearn.methods import Context, unlearn


def test_retrain_never_sees_forget_samples(original, unlearn_data, context, batch_rows):
    unlearn(copy.deepcopy(original), unlearn_data,
            MethodConfig("retrain", {"epochs": 2}), context)  # fmt: skip
    forget = set(unlearn_data.forget_index.tolist())
    retain = set(unlearn_data.retain_index.tolist())
    assert len(batch_rows) == 2  # one pass per epoch
    for rows in batch_rows:
        assert rows == retain
        assert not rows & forget


def test_retrain_starts_from_a_fresh_model(unlearn_data, context, monkeypatch, original):
    """The trained model is ignored: its weights do not reach the training."""
    seen = {}
    real_train = retrain_module.train_model

    def spy(model, *args, **kwargs):
        seen["start"] = copy.deepcopy(model.state_dict())
        return real_train(model, *args, **kwargs)

    monkeypatch.setattr(retrain_module, "train_model", spy)
    unlearn(copy.deepcopy(original), unlearn_data, MethodConfig("retrain"), context)
    original = original.state_dict()
    assert any(not torch.equal(seen["start"][k], original[k]) for k in original)
    torch.manual_seed(context.seed)
    fresh = retrain_module.fresh_model(context, unlearn_data).state_dict()
    assert all(torch.equal(seen["start"][k], fresh[k]) for k in fresh)


def test_retrain_uses_the_recipe_with_overrides(unlearn_data, context, monkeypatch, original):
    recipes = []
    real_train = retrain_module.train_model

    def spy(model, dataset, indices, recipe, *args, **kwargs):
        recipes.append(recipe)
        return real_train(model, dataset, indices, recipe, *args, **kwargs)

    monkeypatch.setattr(retrain_module, "train_model", spy)
    unlearn(original, unlearn_data, MethodConfig("retrain"), context)
    unlearn(original, unlearn_data,
            MethodConfig("retrain", {"epochs": 2, "lr": 0.01}), context)  # fmt: skip
    assert recipes[0] == context.train
    assert (recipes[1].epochs, recipes[1].lr) == (2, 0.01)
    assert recipes[1].batch_size == context.train.batch_size


def test_retrain_is_reproducible(unlearn_data, context, original):
    first = unlearn(original, unlearn_data, MethodConfig("retrain"), context).model
    second = unlearn(original, unlearn_data, MethodConfig("retrain"), context).model
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_retrain_needs_the_recipe_and_model(unlearn_data, engine, original):
    with pytest.raises(ValueError, match="recipe"):
        unlearn(original, unlearn_data, MethodConfig("retrain"), Context(engine))
    context = Context(engine, train=TrainConfig(epochs=1, batch_size=16, augment="none"))
    with pytest.raises(ValueError, match="model config"):
        unlearn(original, unlearn_data, MethodConfig("retrain"), context)
