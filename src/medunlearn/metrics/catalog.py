"""The built-in metrics and attacks, in the order their columns appear in rows and tables
(registering each is importing its module; `registry.registered()` imports this one)."""

from medunlearn.metrics import accuracy, calibration, clinical
from medunlearn.metrics.attacks import (
    forgetting_quality,
    lira,
    relearn,
    rmia,
    svc,
    threshold,
    ulira,
)

MODULES = (
    accuracy,
    clinical,
    calibration,
    svc,
    threshold,
    lira,
    rmia,
    ulira,
    forgetting_quality,
    relearn,
)
