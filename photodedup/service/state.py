"""What the service holds once its model is loaded, and the FastAPI dependencies that read it.

``ServiceState.load`` runs in a thread after the server starts: build the backend, start the dynamic
batcher, run the model once (warm-up), then mark the service ready. The routers never touch the
state directly: they declare ``Depends(require_token)`` and ``Depends(ready_batcher)``.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from fastapi import Request

from photodedup.backends.base import INPUT_SHAPE, Backend
from photodedup.errors import BackendUnavailableError
from photodedup.preprocess import DEFAULT_PREPROCESS, PreprocessConfig
from photodedup.service.batcher import DynamicBatcher
from photodedup.service.limits import DecodeBudget, Limits, RequestRejected
from photodedup.service.metrics import Metrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceSettings:
    """How the service batches and what it accepts. Delays in seconds."""

    max_batch_size: int = 32
    max_queue_delay: float = 0.002
    limits: Limits = field(default_factory=Limits)
    decode_workers: int = 2
    token: str | None = None
    request_timeout: float = 30.0  # seconds for a request's headers, and again for its body (408 after)
    max_connections: int = 256     # open connections: one more closes the longest-idle (503 if none is)


class ServiceState:
    """The loaded backend, its batcher and crop, and whether the service is ready (``None`` until loaded)."""

    def __init__(self, settings: ServiceSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.metrics = metrics
        self.backend: Backend | None = None
        self.batcher: DynamicBatcher | None = None
        self.preprocess: PreprocessConfig = DEFAULT_PREPROCESS
        self.dim: int | None = None
        self.ready = False
        self.error: BaseException | None = None
        self.decode_pool = ThreadPoolExecutor(max_workers=max(1, settings.decode_workers),
                                              thread_name_prefix="photodedup-decode")
        self.decode_budget = DecodeBudget(settings.limits.max_pixels)

    def load(self, load_backend: Callable[[], Backend]) -> None:
        """Build the backend, start the batcher, warm the model up (blocking: run it in a thread)."""
        backend = load_backend()
        self.backend = backend
        self.preprocess = backend.preprocess
        self.batcher = DynamicBatcher(backend, max_batch_size=self.settings.max_batch_size,
                                      max_queue_delay=self.settings.max_queue_delay, metrics=self.metrics)
        warm = self.batcher.embed_sync(np.zeros((1, *INPUT_SHAPE), np.uint8), timeout=600)
        self.dim = int(warm.shape[1])
        self.ready = True
        log.info("model %s loaded on %s and warmed up; ready", backend.model_id, backend.name)

    def close(self) -> None:
        """Stop answering, finish the queued batches, release the model (blocking: run it in a thread)."""
        self.ready = False
        if self.batcher is not None:
            self.batcher.close()
        if self.backend is not None:
            self.backend.close()
        self.decode_pool.shutdown(wait=False, cancel_futures=True)


# -- dependencies -------------------------------------------------------------------------------------
def service_state(request: Request) -> ServiceState:
    return request.app.state.service


def require_token(request: Request) -> None:
    """401 unless the request carries the configured bearer token (no token configured: open)."""
    token = service_state(request).settings.token
    if token is None:
        return
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        raise RequestRejected(401, "unauthorized", "a valid bearer token is required (Authorization: Bearer ...)")


def ready_batcher(request: Request) -> DynamicBatcher:
    """503 until the model is loaded and warmed up; then the batcher to submit to."""
    state = service_state(request)
    if not state.ready or state.batcher is None:
        raise BackendUnavailableError("the model is not loaded yet" if state.error is None
                                      else f"the model failed to load: {state.error}")
    return state.batcher
