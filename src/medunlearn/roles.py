"""The reference rows of every study: the original model (nothing done) and Retrain (the gold
standard), told apart from the unlearning methods by their role, never by a row's label."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from medunlearn.config import ExperimentConfig, MethodConfig

Role = Literal["original", "retrain", "method"]
ORIGINAL: Role = "original"
RETRAIN: Role = "retrain"
METHOD: Role = "method"
REFERENCES: tuple[Role, ...] = (ORIGINAL, RETRAIN)

# the registry name of Retrain, and the pseudo-method of the original model's row
RETRAIN_METHOD = MethodConfig(RETRAIN)
ORIGINAL_METHOD = MethodConfig(ORIGINAL)


def role_of(method: MethodConfig) -> Role:
    """The role of a method of a study: the original model, Retrain, or an unlearning method."""
    if method.name == ORIGINAL:
        return ORIGINAL
    return RETRAIN if method.name == RETRAIN else METHOD


def row_role(row: Mapping) -> Role:
    """A result row's role (rows written before roles were recorded: by their method's name)."""
    return row.get("role") or role_of(MethodConfig(str(row["method"])))


def is_reference(row: Mapping) -> bool:
    """Whether a row is the original model's or Retrain's."""
    return row_role(row) in REFERENCES


def retrain_of(config: ExperimentConfig) -> MethodConfig:
    """The config's Retrain (its params and label), else Retrain with the training recipe."""
    return next((m for m in config.methods if m.name == RETRAIN), RETRAIN_METHOD)


def study_methods(config: ExperimentConfig) -> list[MethodConfig]:
    """Every row of a forget set: the original model's, Retrain's (always: it is the reference),
    then the unlearning methods in the config's order."""
    methods = [m for m in config.methods if m.name != RETRAIN]
    return [ORIGINAL_METHOD, retrain_of(config), *methods]
