"""``photodedup serve``: run the embedding service on uvicorn until SIGINT/SIGTERM.

Shutdown is graceful: uvicorn stops accepting connections, lets in-flight requests finish (up to
``graceful_timeout`` seconds), then the app drains the batcher and closes the backend. If the model
cannot be loaded the server stops and ``serve`` raises the loading error.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from pathlib import Path

from photodedup import config
from photodedup.backends import get_backend
from photodedup.errors import BackendUnavailableError, BadInputError, PhotodedupError
from photodedup.listener import connection_cap, header_deadline_protocol, listen
from photodedup.service.app import create_app
from photodedup.service.state import ServiceSettings

log = logging.getLogger(__name__)

SERVE_BACKENDS = ("onnx", "torch-local")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


#: The dynamic batcher's largest model call on a GPU (an H200 is far from full at the CPU's 32).
GPU_MAX_BATCH = 256


def on_gpu(device: str) -> bool:
    return device.startswith("cuda") or device == "tensorrt"


def service_settings(device: str = "cpu", *, max_batch_size: int | None = None, **options) -> ServiceSettings:
    """The service's settings with its batcher sized for ``device``: on a GPU, model calls of up to
    ``GPU_MAX_BATCH`` images and one decoding thread per core (JPEG payloads are decoded on the CPU)."""
    gpu = on_gpu(device)
    return ServiceSettings(max_batch_size=max_batch_size or (GPU_MAX_BATCH if gpu else 32),
                           decode_workers=(os.cpu_count() or 2) if gpu else 2, **options)


def backend_loader(backend: str = "onnx", **options):
    """A no-argument callable that builds the served backend (called in the server's loading thread).
    torch-local is warmed up at its batcher's size: the CUDA graph or compiled code is made before /readyz."""
    if backend not in SERVE_BACKENDS:
        raise BadInputError(f"the service cannot serve backend {backend!r}",
                            hint=f"choose one of: {', '.join(SERVE_BACKENDS)}")
    return lambda: get_backend(backend, warm_up=True, **options)


def serve(*, host: str = "127.0.0.1", port: int = config.SERVICE_PORT, backend: str = "onnx",
          model_dir: Path | None = None, weights: str | None = None, device: str = "cpu",
          precision: str | None = None, mode: str = "auto",
          threads: int | None = None, settings: ServiceSettings | None = None,
          graceful_timeout: float = 30.0, access_log: bool = False) -> None:
    """Serve until interrupted. Raises the model-loading error if the model could not be loaded."""
    import uvicorn

    settings = settings or service_settings(device)
    if settings.token is None and not is_loopback(host):
        log.warning("serving on %s without a bearer token: anyone who can reach this port can use the service "
                    "(set --token or PHOTODEDUP_TOKEN)", host)
    load = backend_loader(backend, model_dir=model_dir, weights=weights, device=device, threads=threads,
                          precision=precision, mode=mode, max_batch_size=settings.max_batch_size)
    failure: list[BaseException] = []
    server: uvicorn.Server | None = None

    def on_fatal(error: BaseException) -> None:
        failure.append(error)
        if server is not None:
            server.should_exit = True

    app = create_app(load, settings, on_fatal=on_fatal)
    cap = connection_cap(settings.max_connections)
    sock = listen(host, port)
    uv_config = uvicorn.Config(app, log_level="info", access_log=access_log, lifespan="on",
                               timeout_graceful_shutdown=int(graceful_timeout) or None,
                               timeout_keep_alive=30,
                               http=header_deadline_protocol(settings.request_timeout, cap))
    server = uvicorn.Server(uv_config)
    log.info("serving %s on http://%s:%d", backend, host, sock.getsockname()[1])
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it handled gracefully: a normal end
        pass
    finally:
        sock.close()
    if failure:
        error = failure[0]
        if isinstance(error, PhotodedupError):
            raise error
        raise BackendUnavailableError(f"the model could not be loaded: {error}") from error
