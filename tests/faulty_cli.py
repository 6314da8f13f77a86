"""``python tests/faulty_cli.py ARGS``: the photodedup CLI with faults injected into apply and undo.

Test-only: the switches live here, not in the product. ``PHOTODEDUP_TEST_APPLY_KILL=STAGE:N`` SIGKILLs
the process at that stage of the N-th move (a crash at the worst moment); ``PHOTODEDUP_TEST_APPLY_COPY``
moves by copy as if the trash were on another filesystem; ``PHOTODEDUP_TEST_APPLY_EDIT=STAGE:N:MODE:PATH``
edits PATH at that stage of the N-th move as a person would while apply runs, keeping its size and mtime
(MODE ``inplace``: rewrite the bytes; ``rename``: an editor's save, a new file renamed over the path); the
edited file ends with ``EDITED``. ``helpers.run_cli`` uses this runner whenever its environment carries one.
"""

from __future__ import annotations

import os
import signal

from photodedup import apply
from photodedup.cli import main

KILL, COPY, EDIT = "PHOTODEDUP_TEST_APPLY_KILL", "PHOTODEDUP_TEST_APPLY_COPY", "PHOTODEDUP_TEST_APPLY_EDIT"


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


if __name__ == "__main__":
    apply.checkpoint = _kill_at
    apply.LINK_FIRST = not os.environ.get(COPY)
    main()
