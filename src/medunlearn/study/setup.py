"""The set-up every command shares (run, tune, train, unlearn, evaluate, the deletion service):
process settings, the engine, the dataset and the model cache of a config."""

from __future__ import annotations

from dataclasses import dataclass

from medunlearn.config import ExperimentConfig
from medunlearn.data import Dataset, load_dataset
from medunlearn.engine import Engine, configure_process
from medunlearn.progress import Progress
from medunlearn.store import Store, cache_root


@dataclass
class Session:
    """What a config's work runs with: its engine, its dataset and the model cache."""

    config: ExperimentConfig
    engine: Engine
    dataset: Dataset
    store: Store


def open_session(config: ExperimentConfig, progress: Progress | None = None) -> Session:
    """Configure the process for a config's runtime, then load its data and open its cache."""
    configure_process(config.runtime)
    engine = Engine(config.runtime, progress)
    dataset = load_dataset(config.data, cache_dir=config.runtime.cache_dir)
    return Session(config, engine, dataset, Store(cache_root(config.runtime.cache_dir)))
