"""Progress callbacks: stages call ``callback(done, total)``; the CLI supplies a rich bar."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

ProgressCallback = Callable[[int, int], None]


def no_progress(done: int, total: int) -> None:
    """The default callback: does nothing."""


@contextmanager
def make_progress(*, enabled: bool, label: str, console=None) -> Iterator[ProgressCallback]:
    """Yield a callback that drives a rich progress bar with items per second (or a no-op)."""
    if not enabled:
        yield no_progress
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeRemainingColumn()]
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task(label, total=None, rate="")

        def update(done: int, total: int) -> None:
            speed = bar.tasks[0].speed
            bar.update(task, completed=done, total=total, rate=f"{speed:.1f} img/s" if speed else "")

        yield update
