"""Progress reporting: rich progress bars and epoch lines on a terminal, silence in tests."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


@dataclass(frozen=True)
class EpochReport:
    """What one finished epoch produced."""

    stage: str
    epoch: int
    epochs: int
    loss: float
    valid_score: float | None
    seconds: float


class Reporter(Protocol):
    """Where long-running work reports what it is doing."""

    def status(self, message: str) -> None:
        """One line of status."""

    def epoch(self, report: EpochReport) -> None:
        """One finished training epoch."""

    def task(self, description: str, total: int) -> contextlib.AbstractContextManager[Callable[[int], None]]:
        """A progress bar over `total` units; yields `advance(n)`."""


class SilentReporter:
    """Reports nothing (library use and tests)."""

    def status(self, message: str) -> None:
        """Ignore."""

    def epoch(self, report: EpochReport) -> None:
        """Ignore."""

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """Yield a no-op advance."""
        yield lambda advance: None


class ConsoleReporter:
    """Rich output on stderr, so stdout stays machine-readable."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)

    def status(self, message: str) -> None:
        """Print a dimmed status line."""
        self.console.print(f"[dim]·[/dim] {message}")

    def epoch(self, report: EpochReport) -> None:
        """Print one epoch line."""
        valid = f"  valid {report.valid_score:.4f}" if report.valid_score is not None else ""
        self.console.print(
            f"  [cyan]{report.stage}[/cyan] epoch {report.epoch:>3}/{report.epochs}  loss {report.loss:.4f}{valid}  ({report.seconds:.1f}s)"
        )

    @contextlib.contextmanager
    def task(self, description: str, total: int) -> Iterator[Callable[[int], None]]:
        """A transient progress bar."""
        columns = (TextColumn("  {task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
        with Progress(*columns, console=self.console, transient=True) as progress:
            task_id = progress.add_task(description, total=total)
            yield lambda advance: progress.advance(task_id, advance)
