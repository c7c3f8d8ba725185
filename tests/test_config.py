"""Config: YAML round trip, --set overrides, and errors that name the offending key."""

from pathlib import Path

import pytest

from medunlearn.config import (
    ConfigError,
    DataConfig,
    ExperimentConfig,
    ForgetConfig,
    MethodConfig,
    ModelConfig,
    RuntimeConfig,
    TrainConfig,
    apply_overrides,
    default_experiment,
    dump_config,
    load_config,
)
from medunlearn.store import cache_key


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    return path


def _full_config() -> ExperimentConfig:
    """A config that sets a value in every section, lists included."""
    return ExperimentConfig(
        name="round-trip",
        data=DataConfig(dataset="dermamnist", size=64, file_size=28, root="/data", binary=True,
                        positive=[0, 1, 4]),
        model=ModelConfig(arch="cnn", width=8),
        train=TrainConfig(epochs=3, lr=0.05, batch_size=32, weight_decay=1e-4,
                          schedule="multistep", augment="none", class_weighted=True),
        forget=[
            ForgetConfig(mode="random", fraction=0.2),
            ForgetConfig(mode="class", classes=[2, 3]),
            ForgetConfig(mode="skewed", fraction=0.5, positive_share=0.25),
        ],
        methods=[
            MethodConfig("retrain"),
            MethodConfig("salun", {"epochs": 2, "lr": 0.013, "ratio": 0.3}, label="salun-30"),
        ],
        seeds=[0, 1, 2],
        runtime=RuntimeConfig(device="cpu", threads=2, bf16=True, cache_dir="/tmp/cache"),
    )  # fmt: skip


@pytest.mark.parametrize("config", [default_experiment(), ExperimentConfig(), _full_config()])
def test_yaml_round_trip(tmp_path, config):
    path = _write(tmp_path, dump_config(config))
    loaded = load_config(path)
    assert loaded == config
    assert isinstance(loaded.train.lr, float)
    assert all(isinstance(m, MethodConfig) for m in loaded.methods)
    assert cache_key("config", loaded) == cache_key("config", config)


def test_no_file_gives_the_default_experiment():
    assert load_config(None) == default_experiment()


def test_partial_yaml_keeps_defaults(tmp_path):
    path = _write(tmp_path, "train:\n  epochs: 3\nmethods:\n  - name: ft\n")
    config = load_config(path)
    assert config.train.epochs == 3
    assert config.train.lr == TrainConfig().lr
    assert config.methods == [MethodConfig("ft")]
    assert config.data == DataConfig()


def test_set_overrides():
    config = load_config(
        None,
        ["train.epochs=1", "methods.salun.params.ratio=0.3", "forget.0.fraction=0.5",
         "data.root=/somewhere", "seeds=[3, 4]", "runtime.bf16=true"],
    )  # fmt: skip
    assert config.train.epochs == 1
    assert isinstance(config.train.epochs, int)
    salun = next(m for m in config.methods if m.name == "salun")
    assert salun.params["ratio"] == 0.3
    assert salun.params["epochs"] == default_experiment().methods[-1].params["epochs"]
    assert config.forget[0].fraction == 0.5
    assert config.data.root == "/somewhere"
    assert config.seeds == [3, 4]
    assert config.runtime.bf16 is True
    # everything else is untouched
    default = default_experiment()
    assert config.model == default.model
    assert [m.name for m in config.methods] == [m.name for m in default.methods]


def test_set_adds_a_new_method_param_and_reads_a_file(tmp_path):
    path = _write(tmp_path, "methods:\n  - name: rl\n")
    config = load_config(path, ["methods.rl.params.lr=0.02", "methods.0.label=rl-fast"])
    assert config.methods == [MethodConfig("rl", {"lr": 0.02}, label="rl-fast")]


def test_set_applies_to_a_given_config():
    config = apply_overrides(ExperimentConfig(), ["model.arch=cnn", "model.width=4"])
    assert config.model == ModelConfig(arch="cnn", width=4)


@pytest.mark.parametrize(
    ("yaml_text", "key"),
    [
        ("train:\n  epoch: 3\n", "epoch"),
        ("trian:\n  epochs: 3\n", "trian"),
        ("forget:\n  - mode: random\n    fractoin: 0.1\n", "fractoin"),
        ("methods:\n  - name: ft\n    param: {}\n", "param"),
        ("runtime:\n  gpu: true\n", "gpu"),
    ],
)
def test_unknown_yaml_key_is_named(tmp_path, yaml_text, key):
    with pytest.raises(ConfigError, match=key):
        load_config(_write(tmp_path, yaml_text))


@pytest.mark.parametrize(
    ("yaml_text", "where"),
    [
        ("train:\n  epochs: many\n", "train.epochs"),
        ("train:\n  epochs: 1.5\n", "train.epochs"),
        ("train:\n  lr: true\n", "train.lr"),
        ("data:\n  binary: 'yes'\n", "data.binary"),
        ("data:\n  dataset: [bloodmnist]\n", "data.dataset"),
        ("methods:\n  - name: ft\n    params: 3\n", "params"),
        ("seeds: [0, one]\n", "seeds"),
        ("train: 5\n", "train"),
        ("model:\n  arch: null\n", "model.arch"),
    ],
)
def test_wrong_type_is_named(tmp_path, yaml_text, where):
    with pytest.raises(ConfigError, match=where.replace(".", r"\.")):
        load_config(_write(tmp_path, yaml_text))


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("train.epoch=1", "epoch"),
        ("trains.epochs=1", "trains"),
        ("train.epochs=abc", "train.epochs"),
        ("forget.7.fraction=0.5", "7"),
        ("methods.nosuch.params.lr=1", "nosuch"),
        ("model.width.x=1", "width"),
    ],
)
def test_bad_override_is_named(override, key):
    with pytest.raises(ConfigError, match=key):
        load_config(None, [override])


@pytest.mark.parametrize("override", ["train.epochs", "=1", "methods.0=ft"])
def test_malformed_override(override):
    with pytest.raises(ConfigError):
        load_config(None, [override])


def test_missing_and_invalid_files(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    with pytest.raises(ConfigError, match="YAML"):
        load_config(_write(tmp_path, "train: [unclosed\n"))


def test_forget_display_name():
    assert ForgetConfig(mode="random", fraction=0.1).display_name == "random-10pct"
    assert ForgetConfig(mode="class", classes=[2, 5]).display_name == "class-2-5"
    assert ForgetConfig(mode="ids", ids_file="x/ids.txt").display_name == "ids-ids"
    assert ForgetConfig(mode="ids", ids_file="x/ids.txt", label="alice").display_name == "alice"


def test_constraints_are_checked_when_a_config_is_built():
    with pytest.raises(ConfigError, match=r"^epochs must be >= 1; got 0$"):
        TrainConfig(epochs=0)
    with pytest.raises(ConfigError, match=r"^train\.momentum must be in \[0, 1\]; got 2\.0$"):
        load_config(None, ["train.momentum=2"])
    with pytest.raises(ConfigError, match=r"^runtime\.eval_batch_size must be >= 1; got 0$"):
        load_config(None, ["runtime.eval_batch_size=0"])
