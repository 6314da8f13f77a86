"""The FastAPI app: ``POST /embed``, ``GET /healthz``, ``/readyz``, ``/metrics``, ``/v1/model``.

``create_app`` takes a callable that loads the backend. Loading and warm-up run in a thread after the
server starts, so ``/healthz`` answers at once and ``/readyz`` turns 200 only when the model has run
once. The endpoints live in ``routes.py``; what they share (the loaded model, the token and readiness
checks) in ``state.py``. A ``PhotodedupError`` becomes a JSON error with the status its class carries
(``http_status``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from photodedup.backends.base import Backend
from photodedup.errors import BackendUnavailableError, PhotodedupError
from photodedup.service.metrics import Metrics
from photodedup.service.routes import embed_router, health_router, model_router
from photodedup.service.state import ServiceSettings, ServiceState, require_token

log = logging.getLogger(__name__)

ENDPOINTS = ("/embed", "/healthz", "/readyz", "/metrics", "/v1/model", "/openapi.json", "/docs")


def create_app(load_backend: Callable[[], Backend], settings: ServiceSettings | None = None, *,
               on_fatal: Callable[[BaseException], None] | None = None) -> FastAPI:
    """Build the app. ``load_backend`` runs in a thread at startup; if it (or the warm-up) fails, the
    error is logged, ``/readyz`` stays 503, and ``on_fatal(error)`` is called (``serve`` stops then)."""
    metrics = Metrics()
    state = ServiceState(settings or ServiceSettings(), metrics)

    async def load_in_background() -> None:
        try:
            await asyncio.to_thread(state.load, load_backend)
        except BaseException as error:  # reported, then the server is stopped by on_fatal
            state.error = error
            log.error("could not load the model: %s", error)
            if on_fatal is not None:
                on_fatal(error)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        task = asyncio.create_task(load_in_background())
        try:
            yield
        finally:
            state.ready = False
            if not task.done():
                task.cancel()
            await asyncio.to_thread(state.close)

    app = FastAPI(title="photodedup embedding service", version="1", docs_url=None, openapi_url=None,
                  summary="OpenCLIP ViT-B/32 image embeddings with dynamic batching.", lifespan=lifespan)

    # The schema and its page describe every endpoint: behind the token like the endpoints themselves.
    @app.get("/openapi.json", include_in_schema=False, dependencies=[Depends(require_token)])
    async def openapi() -> JSONResponse:
        return JSONResponse(app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=[Depends(require_token)])
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url="/openapi.json", title=f"{app.title} - docs")

    app.state.metrics = metrics
    app.state.service = state
    app.add_middleware(CountRequests, metrics=metrics)
    app.add_exception_handler(PhotodedupError, error_response)
    for router in (embed_router, health_router, model_router):
        app.include_router(router)
    return app


async def error_response(request: Request, error: PhotodedupError) -> JSONResponse:
    """``{"error": code, "message": ...}`` with the status the error's class carries."""
    headers = {}
    if error.http_status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(error, BackendUnavailableError):
        headers["Retry-After"] = "1"
    return JSONResponse({"error": error.code, "message": str(error)}, status_code=error.http_status,
                        headers=headers or None)


class CountRequests:
    """Pure ASGI middleware: counts every response by endpoint and status, and times it."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"
        started = time.perf_counter()
        status = {"code": 500}

        async def record_send(message):
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_send)
        finally:
            self.metrics.requests.labels(endpoint=endpoint, status=str(status["code"])).inc()
            self.metrics.latency.labels(endpoint=endpoint).observe(time.perf_counter() - started)
