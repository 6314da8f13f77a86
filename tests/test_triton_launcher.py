"""``serve --engine triton`` as an attacker or a crash sees it (issue 13): a launcher killed with
SIGKILL takes its tritonserver and temporary folder with it; ``--token`` is refused, not ignored.

A real tritonserver (the wheel's, Python backend) on the tiny stand-in model of ``test_triton.py``.
"""

from __future__ import annotations

import os
import signal
import tempfile
import time
from pathlib import Path

import psutil
import pytest
from helpers import cli_command, run_cli
from test_triton import small_repository  # noqa: F401 - a fixture (the tiny stand-in model)

from photodedup.triton.config import CPU_MODEL


def test_token_is_refused_with_triton_not_ignored(small_repository):  # noqa: F811
    result = run_cli("serve", "--engine", "triton", "--model-repository", small_repository, "--token", "secret",
                     timeout=60)
    assert result.returncode == 3
    assert any(line.startswith("Error: --token does not protect Triton") for line in result.stderr.splitlines())
    assert "docs/TRITON.md" in result.stderr


def test_a_killed_launcher_takes_tritonserver_and_its_folder_with_it(small_repository, server_processes):  # noqa: F811
    pytest.importorskip("pytriton")
    http, grpc, metrics = (server_processes.free_port() for _ in range(3))
    cmd = cli_command("serve", "--engine", "triton", "--model-repository", small_repository,
                      "--http-port", http, "--grpc-port", grpc, "--metrics-port", metrics)
    launcher = server_processes.start(cmd, f"http://127.0.0.1:{http}/v2/models/{CPU_MODEL}/ready", timeout=240)
    family = psutil.Process(launcher.proc.pid).children(recursive=True)
    (triton,) = [p for p in family if p.name() == "tritonserver"]
    backends = next(a.split("=", 1)[1] for a in triton.cmdline() if a.startswith("--backend-directory="))
    folders = {str(Path(backends).parent)}  # the launcher's own work folder (the stub's copy lives there)
    assert Path(backends).is_relative_to(tempfile.gettempdir()) and os.path.isdir(backends)

    os.kill(launcher.proc.pid, signal.SIGKILL)
    launcher.proc.wait()
    deadline = time.monotonic() + 300  # only guards a hang
    while time.monotonic() < deadline:
        left = [p for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
        if not left and not any(os.path.exists(f) for f in folders):
            break
        time.sleep(0.2)
    assert [p.name() for p in family if p.is_running() and p.status() != psutil.STATUS_ZOMBIE] == []
    assert not any(os.path.exists(f) for f in folders)


@pytest.mark.parametrize("name, protocol", [("triton-http", "http"), ("triton-grpc", "grpc")])
def test_a_triton_shutting_down_is_reported_as_such(small_repository, server_processes, name,  # noqa: F811
                                                    protocol):
    import numpy as np
    from test_triton import start_small

    from photodedup.backends import get_backend
    from photodedup.errors import BackendUnavailableError

    server = start_small(small_repository, server_processes, models=[CPU_MODEL], exit_timeout=1)
    batch = np.zeros((2, 224, 224, 3), np.uint8)
    with server:
        backend = get_backend(name, url=getattr(server, f"{protocol}_url"))
        assert backend.embed_batch(batch).shape == (2, 512)
        server.process.send_signal(signal.SIGTERM)  # Triton drains, unloads the model, exits
        failures = []
        deadline = time.monotonic() + 300  # only guards a hang
        while server.alive() and time.monotonic() < deadline or not failures:
            try:
                backend.embed_batch(batch)
            except Exception as error:  # noqa: BLE001 - every kind is collected and checked below
                failures.append(error)
            if time.monotonic() > deadline:
                break
        backend.close()
    assert failures and all(isinstance(e, BackendUnavailableError) for e in failures), \
        sorted({f"{type(e).__name__}: {e}" for e in failures})
