"""What only the data or the registry can tell about a config, checked before anything is
written (each field's own constraints were checked when the config was built)."""

from __future__ import annotations

from medunlearn.config import ConfigError, ExperimentConfig, TrainConfig
from medunlearn.data import Dataset
from medunlearn.forget import check_forget
from medunlearn.methods.registry import get_method, method_params, original_recipe
from medunlearn.roles import study_methods
from medunlearn.sharding import assign_layout, layout_seed


def _repeated(names: list[str]) -> list[str]:
    """The names that occur more than once."""
    return sorted({name for name in names if names.count(name) > 1})


def validate(config: ExperimentConfig, dataset: Dataset) -> None:
    """Each method's params and data, distinct method and forget-set names (a method labelled
    `original` would take the original model's row), the shards and slices of every original
    the study trains, and each forget spec on this dataset."""
    names = [method.display_name for method in study_methods(config)]
    if repeated := _repeated(names):
        raise ConfigError(
            f"more than one method is named {repeated}: give each a distinct 'label' "
            "(a method's row and files are named by it)"
        )
    for method in config.methods:
        method_params(method.name, method.params)
        get_method(method.name).check_data(dataset)
    recipes = [config.train, *(original_recipe(config.train, m) for m in config.methods)]
    for recipe in {str(recipe): recipe for recipe in recipes}.values():
        check_sharding(recipe, dataset, config.seeds)
    if config.train.sharded and (hard := [f.mode for f in config.forget if f.uses_difficulty]):
        raise ConfigError(
            f"forget mode '{hard[0]}' ranks images by the original model's training loss, which a "
            "model trained in shards and slices does not record; use another forget mode"
        )
    if repeated := _repeated([forget.display_name for forget in config.forget]):
        raise ConfigError(
            f"more than one forget set is named {repeated}: give each a distinct 'label' "
            "(a forget set's rows, Retrain reference and folder are named by it)"
        )
    if not config.seeds:
        raise ConfigError("seeds is empty: give at least one seed, e.g. [0]")
    for forget_config in config.forget:
        check_forget(dataset, forget_config, config.seeds[0])


def check_sharding(recipe: TrainConfig, dataset: Dataset, seeds: list[int]) -> None:
    """Refuse shards and slices the data cannot fill (more shards than a class has images or
    patients, more slices than a shard has): each seed's layout is drawn (a fraction of a
    second) before anything is trained."""
    if recipe.sharded:
        labels = dataset.train.labels.numpy()
        for seed in seeds:
            assign_layout(labels, recipe.shards, recipe.slices, layout_seed(seed), dataset.patients)
