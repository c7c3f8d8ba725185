"""The built-in analyses, in the order the report shows them (registering each is importing
its module; `base.registered()` imports this one)."""

from medunlearn.analyses import (
    augmentation,
    clinical,
    core,
    difficulty,
    forget_size,
    privacy,
    sharding,
    subgroups,
    tuning_overhead,
)

MODULES = (
    core,
    clinical,
    privacy,
    augmentation,
    difficulty,
    forget_size,
    subgroups,
    tuning_overhead,
    sharding,
)
