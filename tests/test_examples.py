"""The example configs: each is a valid config, and those of the analyses ask for what their
README section says."""

from pathlib import Path

import pytest

from medunlearn.config import load_config

FOLDER = Path(__file__).parents[1] / "examples"
EXAMPLES = sorted(FOLDER.rglob("*.yaml"))  # the tuned recipes in examples/recipes/ too


@pytest.mark.parametrize("path", EXAMPLES, ids=[str(p.relative_to(FOLDER)) for p in EXAMPLES])
def test_every_example_is_a_valid_config(path: Path) -> None:
    assert load_config(path).methods


def test_the_analyses_configs() -> None:
    folder = FOLDER
    sizes = load_config(folder / "forget-size-bloodmnist.yaml").forget
    assert [(f.mode, f.fraction) for f in sizes] == [
        ("random", x) for x in (0.01, 0.05, 0.1, 0.2, 0.5)
    ]
    kinds = load_config(folder / "easy-hard-bloodmnist.yaml").forget
    assert [(f.mode, f.fraction, f.pool) for f in kinds] == [
        ("easy", 0.05, 0.1), ("random", 0.05, 0.1), ("hard", 0.05, 0.1)
    ]  # fmt: skip


def test_the_sisa_config_asks_for_the_shards_and_requests_of_its_readme_section() -> None:
    config = load_config(FOLDER / "sisa-bloodmnist.yaml")
    assert (config.train.epochs, config.model.arch, config.model.width) == (12, "cnn", 32)
    sisa = [m.params for m in config.methods if m.name == "sisa"]
    assert sisa == [{"shards": s, "slices": 4} for s in (1, 2, 4, 8)]
    assert [(f.mode, f.count) for f in config.forget] == [
        ("random", 1), ("random", 10), ("random", 100), ("patients", 1), ("patients", 10)
    ]  # fmt: skip
    assert config.data.patients == "synthetic"


def test_a_shipped_recipe_names_no_machines_folders() -> None:
    for path in sorted((FOLDER / "recipes").glob("*.yaml")):
        config = load_config(path)
        assert config.runtime.cache_dir is None and config.data.root is None, path
