"""Progress callbacks: stages call ``callback(done, total)``; the CLI supplies a rich bar."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

ProgressCallback = Callable[[int, int], None]
MIN_RATE_SECONDS = 1.0


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
        first: list[tuple[float, int]] = []

        def update(done: int, total: int) -> None:
            now = time.monotonic()
            first[:] = first or [(now, done)]
            (started, at_start) = first[0]
            elapsed = now - started
            # no rate before a second has passed: the first batch (or work resumed from stored crops)
            # arriving at once gave "4000 img/s"
            rate = f"{(done - at_start) / elapsed:.1f} img/s" if elapsed >= MIN_RATE_SECONDS else ""
            bar.update(task, completed=done, total=total, rate=rate)

        yield update
