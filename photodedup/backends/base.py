"""The backend contract: embed one uint8 batch, return (N, 512) float32 L2-normalised rows.

Backends know nothing of the catalog or the CLI: arrays in, arrays out. Batching, retries and
concurrency are written once, here, for every backend (``embed_batches``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from photodedup.errors import BackendUnavailableError, InferenceError

log = logging.getLogger(__name__)

INPUT_SHAPE = (224, 224, 3)


@runtime_checkable
class Backend(Protocol):
    """What every backend implements. ``name`` is the registry name; ``model_id`` names weights."""

    name: str
    model_id: str
    max_batch_size: int

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        """Embed ``uint8 [N,224,224,3]`` RGB crops; return ``float32 [N,512]``, L2-normalised."""
        ...

    def close(self) -> None:
        """Release sessions, connections and threads."""
        ...


def check_batch(images: np.ndarray) -> np.ndarray:
    """Validate a model-input batch (the contract across every boundary)."""
    if not isinstance(images, np.ndarray) or images.dtype != np.uint8:
        raise InferenceError(f"expected a uint8 numpy array, got {getattr(images, 'dtype', type(images))}")
    if images.ndim != 4 or images.shape[1:] != INPUT_SHAPE:
        raise InferenceError(f"expected shape [N,224,224,3], got {list(images.shape)}")
    return np.ascontiguousarray(images)


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def chunked(items: Iterable, size: int) -> Iterator[list]:
    """Split an iterable into lists of at most ``size`` items (the last one may be short)."""
    batch: list = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class BatchResult:
    """One batch's embeddings with what was spent on it, for progress and ``bench``."""

    index: int
    embeddings: np.ndarray
    seconds: float
    backend: str


def call_with_retries(
    fn: Callable[[], np.ndarray], *, retries: int = 3, backoff: float = 0.2,
    retry_on: tuple[type[BaseException], ...] = (BackendUnavailableError,),
) -> np.ndarray:
    """Run ``fn``; on a retryable error wait ``backoff * 2**attempt`` and try again."""
    for attempt in range(retries + 1):
        try:
            return fn()
        except retry_on as error:
            if attempt == retries:
                raise
            delay = backoff * (2**attempt)
            log.warning("retrying in %.2fs after: %s", delay, error)
            time.sleep(delay)
    raise AssertionError("unreachable")


def embed_batches(
    backend: Backend, batches: Iterable[np.ndarray], *, in_flight: int = 1, retries: int = 0,
) -> Iterator[BatchResult]:
    """Embed an iterable of uint8 batches, keeping ``in_flight`` batches running, results in order.

    Batches larger than the backend's ``max_batch_size`` are split and joined again; short batches
    are sent as they are (never padded with repeated images).
    """

    def run(index: int, batch: np.ndarray) -> BatchResult:
        start = time.perf_counter()
        parts = [
            call_with_retries(lambda part=part: backend.embed_batch(check_batch(part)), retries=retries)
            for part in _split(batch, backend.max_batch_size)
        ]
        out = np.concatenate(parts) if len(parts) > 1 else parts[0]
        if out.shape != (len(batch), out.shape[1]) or out.dtype != np.float32:
            raise InferenceError(
                f"backend {backend.name} returned {out.dtype} {list(out.shape)} for {len(batch)} images")
        return BatchResult(index, out, time.perf_counter() - start, getattr(backend, "last_backend", backend.name))

    if in_flight <= 1:
        for index, batch in enumerate(batches):
            yield run(index, batch)
        return
    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="embed") as pool:
        pending: list[Future[BatchResult]] = []
        for index, batch in enumerate(batches):
            pending.append(pool.submit(run, index, batch))
            if len(pending) >= in_flight:
                yield pending.pop(0).result()
        for future in pending:
            yield future.result()


def _split(batch: np.ndarray, size: int) -> list[np.ndarray]:
    size = max(1, int(size or len(batch) or 1))
    return [batch[i : i + size] for i in range(0, max(len(batch), 1), size)]
