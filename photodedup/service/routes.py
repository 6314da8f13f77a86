"""The service's endpoints, as routers: ``/embed``; ``/healthz``, ``/readyz``, ``/metrics``; ``/v1/model``.

Access rules are dependencies: ``require_token`` (a bearer token, when one is configured) and
``ready_batcher`` (503 until the model is loaded and warmed up). Decoding runs in a thread pool,
inference in the dynamic batcher's worker thread: the event loop only moves bytes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict
from functools import partial

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException, MultiPartParser

from photodedup.backends.base import INPUT_SHAPE
from photodedup.backends.http_service import encode_npy
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
    parse_npy,
    too_many_images,
)
from photodedup.service.metrics import CONTENT_TYPE as METRICS_TYPE
from photodedup.service.state import ServiceState, ready_batcher, require_token, service_state

embed_router = APIRouter()
health_router = APIRouter()
model_router = APIRouter(dependencies=[Depends(require_token)])

EMBED_BODY_DOC = {
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
EMBED_RESPONSES = {
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


# -- /embed -----------------------------------------------------------------------------------------------
def accepted_media(request: Request) -> str:
    return check_media_type(request.headers.get("content-type"))


@embed_router.post("/embed", summary="Embed images", responses=EMBED_RESPONSES,
                   openapi_extra={"requestBody": EMBED_BODY_DOC})
async def embed(request: Request, state: ServiceState = Depends(service_state),
                _: None = Depends(require_token), media: str = Depends(accepted_media),
                batcher: DynamicBatcher = Depends(ready_batcher)) -> Response:
    metrics, limits = state.metrics, state.settings.limits
    metrics.in_flight.inc()
    try:
        body = await read_body(request, limits, state.settings.request_timeout)
        started = time.perf_counter()
        loop = asyncio.get_running_loop()
        if media == NPY_TYPE:
            images = await loop.run_in_executor(state.decode_pool, parse_npy, body, limits)
        else:
            blobs, declared = (await multipart_blobs(request, body, limits) if media == MULTIPART_TYPE
                               else ([body], [media]))
            images = await loop.run_in_executor(state.decode_pool, partial(
                decode_images, blobs, state.preprocess, limits, declared=declared, budget=state.decode_budget))
        metrics.decode.observe(time.perf_counter() - started)
        embeddings = await batcher.submit(images)
    finally:
        metrics.in_flight.dec()
    model_id = state.backend.model_id
    headers = {"X-Model-Id": model_id}
    if NPY_TYPE in request.headers.get("accept", ""):
        return Response(encode_npy(embeddings), media_type=NPY_TYPE, headers=headers)
    return JSONResponse({"model": model_id, "dim": int(embeddings.shape[1]), "count": len(embeddings),
                         "embeddings": embeddings.tolist()}, headers=headers)


async def read_body(request: Request, limits: Limits, timeout: float | None = None) -> bytes:
    """The whole body, refused as soon as it is over the limit (declared or streamed), or 408 when it
    has not all arrived within ``timeout`` seconds (a client that declares 60 MB and sends 3 bytes)."""
    check_declared_length(request.headers.get("content-length"), limits)
    chunks, size = [], 0
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout if timeout else None
    stream = request.stream().__aiter__()
    while True:
        try:
            if deadline is None:
                chunk = await stream.__anext__()
            else:
                chunk = await asyncio.wait_for(stream.__anext__(), max(0.0, deadline - loop.time()))
        except StopAsyncIteration:
            break
        except TimeoutError:
            raise RequestRejected(408, "request_timeout",
                                  f"the request body did not arrive within {timeout:g} s") from None
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise body_too_large(limits)
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise RequestRejected(400, "empty_body", "the request body is empty")
    return body


async def multipart_blobs(request: Request, body: bytes, limits: Limits) -> tuple[list[bytes], list[str | None]]:
    """The file parts of a multipart body, in order, with the content type each part declares."""
    async def stream():
        yield body

    parser = MultiPartParser(request.headers, stream(), max_files=limits.max_images, max_fields=limits.max_images)
    try:
        form = await parser.parse()
    except MultiPartException as error:
        if "Too many files" in error.message:
            raise too_many_images(None, limits) from None
        raise RequestRejected(400, "malformed_multipart", f"the multipart body is malformed: {error.message}") from None
    try:
        uploads = [value for _, value in form.multi_items() if isinstance(value, UploadFile)]
        if not uploads:
            raise RequestRejected(400, "no_images", "the multipart body holds no image parts")
        return [await upload.read() for upload in uploads], [upload.content_type for upload in uploads]
    finally:
        await form.close()


# -- health and metrics -----------------------------------------------------------------------------------
@health_router.get("/healthz", summary="The process is alive")
async def healthz() -> dict:
    return {"status": "ok"}


@health_router.get("/readyz", summary="The model is loaded and warmed up",
                   responses={503: {"description": "Not ready yet (or the model failed to load)."}})
async def readyz(state: ServiceState = Depends(service_state)) -> JSONResponse:
    if state.ready:
        return JSONResponse({"status": "ready", "model": state.backend.model_id})
    reason = "loading" if state.error is None else f"failed: {state.error}"
    return JSONResponse({"status": reason}, status_code=503)


@health_router.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse,
                   dependencies=[Depends(require_token)])
async def metrics(state: ServiceState = Depends(service_state)) -> Response:
    return Response(state.metrics.render(), media_type=METRICS_TYPE)


# -- the served model -------------------------------------------------------------------------------------
@model_router.get("/v1/model", summary="The served model: id, input spec, batch limits, embedding size",
                  dependencies=[Depends(ready_batcher)])
async def model_info(state: ServiceState = Depends(service_state)) -> dict:
    settings, limits = state.settings, state.settings.limits
    return {
        "model": state.backend.model_id,
        "is_random": state.backend.is_random,
        "backend": state.backend.name,
        "precision": state.backend.precision,
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
