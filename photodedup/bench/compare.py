"""``photodedup bench --all``: start our service and the local Triton server, load each the same way.

Both servers serve the same ONNX export (``--model-dir`` or the default export) on free loopback
ports and are stopped afterwards. The targets, in the order of the seed's backend comparison: the
model in this process (the reference: no transport at all), our service with JPEG and with uint8
bodies, Triton over HTTP and over gRPC. A server that cannot start gives its rows an error; the
other backends still run.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import photodedup
from photodedup.bench import BenchReport, BenchSettings, Target, run_targets, server_snapshotter
from photodedup.bench.load import describe_error
from photodedup.errors import BackendUnavailableError, PhotodedupError
from photodedup.progress import ProgressCallback, no_progress

log = logging.getLogger(__name__)


def compare(settings: BenchSettings, *, progress: ProgressCallback = no_progress,
            ready_timeout: float = 300.0) -> BenchReport:
    """Start both servers, measure every target at every batch size and concurrency, stop them."""
    from photodedup.exports import find_export, resolve_model_dir

    settings.validate()
    model_dir = find_export(resolve_model_dir(settings.model_dir, weights=settings.weights))
    local = Target("onnx (in-process)", "onnx", {"model_dir": model_dir}, "in-process")
    with ExitStack() as stack, tempfile.TemporaryDirectory(prefix="photodedup-bench-") as scratch:
        service_url, service_error = _start(stack, local_service(model_dir, Path(scratch), ready_timeout))
        triton, triton_error = _start(stack, local_triton(model_dir, Path(scratch), ready_timeout))
        targets = [local]
        for payload in ("jpeg", "uint8"):
            targets.append(Target(f"http-service {payload}", "http-service", {"url": service_url, "payload": payload},
                                  payload, server_snapshotter, error=service_error))
        for name in ("triton-http", "triton-grpc"):
            url = (triton or {}).get(name.removeprefix("triton-"))
            targets.append(Target(name, name, {"url": url}, "uint8", server_snapshotter, error=triton_error))
        report = run_targets(targets, settings, progress=progress)
    report.settings["mode"] = "compare (--all)"
    report.settings["model_dir"] = str(model_dir)
    return report


def _start(stack: ExitStack, manager) -> tuple[object, PhotodedupError | None]:
    """Enter ``manager``; a failure becomes the error its targets report."""
    try:
        return stack.enter_context(manager), None
    except PhotodedupError as error:
        log.warning("%s", error)
        return None, error
    except Exception as error:  # a server that cannot start is a row with an error, not a crash
        log.warning("could not start a server: %s", describe_error(error))
        return None, BackendUnavailableError(describe_error(error))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def local_service(model_dir: Path | None, scratch: Path, ready_timeout: float = 300.0, *,
                  serve_args: tuple[str, ...] = ()) -> Iterator[str]:
    """``photodedup serve`` (the onnx export in ``model_dir``, or what ``serve_args`` say) on a free loopback
    port as a subprocess; yields its URL once ``/readyz`` is 200."""
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = scratch / "service.log"
    env = dict(os.environ)
    package_root = str(Path(photodedup.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    command = [sys.executable, "-m", "photodedup", "serve", "--port", str(port),
               *(("--model-dir", str(model_dir)) if model_dir else ()), *serve_args]
    with open(log_path, "wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            if process.poll() is not None:
                raise BackendUnavailableError(f"photodedup serve exited with {process.returncode} before it was ready: "
                                              f"{_tail(log_path)}")
            try:
                if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise BackendUnavailableError(f"photodedup serve was not ready within {ready_timeout:.0f} s: "
                                              f"{_tail(log_path)}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextmanager
def local_triton(model_dir: Path, scratch: Path, ready_timeout: float = 300.0) -> Iterator[dict[str, str]]:
    """The local tritonserver serving the CPU variant of ``model_dir`` from a scratch model repository;
    yields ``{"http": url, "grpc": url}`` once the model is ready."""
    from photodedup.triton.config import CPU_MODEL
    from photodedup.triton.repository import write_repository
    from photodedup.triton.server import TritonServer

    repository = scratch / "model_repository"
    write_repository(model_dir, repository, variants=(CPU_MODEL,))
    server = TritonServer(repository, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                          models=[CPU_MODEL])
    try:
        server.start().wait_ready(ready_timeout)
        yield {"http": server.http_url, "grpc": server.grpc_url}
    finally:
        server.stop()


def _tail(path: Path, chars: int = 600) -> str:
    text = path.read_text(errors="replace").strip()
    return text[-chars:] if text else "(no output)"
