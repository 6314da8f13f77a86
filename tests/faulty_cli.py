"""``python tests/faulty_cli.py ARGS``: the photodedup CLI with faults injected into apply and undo.

Test-only: the switches live here, not in the product. ``PHOTODEDUP_TEST_APPLY_KILL=STAGE:N`` SIGKILLs
the process at that stage of the N-th move (a crash at the worst moment); ``PHOTODEDUP_TEST_APPLY_COPY``
moves by copy as if the trash were on another filesystem. ``helpers.run_cli`` uses this runner whenever
its environment carries one of them.
"""

from __future__ import annotations

import os
import signal

from photodedup import apply
from photodedup.cli import main

KILL, COPY = "PHOTODEDUP_TEST_APPLY_KILL", "PHOTODEDUP_TEST_APPLY_COPY"


def _kill_at(stage: str, index: int) -> None:
    if os.environ.get(KILL) == f"{stage}:{index}":
        os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    apply.checkpoint = _kill_at
    apply.LINK_FIRST = not os.environ.get(COPY)
    main()
