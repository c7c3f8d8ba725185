"""The method registry: names, hyper-parameters, errors, and the shared entry point."""

import pytest

from medunlearn.config import ConfigError, MethodConfig
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
