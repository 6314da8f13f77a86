"""Clean up after a tritonserver whose launcher died: ``python -m photodedup.triton.watchdog FD PID WORKDIR``.

The launcher starts Triton with ``PR_SET_PDEATHSIG`` (the kernel sends it SIGTERM when the launcher
dies, however it dies) and this small process beside it, holding the read end of a pipe whose write
end only the launcher has. A clean stop writes one byte first; end of file without it means the
launcher is gone: make sure Triton's process group ends (SIGTERM, then SIGKILL after
``exit_timeout``), then remove the launcher's temporary folder. Nothing else is ever touched.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return handle.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return False


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except OSError:
        pass


def watch(fd: int, pid: int, workdir: str, exit_timeout: float) -> None:
    said = os.read(fd, 1)
    if said:  # the launcher stopped Triton itself and removes its folder
        return
    if _alive(pid):
        _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + exit_timeout
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            _signal_group(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.1)
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover - run as a process by TritonServer.start
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C for the launcher is not for its cleaner
    watch(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], float(sys.argv[4]))
