"""``python tests/faulty_cli.py ARGS``: the photodedup CLI with test hooks: faults injected into apply and
undo, and a pause after a catalog write.

Test-only: the switches live here, not in the product. ``helpers.run_cli`` and ``helpers.start_cli``
use this runner whenever their environment carries one of them:

- ``PHOTODEDUP_TEST_APPLY_KILL=STAGE:N`` SIGKILLs the process at that stage of the N-th move (a crash
  at the worst moment); ``PHOTODEDUP_TEST_APPLY_COPY`` moves by copy as if the trash were on another
  filesystem.
- ``PHOTODEDUP_TEST_APPLY_EDIT=STAGE:N:MODE:PATH`` edits PATH at that stage of the N-th move as a person
  would while apply runs, keeping its size and mtime (MODE ``inplace``: rewrite the bytes; ``rename``: an
  editor's save, a new file renamed over the path); the edited file ends with ``EDITED``.
- ``PHOTODEDUP_TEST_PAUSE=METHOD:N`` (``record_files`` for scan, ``add_embeddings`` for embed): once the
  catalog has committed the N-th such write, print ``PHOTODEDUP_TEST_PAUSED`` on stdout and wait for a
  signal (SIGINT: Ctrl-C there; SIGKILL: a crash there; SIGUSR1: go on). A test that signals a running
  command then never races it: the command cannot finish first.
"""

from __future__ import annotations

import os
import signal
import sys
import time

from photodedup import moves
from photodedup.catalog import Catalog
from photodedup.cli import main

KILL, COPY, EDIT = "PHOTODEDUP_TEST_APPLY_KILL", "PHOTODEDUP_TEST_APPLY_COPY", "PHOTODEDUP_TEST_APPLY_EDIT"
PAUSE, PAUSED = "PHOTODEDUP_TEST_PAUSE", "PHOTODEDUP_TEST_PAUSED"  # helpers.PAUSED
TASK_PAUSE = "PHOTODEDUP_TEST_TASK_PAUSE"


def _kill_at(stage: str, index: int) -> None:
    if os.environ.get(KILL) == f"{stage}:{index}":
        os.kill(os.getpid(), signal.SIGKILL)
    when, _, rest = os.environ.get(EDIT, "").partition(":")
    count, _, rest = rest.partition(":")
    mode, _, path = rest.partition(":")
    if path and f"{when}:{count}" == f"{stage}:{index}":
        _edit(path, mode)


def _edit(path: str, mode: str) -> None:
    before = os.stat(path)
    data = open(path, "rb").read()
    data = data[:-6] + b"EDITED"
    if mode == "rename":
        temp = path + ".editor-save"
        with open(temp, "wb") as handle:
            handle.write(data)
        os.utime(temp, ns=(before.st_atime_ns, before.st_mtime_ns))
        os.rename(temp, path)
    else:
        with open(path, "r+b") as handle:
            handle.write(data)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _pause_after(method: str, count: int) -> None:
    real = getattr(Catalog, method)
    calls = 0

    def wrapped(self, *args, **kwargs):
        nonlocal calls
        result = real(self, *args, **kwargs)
        calls += 1
        if calls == count:
            go_on = []
            signal.signal(signal.SIGUSR1, lambda *_: go_on.append(True))  # set before the line: no race
            print(PAUSED, flush=True)
            while not go_on:  # SIGINT raises KeyboardInterrupt in here, as Ctrl-C would
                time.sleep(0.01)
        return result

    setattr(Catalog, method, wrapped)


def _pause_ray_tasks(folder: str) -> None:
    """Every Ray task and warm worker's chunk announces its worker and waits for ``folder/go`` (defined here, in
    ``__main__``: Ray's pickler sends the function and the class themselves, so the worker runs them without
    importing this file)."""
    from photodedup import executor

    def run_chunk(fn, jobs):
        import os
        import time
        from pathlib import Path

        Path(folder, f"task-{os.getpid()}").write_text(str(os.getpid()))
        while not Path(folder, "go").exists():  # a SIGKILL from the test ends the worker in here
            time.sleep(0.01)
        return [fn(job) for job in jobs]

    class PausingRunner(executor._ChunkRunner):  # the warm workers' chunks pause the same way
        def _run_chunk(self, fn, jobs):
            return run_chunk(fn, jobs)

    executor._run_chunk = run_chunk
    executor._ChunkRunner = PausingRunner  # another class: other warm workers than the unpaused runs' ones


if __name__ == "__main__":
    moves.checkpoint = _kill_at
    moves.LINK_FIRST = not os.environ.get(COPY)
    if os.environ.get(PAUSE):
        # Ctrl-C as a terminal's foreground command has it: a test process (pytest-xdist's worker after some
        # earlier test) may hand its children SIGINT ignored, and then the test's SIGINT never arrives
        signal.signal(signal.SIGINT, signal.default_int_handler)
        method, count = os.environ[PAUSE].split(":")
        _pause_after(method, int(count))
    if os.environ.get(TASK_PAUSE):
        _pause_ray_tasks(os.environ[TASK_PAUSE])
    sys.argv[0] = "photodedup"
    main()
