"""The built-in analyses, in the order the report shows them (registering each is importing
its module; `base.registered()` imports this one)."""

from medunlearn.analyses import (
    augmentation,
    clinical,
    core,
    difficulty,
    forget_size,
    privacy,
    sequential,
    sharding,
    subgroups,
    tuning_overhead,
)

MODULES = (
    sequential,  # first: a sequential study's report leads with it (it applies to no other)
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
