"""The ``auto`` backend: the remote service when it answers, the local onnx backend otherwise.

At start it gives the service (and, when ``triton_url`` is set, Triton) a short health check and falls
back to the local backend with a warning when none is ready. If the remote goes away mid-run (after
the client's own retries) it switches to the local backend for the rest, again with a warning. Which
backend embedded each batch is ``last_backend``, read by ``embed_batches`` in the thread that made the
call (a per-thread value, so it stays right with several batches in flight).
"""

from __future__ import annotations

import logging
import threading

import httpx
import numpy as np

from photodedup.backends.base import Backend, BackendOptions, RemoteBackend
from photodedup.backends.http_service import HttpServiceBackend, default_url
from photodedup.errors import BackendUnavailableError, ModelMismatchError

log = logging.getLogger(__name__)


class AutoBackend(RemoteBackend):
    """Remote first, local fallback; says which one embedded each batch."""

    name = "auto"

    @classmethod
    def from_options(cls, options: BackendOptions) -> AutoBackend:
        return cls(options.url, token=options.token, payload=options.payload or "jpeg",
                   in_flight=options.in_flight or 4, model_dir=options.model_dir, device=options.device,
                   threads=options.threads, weights=options.weights)

    def __init__(self, url: str | None = None, *, token: str | None = None, payload: str = "jpeg",
                 in_flight: int = 4, retries: int = 2, health_timeout: float = 1.0,
                 triton_url: str | None = None, model_dir=None, device: str = "cpu",
                 threads: int | None = None, weights: str | None = None) -> None:
        self.url = url or default_url()
        self.in_flight = in_flight
        self.health_timeout = health_timeout
        self._local_options = {"model_dir": model_dir, "device": device, "threads": threads, "weights": weights}
        self._lock = threading.Lock()
        self._calls = threading.local()
        self._local: Backend | None = None
        self._remote: RemoteBackend | None = self._connect_service(token, payload, in_flight, retries, health_timeout)
        if self._remote is None and triton_url:
            self._remote = self._connect_triton(triton_url)
        if self._remote is None:
            log.warning("no embedding service is ready at %s; embedding locally with the onnx backend", self.url)
            self._local = self._make_local(expected_model=None)
        self._opened: list[Backend] = [b for b in (self._remote, self._local) if b is not None]
        active = self._remote or self._local
        self.model_id = active.model_id
        self.precision = active.precision
        self.weights = active.weights
        self.is_random = active.is_random
        self.preprocess = active.preprocess
        self.input_dtype = active.input_dtype
        self.payload = active.payload if isinstance(active, RemoteBackend) else None
        self.max_batch_size = active.max_batch_size
        #: our service's ``/metrics`` describe the run only when the service is the remote
        self.server = "photodedup" if self._remote is not None and self._remote.server == "photodedup" else None

    # -- choosing -------------------------------------------------------------------------------------
    def _connect_service(self, token, payload, in_flight, retries, health_timeout) -> RemoteBackend | None:
        try:
            ready = httpx.get(f"{self.url.rstrip('/')}/readyz", timeout=health_timeout).status_code == 200
        except httpx.HTTPError as error:
            log.info("the service at %s does not answer: %s", self.url, error)
            return None
        if not ready:
            log.info("the service at %s is up but not ready", self.url)
            return None
        try:
            return HttpServiceBackend(self.url, token=token, payload=payload, in_flight=in_flight,
                                      retries=retries, connect_timeout=health_timeout)
        except BackendUnavailableError as error:
            log.info("the service at %s is not usable: %s", self.url, error)
            return None

    def _connect_triton(self, triton_url: str) -> RemoteBackend | None:
        from photodedup.backends.triton import TritonHttpBackend

        try:
            return TritonHttpBackend(triton_url, ready_timeout=self.health_timeout,
                                     connect_timeout=self.health_timeout, in_flight=self.in_flight)
        except BackendUnavailableError as error:
            log.info("Triton at %s is not usable: %s", triton_url, error)
            return None

    def _make_local(self, expected_model: str | None) -> Backend:
        from photodedup.backends import get_backend

        served = self._remote.precision if self._remote is not None else None
        local = get_backend("onnx", **self._local_options, **({"precision": served} if served else {}))
        if expected_model and local.embedding_id != expected_model:
            local.close()
            raise ModelMismatchError(
                f"the remote backend served {expected_model!r} but the local fallback is {local.embedding_id!r}; "
                "mixing them would store incomparable embeddings",
                hint="point --model-dir at an export of the served model, or restart the service")
        return local

    def _fallback(self) -> Backend:
        with self._lock:
            if self._local is None:
                self._local = self._make_local(expected_model=self.embedding_id)
                self._opened.append(self._local)
            return self._local

    # -- the contract ---------------------------------------------------------------------------------
    @property
    def last_backend(self) -> str:
        """The backend that embedded the latest batch of the calling thread."""
        return getattr(self._calls, "name", (self._remote or self._local or self).name)

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        remote = self._remote
        if remote is not None:
            try:
                out = remote.embed_batch(images)
                self._calls.name = remote.name
                return out
            except BackendUnavailableError as error:
                with self._lock:
                    if self._remote is remote:
                        log.warning("the remote backend went away (%s); embedding locally from now on", error)
                        self._remote = None
        local = self._fallback()
        out = local.embed_batch(images)
        self._calls.name = local.name
        return out

    def close(self) -> None:
        for backend in self._opened:
            backend.close()

    def __repr__(self) -> str:
        return f"AutoBackend(remote={self._remote!r}, local={self._local!r})"
