"""The method registry: names, hyper-parameters, errors, and the shared entry point."""

import copy

import numpy as np
import pytest

from medunlearn.config import ConfigError, MethodConfig
from medunlearn.forget import ForgetSet
from medunlearn.methods import METHODS, UnlearnData, unlearn
from medunlearn.methods.registry import get_method, method_params
from medunlearn.methods.salun import SalUnParams


def test_registered_methods():
    assert {"retrain", "ft", "ga", "rl", "l1-sparse", "neggrad+", "salun"} <= set(METHODS)
    for name, method in METHODS.items():
        assert method.name == name
        assert method.summary


def test_unknown_method(unlearn_data, context):
    with pytest.raises(ConfigError, match="unknown method 'scrubb'") as raised:
        unlearn(unlearn_data.original, unlearn_data, MethodConfig("scrubb"), context)
    assert "salun" in str(raised.value)
    with pytest.raises(ConfigError, match="scrubb"):
        get_method("scrubb")


@pytest.mark.parametrize("name", ["salun", "rl", "ft", "ga", "retrain"])
def test_unknown_hyper_parameter(unlearn_data, context, name):
    with pytest.raises(ConfigError, match="ratoi"):
        unlearn(unlearn_data.original, unlearn_data, MethodConfig(name, {"ratoi": 0.5}), context)


def test_wrong_hyper_parameter_type():
    with pytest.raises(ConfigError, match=r"methods\.salun\.params\.epochs"):
        method_params("salun", {"epochs": "ten"})


def test_params_defaults_and_values():
    params = method_params("salun", {"ratio": 0.3, "epochs": 2})
    assert isinstance(params, SalUnParams)
    assert (params.ratio, params.epochs, params.lr) == (0.3, 2, SalUnParams().lr)
    assert (params.momentum, params.weight_decay) == (0.9, 5e-4)


def test_empty_retain_refused(blood, original, context):
    class Everything(ForgetSet):
        def __post_init__(self):  # skip the checks to build the impossible case
            self.forget_ids = np.asarray(self.forget_ids, dtype=np.int64)

    everything = Everything(np.arange(len(blood.train)), len(blood.train), "bloodmnist", "x")
    data = UnlearnData(blood, everything, original)
    with pytest.raises(ValueError, match="retain set is empty"):
        unlearn(copy.deepcopy(original), data, MethodConfig("ft"), context)
