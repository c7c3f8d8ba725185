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


class Progress(Protocol):
    """Where long work reports its steps and messages."""

    def task(self, description: str, total: int | None) -> contextlib.AbstractContextManager: ...

    def log(self, message: str) -> None: ...


class _NullTask:
    def advance(self, steps: int = 1) -> None:
        """Ignore the step."""


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
