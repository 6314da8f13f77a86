"""``photodedup serve``: run the embedding service on uvicorn until SIGINT/SIGTERM.

Shutdown is graceful: uvicorn stops accepting connections, lets in-flight requests finish (up to
``graceful_timeout`` seconds), then the app drains the batcher and closes the backend. If the model
cannot be loaded the server stops and ``serve`` raises the loading error.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import socket
from pathlib import Path

from photodedup import config
from photodedup.backends import get_backend
from photodedup.errors import BackendUnavailableError, BadInputError, PhotodedupError
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


def listen(host: str, port: int) -> socket.socket:
    """Bind the listening socket here, so a busy port is a clear error rather than a uvicorn log line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on sockets that say so, and without it
    # Nagle held every response on a kept-alive connection ~40 ms (100 ms round trips for 52 ms of work).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise BadInputError(f"cannot listen on {host}:{port}: {error.strerror or error}",
                            hint="choose another --port, or stop what is using it") from None
    return sock


#: Descriptors kept for the process itself (model files, logs, the event loop, threads' pipes), not connections.
RESERVED_FDS = 64


def connection_cap(max_connections: int) -> int:
    """The most connections the server may hold: ``max_connections``, but below the descriptor limit.

    The soft ``RLIMIT_NOFILE`` is raised towards the hard one first. A connection may hold two
    descriptors (its socket and a spooled upload), so the cap is half of what ``RESERVED_FDS`` leaves:
    at the limit, ``accept`` fails, the server answers nobody (not even ``/healthz``) and asyncio
    retries the accept in a loop."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = RESERVED_FDS + 2 * max_connections
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
            soft = raised
        except (ValueError, OSError):
            pass
    room = max_connections if soft == resource.RLIM_INFINITY else (soft - RESERVED_FDS) // 2
    if room < 8:
        raise BadInputError(f"the open-file limit ({soft}) leaves no room for connections",
                            hint=f"raise it (ulimit -n {wanted}) and start the server again")
    if room < max_connections:
        log.warning("the open-file limit (%d) allows %d connections, not --max-connections %d (ulimit -n %d "
                    "would)", soft, room, max_connections, wanted)
    return min(max_connections, room)


def _canned(status: bytes, code: str, message: str) -> bytes:
    body = json.dumps({"error": code, "message": message}).encode()
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


def header_deadline_protocol(seconds: float, max_connections: int | None = None):
    """uvicorn's h11 protocol with a deadline for each request's headers: a client that trickles them
    (slowloris) gets ``408`` and the connection is closed. uvicorn itself only times out idle
    keep-alive connections, and any byte resets that; the body has its own deadline (``read_body``).

    ``max_connections``: the most open connections. One more closes the longest-idle one (waiting for
    a request's headers), so idle connections cannot shut out ``/healthz`` or anyone else; when none is
    idle, the new one gets ``503`` and is closed."""
    from uvicorn.protocols.http.h11_impl import H11Protocol

    response = _canned(b"408 Request Timeout", "request_timeout", "the request headers did not arrive in time")
    busy = _canned(b"503 Service Unavailable", "busy", "every connection is busy; try again")
    open_connections: dict = {}  # oldest first

    class HeaderDeadline(H11Protocol):
        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm()
            open_connections[self] = None
            if max_connections is not None and len(open_connections) > max_connections:
                self._make_room()

        def _make_room(self) -> None:
            idle = next((c for c in open_connections if c is not self and c._deadline is not None
                         and not c.transport.is_closing()), None)
            if idle is not None:
                idle.transport.close()
                open_connections.pop(idle, None)
            else:
                self.transport.write(busy)
                self.transport.close()

        def _arm(self) -> None:
            self._waiting_for = self.cycle  # headers of the request after this one are due
            self._deadline = self.loop.call_later(seconds, self._too_slow)

        def _disarm(self) -> None:
            if getattr(self, "_deadline", None) is not None:
                self._deadline.cancel()
                self._deadline = None

        def _too_slow(self) -> None:
            self._deadline = None
            if not self.transport.is_closing() and self.cycle is self._waiting_for:
                self.transport.write(response)
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self.cycle is not self._waiting_for:  # a new request's headers are complete
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._disarm()
                self._arm()

        def connection_lost(self, exc) -> None:
            self._disarm()
            open_connections.pop(self, None)
            super().connection_lost(exc)

    return HeaderDeadline


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
