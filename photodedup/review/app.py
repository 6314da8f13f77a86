"""The review web app (FastAPI): one page of plain HTML/CSS/JS, a small JSON API, images by file id.

The assembly: the security layer (``security.py``: Host check, fetch-site check, session token and
one-time codes, the header on writes) in front of the routers (``routes.py``: the page, reading,
deciding) over one ``ReviewState``; photos are read by ``files.py``. The server binds to loopback by
default.
"""

from __future__ import annotations

import logging
import secrets
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from photodedup.catalog import Catalog
from photodedup.errors import PhotodedupError
from photodedup.review.routes import ReviewState, decide_router, page_router, read_router
from photodedup.review.security import TOKEN_HEADER, OneTimeCodes, add_guard
from photodedup.text import printable

__all__ = ["TOKEN_HEADER", "create_app", "loopback_hosts", "serve"]

log = logging.getLogger(__name__)

MAX_CONNECTIONS = 64  # one person's browser (6 to 10 a host) with room to spare
REQUEST_TIMEOUT = 30.0  # seconds for a request's headers


def create_app(catalog: Path, *, token: str, trash_dir: Path | None = None,
               allowed_hosts: set[str] | None = None, cookie: str = "photodedup_review") -> FastAPI:
    """The app for one catalog. ``allowed_hosts``: accepted Host headers (None accepts any).
    ``app.state.codes.issue()`` makes a one-time code that ``/?code=`` exchanges for the session cookie."""
    app = FastAPI(title="photodedup review", docs_url=None, redoc_url=None, openapi_url=None,
                  default_response_class=_ReadableJSON)
    app.state.review = ReviewState(Path(catalog), token, trash_dir)
    app.state.codes = OneTimeCodes()
    add_guard(app, token=token, codes=app.state.codes, cookie=cookie, allowed_hosts=allowed_hosts)

    @app.exception_handler(OverflowError)
    async def beyond_int64(request: Request, error: OverflowError):  # an id SQLite cannot even hold
        return JSONResponse({"error": "no such id"}, status_code=404)

    @app.exception_handler(PhotodedupError)
    async def photodedup_error(request: Request, error: PhotodedupError):
        return _ReadableJSON({"error": str(error), "hint": error.hint}, status_code=error.http_status)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, error: HTTPException):  # messages name files: shown escaped too
        return _ReadableJSON({"detail": error.detail}, status_code=error.status_code, headers=error.headers)

    for router in (page_router, read_router, decide_router):
        app.include_router(router)
    return app


class _ReadableJSON(JSONResponse):
    """JSON for the page to show: strings valid UTF-8 (a path with bytes that are not shows them as
    ``\\xNN``), control and bidi characters escaped (``text.printable``), as on a terminal."""

    def render(self, content) -> bytes:
        return super().render(_readable(content))


def _readable(value):
    if isinstance(value, str):
        return printable(value)
    if isinstance(value, dict):
        return {_readable(k): _readable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_readable(v) for v in value]
    return value


def loopback_hosts(host: str, port: int) -> set[str] | None:
    """Host headers to accept when serving on ``host:port``; None (any) when bound beyond loopback."""
    if host not in ("127.0.0.1", "localhost", "::1"):
        return None
    return {f"{name}:{port}" for name in ("127.0.0.1", "localhost", "[::1]")}


def serve(catalog: Path, *, host: str = "127.0.0.1", port: int = 8000, trash_dir: Path | None = None,
          token: str | None = None, open_browser: bool = False, announce=None) -> None:
    """Serve the review page until interrupted. ``announce(url)`` is called just before it listens.

    ``token``: the session token (default: a new random one each start).
    """
    import uvicorn

    from photodedup.listener import connection_cap, header_deadline_protocol, listen

    Catalog(catalog, create=False).close()  # no catalog: the same error (and exit code) as every command
    # as `serve`: connections below the open-file limit, idle ones make room, slow headers get 408
    protocol = header_deadline_protocol(REQUEST_TIMEOUT, connection_cap(MAX_CONNECTIONS))
    sock = listen(host, port)  # a busy port is an error before any URL is printed
    token = token or secrets.token_urlsafe(24)
    app = create_app(Path(catalog), token=token, trash_dir=trash_dir, allowed_hosts=loopback_hosts(host, port),
                     cookie=f"photodedup_review_{port}")
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/?code="  # one-time codes: the session token is never in a URL
    if announce:
        announce(url + app.state.codes.issue())
    if open_browser:
        import webbrowser

        webbrowser.open(url + app.state.codes.issue())
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_keep_alive=30, http=protocol))
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
