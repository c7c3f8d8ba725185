"""Wall-clock timing shared by the benchmarks: a call's seconds, queued GPU work included, and
phases timed by wrapping the library's functions from outside (the library times nothing but
run times)."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import torch

from medunlearn.metrics import registry


def synchronize(device: torch.device) -> None:
    """Wait for queued GPU work so wall-clock timings are complete."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds one call of `fn` takes, device work included."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


def sync() -> None:
    """Wait for queued work on any initialised CUDA device."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        torch.cuda.synchronize()


class PhaseTimer:
    """Accumulates seconds per phase by wrapping module attributes for the duration of a run."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._restore: list[tuple[Any, str, Any]] = []

    def wrap(self, owner: Any, name: str, phase: Callable[..., str] | str) -> None:
        """Time every call of `owner.name` under `phase` (a name, or a function of the args)."""
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            key = phase(*args, **kwargs) if callable(phase) else phase
            sync()
            began = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                sync()
                self.seconds[key] += time.perf_counter() - began
                self.calls[key] += 1

        self._restore.append((owner, name, original))
        setattr(owner, name, timed)

    def wrap_metric(self, name: str, phase: str) -> None:
        """Time every computation of a registered metric (its deferred part too) under `phase`."""
        metric = registry.METRICS[name]
        holder = type("Holder", (), {})()
        holder.compute = metric.compute
        self.wrap(holder, "compute", phase)
        changes = {"compute": holder.compute}
        if metric.deferred is not None:
            holder.finish = metric.deferred.finish
            self.wrap(holder, "finish", phase)
            changes["deferred"] = dataclasses.replace(metric.deferred, finish=holder.finish)
        registry.METRICS[name] = dataclasses.replace(metric, **changes)
        self._restore.append((registry.METRICS, name, metric))

    @contextlib.contextmanager
    def active(self) -> Iterator[PhaseTimer]:
        """The wrappers stay in place inside the block only."""
        try:
            yield self
        finally:
            for owner, name, original in reversed(self._restore):
                if isinstance(owner, dict):
                    owner[name] = original
                else:
                    setattr(owner, name, original)
            self._restore.clear()
