"""The method registry: names, hyper-parameters, errors, and the shared entry point."""

import dataclasses

import pytest

from medunlearn.config import Checked, ConfigError, MethodConfig, Recipe
from medunlearn.methods import METHODS, unlearn
from medunlearn.methods.registry import get_method, method_params
from medunlearn.methods.salun import SalUnParams


def test_registered_methods():
    assert {"retrain", "ft", "ga", "rl", "l1-sparse", "neggrad+", "salun"} <= set(METHODS)
    for name, method in METHODS.items():
        assert method.name == name
        assert method.summary


def test_unknown_method(unlearn_data, context, original):
    with pytest.raises(ConfigError, match="unknown method 'scrubb'") as raised:
        unlearn(original, unlearn_data, MethodConfig("scrubb"), context)
    assert "salun" in str(raised.value)
    with pytest.raises(ConfigError, match="scrubb"):
        get_method("scrubb")


@pytest.mark.parametrize("name", ["salun", "rl", "ft", "ga", "retrain"])
def test_unknown_hyper_parameter(unlearn_data, context, name, original):
    with pytest.raises(ConfigError, match="ratoi"):
        unlearn(original, unlearn_data, MethodConfig(name, {"ratoi": 0.5}), context)


def test_wrong_hyper_parameter_type():
    with pytest.raises(ConfigError, match=r"methods\.salun\.params\.epochs"):
        method_params("salun", {"epochs": "ten"})


def test_params_defaults_and_values():
    params = method_params("salun", {"ratio": 0.3, "epochs": 2})
    assert isinstance(params, SalUnParams)
    assert (params.ratio, params.epochs, params.lr) == (0.3, 2, SalUnParams().lr)
    assert (params.momentum, params.weight_decay) == (0.9, 5e-4)


# a value each common field refuses, and the rule its message states
INVALID = {
    "epochs": (-1, "must be >= "),  # 0 for methods, 1 for Retrain
    "lr": (0.0, "must be > 0"),
    "batch_size": (0, "must be >= 1"),
    "momentum": (1.5, "must be in [0, 1]"),
    "weight_decay": (-1e-4, "must be >= 0"),
    "schedule": ("linear", "must be one of"),
    "augment": ("typo", "must be one of"),
    "loader": ("typo", "must be one of"),
    "entropy_on": ("typo", "must be one of"),
}
COMMON_CHECKS = [
    (name, field)
    for name, method in sorted(METHODS.items())
    for field in (f.name for f in dataclasses.fields(method.params))
    if field in INVALID
]


@pytest.mark.parametrize(("name", "field"), COMMON_CHECKS)
def test_every_method_refuses_invalid_common_fields(name, field):
    """Every registered method, whatever its params class inherits, checks each common field
    once when its params are built, with one message shape."""
    value, rule = INVALID[field]
    with pytest.raises(ConfigError) as raised:
        method_params(name, {field: value})
    message = str(raised.value)
    assert message.startswith(f"methods.{name}.params.{field} {rule}")
    assert message.endswith(f"; got {value!r}")


def test_every_gradient_method_has_the_common_fields_checked():
    """Every params class is checked at construction, and one that trains for epochs carries
    the whole SGD recipe (Retrain's overrides of the training recipe excepted): a method whose
    params skipped the recipe would escape the common checks."""
    for name, method in METHODS.items():
        fields = {f.name for f in dataclasses.fields(method.params)}
        assert issubclass(method.params, Checked), name
        assert "augment" in fields, name
        if "epochs" in fields and name != "retrain":
            assert issubclass(method.params, Recipe), name


def test_salun_cra_checks_its_parent_fields():
    with pytest.raises(ConfigError, match=r"methods\.salun-cra\.params\.loader must be one of"):
        method_params("salun-cra", {"loader": "typo"})
    with pytest.raises(ConfigError, match=r"methods\.salun-entropy\.params\.ratio must be in"):
        method_params("salun-entropy", {"ratio": 2.0})
