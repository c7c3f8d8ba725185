"""Progress reporting: silent for scripts and tests, rich progress bars for the command line."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.progress import Progress as RichBars


class Task(Protocol):
    """One unit of tracked work."""

    def advance(self, steps: int = 1) -> None: ...

    def describe(self, description: str) -> None: ...


class Progress(Protocol):
    """Where long work reports its steps and messages."""

    def task(self, description: str, total: int | None) -> contextlib.AbstractContextManager: ...

    def log(self, message: str) -> None: ...


class _NullTask:
    def advance(self, steps: int = 1) -> None:
        """Ignore the step."""

    def describe(self, description: str) -> None:
        """Ignore the description."""


class NullProgress:
    """Reports nothing: the default of the Python API."""

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Task]:
        """A task that ignores its steps."""
        yield _NullTask()

    def log(self, message: str) -> None:
        """Ignore the message."""


class _RichTask:
    def __init__(self, bars: RichBars, task_id: int) -> None:
        self.bars, self.task_id = bars, task_id

    def advance(self, steps: int = 1) -> None:
        """Move the bar on."""
        self.bars.advance(self.task_id, steps)

    def describe(self, description: str) -> None:
        """Change the bar's description."""
        self.bars.update(self.task_id, description=description)


class RichProgress:
    """Progress bars and messages on a rich console (stderr), one bar per running task."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.bars = RichBars(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )

    def __enter__(self) -> RichProgress:
        self.bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bars.stop()

    @contextlib.contextmanager
    def task(self, description: str, total: int | None) -> Iterator[Task]:
        """A bar that lives while the task runs."""
        task_id = self.bars.add_task(description, total=total)
        try:
            yield _RichTask(self.bars, task_id)
        finally:
            self.bars.remove_task(task_id)

    def log(self, message: str) -> None:
        """A line above the bars."""
        self.bars.console.print(message)


class StudyView:
    """Where a whole study stands: jobs done, running and left, and an ETA from the finished
    jobs' wall times (by kind: an original's training takes longer than a row's), shared out
    over the executor's workers."""

    def __init__(self, kinds: list[str], workers: int) -> None:
        self.left = list(kinds)
        self.workers = max(1, workers)
        self.times: dict[str, list[float]] = {}
        self.done = 0

    def landed(self, kind: str, seconds: float) -> None:
        """A job of `kind` finished after `seconds`."""
        self.left.remove(kind)
        self.times.setdefault(kind, []).append(seconds)
        self.done += 1

    def eta(self) -> float | None:
        """Seconds until the study ends, or None before any job of a kind still left finished
        (an unknown kind takes the mean of all finished jobs)."""
        every = [t for times in self.times.values() for t in times]
        if not every:
            return None
        mean = {kind: sum(times) / len(times) for kind, times in self.times.items()}
        overall = sum(every) / len(every)
        return sum(mean.get(kind, overall) for kind in self.left) / self.workers

    def describe(self, running: int) -> str:
        """`study: 12/40 done, 2 running, 26 waiting, ETA 14.2 min`."""
        eta = self.eta()
        waiting = len(self.left) - running
        text = f"study: {self.done}/{self.done + len(self.left)} done, {running} running, "
        return text + f"{waiting} waiting, ETA {'?' if eta is None else f'{eta / 60:.1f} min'}"
