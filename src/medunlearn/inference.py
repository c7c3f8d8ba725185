"""How a trained model runs for evaluation: one path per study, chosen without timing anything.

A model can run as it is ("eager"), with its batch norms folded into its convs ("folded",
`models.inference_model`), or folded with its conv regions on oneDNN tensors ("onednn", float32
on a CPU). Each gives the eager model's logits up to float rounding, and they round
differently, so a study runs every model on one path and records it (`runtime.inference_path`):
two runs of one config then give the same numbers to the last bit, whichever executor ran them.
An earlier version picked the path by timing each model's first chunks, which could pick
another path in another process, and changed a result in the eighth digit.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from torch import nn

from medunlearn.config import ConfigError
from medunlearn.models import inference_model

# path name -> the module it runs (built anew for each call: the weights may have changed)
PATHS: dict[str, Callable[[nn.Module], nn.Module]] = {
    "eager": lambda model: model,
    "folded": inference_model,
    "onednn": partial(inference_model, onednn=True),
}


def resolve_path(requested: str, cpu: bool, onednn: bool) -> str:
    """The path a study runs: the one asked for, or for `auto` the device's own (onednn for
    float32 on a CPU with oneDNN, folded otherwise); `onednn` is refused where it cannot run
    (a GPU, bf16, a CPU build without oneDNN)."""
    if requested == "auto":
        return "onednn" if cpu and onednn else "folded"
    if requested == "onednn" and not (cpu and onednn):
        raise ConfigError(
            "runtime.inference_path 'onednn' runs float32 on a CPU with oneDNN only; "
            "use 'folded' (or 'auto') here"
        )
    if requested not in PATHS:
        raise ConfigError(f"runtime.inference_path must be one of {['auto', *PATHS]}")
    return requested
