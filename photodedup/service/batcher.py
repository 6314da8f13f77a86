"""A dynamic batcher in the manner of Triton's: merge concurrent requests into one model call.

Requests (each ``uint8 [n,224,224,3]``) wait in a queue. One worker thread takes the oldest, then keeps
taking more until the batch holds ``max_batch_size`` images or the oldest has waited
``max_queue_delay`` seconds, runs one ``backend.embed_batch`` on the concatenation, and hands each
request its rows. A request larger than ``max_batch_size`` is split into parts first. Inference never
runs on the event loop; ``submit`` is awaitable from it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from photodedup.backends.base import Backend, check_batch
from photodedup.errors import BackendUnavailableError, InferenceError
from photodedup.service.metrics import Metrics

log = logging.getLogger(__name__)

_STOP = object()


@dataclass
class _Item:
    images: np.ndarray
    deliver: Callable[[np.ndarray | None, BaseException | None], None]
    enqueued: float = field(default_factory=time.perf_counter)

    @property
    def size(self) -> int:
        return len(self.images)


class DynamicBatcher:
    """Merge requests into model calls of at most ``max_batch_size`` images within ``max_queue_delay`` s."""

    def __init__(self, backend: Backend, *, max_batch_size: int = 32, max_queue_delay: float = 0.005,
                 metrics: Metrics | None = None) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self.backend = backend
        self.max_batch_size = max_batch_size
        self.max_queue_delay = max(0.0, max_queue_delay)
        self.metrics = metrics or Metrics()
        self._queue: queue.Queue = queue.Queue()
        self._carry: _Item | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="photodedup-batcher", daemon=True)
        self._thread.start()

    # -- client side (event loop) --------------------------------------------------------------------
    async def submit(self, images: np.ndarray) -> np.ndarray:
        """Embed ``uint8 [n,224,224,3]`` through the shared model calls; returns ``float32 [n,dim]``."""
        loop = asyncio.get_running_loop()
        parts = [images[i : i + self.max_batch_size] for i in range(0, len(images), self.max_batch_size)]
        futures = [self._enqueue(part, loop) for part in parts]
        results = await asyncio.gather(*futures)
        return results[0] if len(results) == 1 else np.concatenate(results)

    def _enqueue(self, images: np.ndarray, loop: asyncio.AbstractEventLoop) -> asyncio.Future:
        if self._closed:
            raise BackendUnavailableError("the service is shutting down")
        future = loop.create_future()

        def settle(result: np.ndarray | None, error: BaseException | None) -> None:
            if future.done():  # the client went away
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        def deliver(result: np.ndarray | None, error: BaseException | None) -> None:
            loop.call_soon_threadsafe(settle, result, error)  # raises once the caller's loop has closed

        self._queue.put(_Item(images, deliver))
        self.metrics.queue_depth.set(self._queue.qsize())
        return future

    def embed_sync(self, images: np.ndarray, timeout: float | None = None) -> np.ndarray:
        """Blocking variant for callers outside an event loop (tests, warm-up)."""
        done = threading.Event()
        box: dict = {}

        def deliver(result, error):
            box["result"], box["error"] = result, error
            done.set()

        self._queue.put(_Item(images, deliver))
        if not done.wait(timeout):
            raise BackendUnavailableError(f"no answer from the batcher within {timeout} s")
        if box["error"] is not None:
            raise box["error"]
        return box["result"]

    def close(self, timeout: float | None = 30.0) -> None:
        """Stop taking requests, finish those already queued, stop the worker."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout)

    # -- worker side -----------------------------------------------------------------------------------
    def _next_batch(self) -> list[_Item] | None:
        first = self._carry
        self._carry = None
        if first is None:
            first = self._queue.get()
            if first is _STOP:
                return None
        batch, count = [first], first.size
        deadline = first.enqueued + self.max_queue_delay
        while count < self.max_batch_size:
            remaining = deadline - time.perf_counter()
            try:
                item = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if item is _STOP:
                self._queue.put(_STOP)  # finish this batch, then stop
                break
            if count + item.size > self.max_batch_size:
                self._carry = item  # first in the next batch
                break
            batch.append(item)
            count += item.size
        return batch

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if batch is None:
                break
            self.metrics.queue_depth.set(self._queue.qsize())
            started = time.perf_counter()
            for item in batch:
                self.metrics.queue.observe(started - item.enqueued)
            images = batch[0].images if len(batch) == 1 else np.concatenate([item.images for item in batch])
            try:
                out = self.backend.embed_batch(check_batch(images))
                if len(out) != len(images):
                    raise InferenceError(f"the model returned {len(out)} rows for {len(images)} images")
            except Exception as error:  # handed to every waiting request
                log.exception("model call on %d images failed", len(images))
                failure = error if isinstance(error, InferenceError) else InferenceError(f"inference failed: {error}")
                for item in batch:
                    _hand(item, None, failure)
                continue
            elapsed = time.perf_counter() - started
            self.metrics.inference.observe(elapsed)
            self.metrics.batch_size.observe(len(images))
            self.metrics.batch_requests.observe(len(batch))
            self.metrics.images.inc(len(images))
            offset = 0
            for item in batch:
                _hand(item, out[offset : offset + item.size], None)
                offset += item.size


def _hand(item: _Item, result: np.ndarray | None, error: BaseException | None) -> None:
    """Give one request its answer; a failure to deliver it (its caller's event loop has closed, ...) never
    stops the worker, or the service with it."""
    try:
        item.deliver(result, error)
    except Exception:  # noqa: BLE001 - one caller's problem, not the batcher's
        log.exception("could not deliver an answer; the batcher keeps running")
