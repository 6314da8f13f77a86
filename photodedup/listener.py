"""Listening for HTTP: the bound socket, the connection cap under the descriptor limit, and uvicorn's
protocol with a deadline for request headers. Both our servers use them: the embedding service
(`serve`) and the review page (`review`)."""

from __future__ import annotations

import json
import logging
import socket

from photodedup.errors import BadInputError

log = logging.getLogger(__name__)


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
