"""The FastAPI app: ``POST /embed``, ``GET /healthz``, ``/readyz``, ``/metrics``, ``/v1/model``.

``create_app`` takes a callable that loads the backend. Loading and warm-up run in a thread after the
server starts, so ``/healthz`` answers at once and ``/readyz`` turns 200 only when the model has run
once. Decoding runs in a thread pool, inference in the dynamic batcher's worker thread: the event
loop only moves bytes.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from photodedup.backends.base import INPUT_SHAPE, Backend
from photodedup.errors import BackendUnavailableError, PhotodedupError
from photodedup.preprocess import DEFAULT_PREPROCESS, PreprocessConfig
from photodedup.service.batcher import DynamicBatcher
from photodedup.service.limits import (
    IMAGE_TYPES,
    MULTIPART_TYPE,
    NPY_TYPE,
    Limits,
    RequestRejected,
    body_too_large,
    check_declared_length,
    check_media_type,
    decode_images,
    encode_npy,
    parse_npy,
    too_many_images,
)
from photodedup.service.metrics import CONTENT_TYPE as METRICS_TYPE
from photodedup.service.metrics import Metrics

log = logging.getLogger(__name__)

ENDPOINTS = ("/embed", "/healthz", "/readyz", "/metrics", "/v1/model")


@dataclass(frozen=True)
class ServiceSettings:
    """How the service batches and what it accepts. Delays in seconds."""

    max_batch_size: int = 32
    max_queue_delay: float = 0.002
    limits: Limits = field(default_factory=Limits)
    decode_workers: int = 2
    token: str | None = None


class _State:
    """What the app holds once the model is loaded (``None`` until then)."""

    def __init__(self) -> None:
        self.backend: Backend | None = None
        self.batcher: DynamicBatcher | None = None
        self.preprocess: PreprocessConfig = DEFAULT_PREPROCESS
        self.dim: int | None = None
        self.ready = False
        self.error: BaseException | None = None


def create_app(
    load_backend: Callable[[], Backend], settings: ServiceSettings | None = None, *,
    preprocess: PreprocessConfig | Callable[[Backend], PreprocessConfig] | None = None,
    on_fatal: Callable[[BaseException], None] | None = None,
) -> FastAPI:
    """Build the app. ``load_backend`` runs in a thread at startup; if it (or the warm-up) fails, the
    error is logged, ``/readyz`` stays 503, and ``on_fatal(error)`` is called (``serve`` stops then)."""
    settings = settings or ServiceSettings()
    limits = settings.limits
    metrics = Metrics()
    state = _State()
    decode_pool = ThreadPoolExecutor(max_workers=max(1, settings.decode_workers),
                                     thread_name_prefix="photodedup-decode")

    def load() -> None:
        backend = load_backend()
        state.backend = backend
        if callable(preprocess):
            state.preprocess = preprocess(backend)
        elif preprocess is not None:
            state.preprocess = preprocess
        state.batcher = DynamicBatcher(backend, max_batch_size=settings.max_batch_size,
                                       max_queue_delay=settings.max_queue_delay, metrics=metrics)
        warm = state.batcher.embed_sync(np.zeros((1, *INPUT_SHAPE), np.uint8), timeout=600)
        state.dim = int(warm.shape[1])
        state.ready = True
        log.info("model %s loaded on %s and warmed up; ready", backend.model_id, backend.name)

    async def load_in_background() -> None:
        try:
            await asyncio.to_thread(load)
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
            if state.batcher is not None:
                await asyncio.to_thread(state.batcher.close)
            if state.backend is not None:
                state.backend.close()
            decode_pool.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title="photodedup embedding service",
        version="1",
        summary="OpenCLIP ViT-B/32 image embeddings with dynamic batching.",
        lifespan=lifespan,
    )
    app.state.metrics = metrics
    app.state.service = state

    # -- helpers ---------------------------------------------------------------------------------------
    def check_token(request: Request) -> None:
        if settings.token is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, value = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), settings.token.encode()):
            raise RequestRejected(401, "unauthorized", "a valid bearer token is required (Authorization: Bearer ...)")

    def require_ready() -> DynamicBatcher:
        if not state.ready or state.batcher is None:
            raise BackendUnavailableError("the model is not loaded yet" if state.error is None
                                          else f"the model failed to load: {state.error}")
        return state.batcher

    async def read_body(request: Request) -> bytes:
        check_declared_length(request.headers.get("content-length"), limits)
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limits.max_body_bytes:
                raise body_too_large(limits)
            chunks.append(chunk)
        body = b"".join(chunks)
        if not body:
            raise RequestRejected(400, "empty_body", "the request body is empty")
        return body

    async def multipart_blobs(request: Request, body: bytes) -> list[bytes]:
        async def stream():
            yield body

        parser = MultiPartParser(request.headers, stream(), max_files=limits.max_images, max_fields=limits.max_images)
        try:
            form = await parser.parse()
        except MultiPartException as error:
            if "Too many files" in error.message:
                raise too_many_images(None, limits) from None
            raise RequestRejected(400, "malformed_multipart",
                                  f"the multipart body is malformed: {error.message}") from None
        try:
            uploads = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
            if not uploads:
                raise RequestRejected(400, "no_images", "the multipart body holds no image parts")
            return [await upload.read() for upload in uploads]
        finally:
            await form.close()

    def error_response(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
        return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)

    # -- metrics middleware (pure ASGI: counts every response by endpoint and status) ----------------------
    class CountRequests:
        def __init__(self, inner) -> None:
            self.inner = inner

        async def __call__(self, scope, receive, send):
            if scope["type"] != "http":
                return await self.inner(scope, receive, send)
            endpoint = scope["path"] if scope["path"] in ENDPOINTS else "other"
            started = time.perf_counter()
            status = {"code": 500}

            async def record_send(message):
                if message["type"] == "http.response.start":
                    status["code"] = message["status"]
                await send(message)

            try:
                await self.inner(scope, receive, record_send)
            finally:
                metrics.requests.inc(endpoint=endpoint, status=str(status["code"]))
                metrics.latency.observe(time.perf_counter() - started, endpoint=endpoint)

    app.add_middleware(CountRequests)

    @app.exception_handler(RequestRejected)
    async def rejected(request: Request, error: RequestRejected) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        return error_response(error.status, error.code, str(error), headers)

    @app.exception_handler(BackendUnavailableError)
    async def unavailable(request: Request, error: BackendUnavailableError) -> JSONResponse:
        return error_response(503, "unavailable", str(error), {"Retry-After": "1"})

    @app.exception_handler(PhotodedupError)
    async def failed(request: Request, error: PhotodedupError) -> JSONResponse:
        return error_response(500, "inference_failed", str(error))

    # -- endpoints ------------------------------------------------------------------------------------
    embed_body_doc = {
        "description": "One image (JPEG, PNG or WebP) as the body; several images as multipart/form-data "
                       "(every file part is an image, in order); or a batch tensor uint8 [N,224,224,3] "
                       "(RGB model crops) as an .npy file.",
        "required": True,
        "content": {
            **{media: {"schema": {"type": "string", "format": "binary"}} for media in IMAGE_TYPES},
            MULTIPART_TYPE: {"schema": {"type": "object", "properties": {
                "image": {"type": "array", "items": {"type": "string", "format": "binary"}}}}},
            NPY_TYPE: {"schema": {"type": "string", "format": "binary"}},
        },
    }
    embed_responses = {
        200: {"description": "The embeddings: float32, L2-normalised, one row per image, in order. JSON, or "
                             "an .npy float32 [N,dim] array when the request says Accept: application/x-npy.",
              "content": {"application/json": {"example": {"model": "ViT-B-32/laion2b_s34b_b79k", "dim": 512,
                                                           "count": 1, "embeddings": [[0.01, -0.02]]}},
                          NPY_TYPE: {"schema": {"type": "string", "format": "binary"}}}},
        400: {"description": "Undecodable image, malformed tensor or multipart, empty body."},
        401: {"description": "A bearer token is configured and the request lacks it."},
        413: {"description": "Body, image count or pixel count over the limit."},
        415: {"description": "Content type not accepted."},
        503: {"description": "The model is not loaded yet, or the service is shutting down."},
    }

    @app.post("/embed", summary="Embed images", responses=embed_responses,
              openapi_extra={"requestBody": embed_body_doc})
    async def embed(request: Request) -> Response:
        metrics.in_flight.inc(1)
        try:
            check_token(request)
            media = check_media_type(request.headers.get("content-type"))
            batcher = require_ready()
            body = await read_body(request)
            loop = asyncio.get_running_loop()
            started = time.perf_counter()
            if media == NPY_TYPE:
                images = await loop.run_in_executor(decode_pool, parse_npy, body, limits)
            else:
                blobs = await multipart_blobs(request, body) if media == MULTIPART_TYPE else [body]
                images = await loop.run_in_executor(decode_pool, decode_images, blobs, state.preprocess, limits)
            metrics.decode.observe(time.perf_counter() - started)
            embeddings = await batcher.submit(images)
        finally:
            metrics.in_flight.inc(-1)
        model_id = state.backend.model_id
        headers = {"X-Model-Id": model_id}
        if NPY_TYPE in request.headers.get("accept", ""):
            return Response(encode_npy(embeddings), media_type=NPY_TYPE, headers=headers)
        return JSONResponse({"model": model_id, "dim": int(embeddings.shape[1]), "count": len(embeddings),
                             "embeddings": embeddings.tolist()}, headers=headers)

    @app.get("/healthz", summary="The process is alive")
    async def healthz() -> dict:
        return {"status": "ok"}

    @app.get("/readyz", summary="The model is loaded and warmed up",
             responses={503: {"description": "Not ready yet (or the model failed to load)."}})
    async def readyz() -> JSONResponse:
        if state.ready:
            return JSONResponse({"status": "ready", "model": state.backend.model_id})
        reason = "loading" if state.error is None else f"failed: {state.error}"
        return JSONResponse({"status": reason}, status_code=503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics_endpoint(request: Request) -> Response:
        check_token(request)
        return Response(metrics.render(), media_type=METRICS_TYPE)

    @app.get("/v1/model", summary="The served model: id, input spec, batch limits, embedding size")
    async def model_info(request: Request) -> dict:
        check_token(request)
        require_ready()
        return {
            "model": state.backend.model_id,
            "backend": state.backend.name,
            "dim": state.dim,
            "input": {"dtype": "uint8", "shape": [-1, *INPUT_SHAPE], "layout": "NHWC", "color": "RGB",
                      "crop": state.preprocess.spec, "preprocess": asdict(state.preprocess)},
            "output": {"dtype": "float32", "shape": [-1, state.dim], "normalized": True},
            "max_batch_size": settings.max_batch_size,
            "max_queue_delay_us": int(settings.max_queue_delay * 1e6),
            "max_images_per_request": limits.max_images,
            "max_body_bytes": limits.max_body_bytes,
            "max_pixels": limits.max_pixels,
            "accepts": [*IMAGE_TYPES, MULTIPART_TYPE, NPY_TYPE],
        }

    return app
