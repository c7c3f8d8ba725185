"""The cached original model: trained once with its per-sample difficulty, reused from the
cache, and trained again only where an easy / hard forget set needs a difficulty it lacks."""

from dataclasses import replace

import numpy as np
import pytest
import torch

import medunlearn.study.pipeline as pipeline
from medunlearn.checkpoints import difficulty_path
from medunlearn.config import ForgetConfig
from medunlearn.data import load_dataset
from medunlearn.engine import Engine
from medunlearn.store import Store, cache_root


def _original(config):
    """The original model of seed 0 of a config, through the cache."""
    store = Store(cache_root(config.runtime.cache_dir))
    dataset = load_dataset(config.data)
    return pipeline.train_original(config, dataset, Engine(config.runtime), store, 0), store


def _no_training(monkeypatch):
    """Make any training fail the test."""

    def refuse(*_args, **_kwargs):
        raise AssertionError("trained again")

    monkeypatch.setattr(pipeline, "train_model", refuse)


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    pairs = zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    return all(torch.equal(x, y) for x, y in pairs)


def test_the_original_keeps_its_difficulty_in_the_cache(make_config, monkeypatch):
    config = make_config(epochs=2)
    trained, _ = _original(config)
    assert trained.difficulty.shape == (64,) and np.isfinite(trained.difficulty).all()
    _no_training(monkeypatch)
    reused, _ = _original(config)
    assert np.array_equal(reused.difficulty, trained.difficulty)


def test_an_original_cached_without_difficulty(make_config):
    """Reused as it is for random forget sets; trained again (the same weights on a CPU) for an
    easy / hard one, which then finds its difficulty."""
    config = make_config(epochs=2)
    trained, store = _original(config)
    (path,) = (store.root / "original").glob("*[0-9a-f].safetensors")
    difficulty_path(path).unlink()  # as an older version cached it
    with pytest.MonkeyPatch.context() as patch:
        _no_training(patch)
        assert _original(config)[0].difficulty is None
    hard = replace(config, forget=[ForgetConfig(mode="hard", fraction=0.1)])
    again, _ = _original(hard)
    assert np.array_equal(again.difficulty, trained.difficulty)
    assert _same_weights(again.model, trained.model)
    assert difficulty_path(path).is_file()
