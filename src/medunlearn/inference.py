"""The fastest way to run a model for inference on the machine at hand, found by timing it.

On a CPU a trained model can run as it is ("eager"), with its batch norms folded into its convs
("folded", `models.inference_model`), or folded with its conv regions on oneDNN tensors
("onednn", `models.onednn_layout`). Which is fastest depends on the processor and the model,
so `Engine.logits` runs the first chunks of each model structure and input shape on each path
in turn (one untimed warm-up chunk per path, then `samples` timed chunks each, interleaved,
over as many calls as that takes) and keeps the fastest for later calls (`Calibration`). Those
chunks are real work whose logits are kept, so calibration costs only the slower paths' extra
time on a few chunks, and every path gives the eager model's logits up to float rounding.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Sequence
from functools import partial

import torch
from torch import nn

from medunlearn.models import inference_model

# path name -> the module it runs (built anew for each call: the weights may have changed)
PATHS: dict[str, Callable[[nn.Module], nn.Module]] = {
    "eager": lambda model: model,
    "folded": inference_model,
    "onednn": partial(inference_model, onednn=True),
}


def inference_paths(cpu: bool, onednn: bool) -> tuple[str, ...]:
    """The paths to choose from: one on a GPU (folded), two or three on a CPU."""
    if not cpu:
        return ("folded",)
    return ("eager", "folded", "onednn") if onednn else ("eager", "folded")


def calibration_key(model: nn.Module, images: torch.Tensor, paths: Sequence[str]) -> Hashable:
    """What the fastest path depends on: the model's structure (module types and parameter
    shapes), the images' shape and dtype, the thread count and the paths to choose from."""
    structure = tuple((name, type(module)) for name, module in model.named_modules())
    shapes = tuple(tuple(p.shape) for p in model.parameters())
    return (structure, shapes, tuple(images.shape[1:]), images.dtype, torch.get_num_threads(),
            tuple(paths))  # fmt: skip


class Calibration:
    """The fastest inference path per calibration key, from interleaved timed chunks.

    `next_path` says which path runs the next chunk and whether to time it; `record` takes
    the seconds a timed chunk took. Once every path has `samples` timed chunks the one with the
    least seconds per image (its best chunk: noise on a shared machine only adds time) is kept
    in `choices` and every later chunk of that key runs on it.
    """

    def __init__(self, samples: int = 2, clock: Callable[[], float] = time.perf_counter):
        self.samples = samples
        self.clock = clock
        self.choices: dict[Hashable, str] = {}
        # key -> path -> seconds per image of its timed chunks
        self.timings: dict[Hashable, dict[str, list[float]]] = {}
        self._warm: dict[Hashable, set[str]] = {}  # key -> the paths that had a warm-up chunk

    def next_path(self, key: Hashable, paths: Sequence[str]) -> tuple[str, bool]:
        """(path, timed): the chosen path once there is one; else first a warm-up chunk of each
        path, then timed chunks of each in turn."""
        chosen = self.choices.get(key)
        if chosen is not None:
            return chosen, False
        if len(paths) == 1:
            self.choices[key] = paths[0]
            return paths[0], False
        timings = self.timings.setdefault(key, {path: [] for path in paths})
        warm = self._warm.setdefault(key, set())
        for path in paths:
            if path not in warm:
                warm.add(path)
                return path, False
        return min(paths, key=lambda path: len(timings[path])), True

    def record(self, key: Hashable, path: str, seconds: float, images: int) -> bool:
        """Take a timed chunk; returns whether it completed the calibration of its key."""
        timings = self.timings[key]
        timings[path].append(seconds / images)
        if any(len(times) < self.samples for times in timings.values()):
            return False
        self.choices[key] = min(timings, key=lambda name: min(timings[name]))
        return True

    def rates(self, key: Hashable) -> dict[str, float]:
        """Images per second of each path's best timed chunk."""
        return {path: 1 / min(times) for path, times in self.timings.get(key, {}).items() if times}

    def describe(self, key: Hashable) -> str:
        """The choice and each path's rate, for a log line."""
        rates = ", ".join(f"{path} {rate:.0f}" for path, rate in self.rates(key).items())
        return f"inference runs {self.choices.get(key)} (img/s: {rates})"
