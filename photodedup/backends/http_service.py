"""The ``http-service`` backend: a client of ``photodedup serve``.

One pooled ``httpx.Client`` shared by the threads ``embed_batches`` runs (``in_flight`` requests at a
time), timeouts, retries with exponential backoff on connection errors and 503. The payload is each
crop as JPEG (quality 95, no chroma subsampling) in a multipart body, the default: about 30 KB an
image, embeddings within cosine 0.999 of the local backend's (see tests/test_http_backend.py); or the
uint8 crops as ``.npy`` (150,528 bytes an image, exact). The answer comes back as ``.npy``.
On connect it reads ``GET /v1/model`` and checks the served input against what it sends, naming
expected and actual on a mismatch.
"""

from __future__ import annotations

import io
import logging
import os

import httpx
import numpy as np

from photodedup import config
from photodedup.backends.base import INPUT_SHAPE, BackendOptions, RemoteBackend, call_with_retries, check_batch
from photodedup.errors import BackendUnavailableError, BadInputError, InferenceError, ModelMismatchError
from photodedup.exports import says_random
from photodedup.preprocess import DEFAULT_PREPROCESS, encode_jpeg

log = logging.getLogger(__name__)

NPY_TYPE = "application/x-npy"
PAYLOADS = ("jpeg", "uint8")


def default_url() -> str:
    return os.environ.get("PHOTODEDUP_SERVICE_URL") or f"http://127.0.0.1:{config.SERVICE_PORT}"


def encode_npy(array: np.ndarray) -> bytes:
    """An array as ``.npy`` bytes: the binary format of requests and responses, both ways."""
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


class HttpServiceBackend(RemoteBackend):
    """Embeds crops by POSTing them to ``photodedup serve``."""

    name = "http-service"
    server = "photodedup"

    @classmethod
    def from_options(cls, options: BackendOptions) -> HttpServiceBackend:
        return cls(options.url, token=options.token, payload=options.payload or "jpeg",
                   in_flight=options.in_flight or 4)

    def __init__(self, url: str | None = None, *, token: str | None = None, payload: str = "jpeg",
                 in_flight: int = 4, timeout: float = 60.0, connect_timeout: float = 5.0, retries: int = 3,
                 backoff: float = 0.25, max_batch_size: int | None = None, expected_model: str | None = None,
                 jpeg_quality: int = 95) -> None:
        if payload not in PAYLOADS:
            raise BadInputError(f"unknown payload {payload!r}", hint=f"choose one of: {', '.join(PAYLOADS)}")
        self.url = (url or default_url()).rstrip("/")
        self.payload = payload
        self.in_flight = max(1, in_flight)
        self.retries = retries
        self.backoff = backoff
        self.jpeg_quality = jpeg_quality
        token = token if token is not None else os.environ.get("PHOTODEDUP_TOKEN")
        headers = {"Accept": NPY_TYPE}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._client = httpx.Client(
            base_url=self.url, headers=headers,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            # callers may share one client across more threads than in_flight (bench): do not queue them here
            limits=httpx.Limits(max_connections=max(64, 2 * self.in_flight),
                                max_keepalive_connections=max(64, 2 * self.in_flight)),
        )
        try:
            self.info = call_with_retries(self._model_info, retries=retries, backoff=backoff)
            self._check(expected_model)
        except BaseException:
            self._client.close()
            raise
        self.model_id: str = self.info["model"]
        self.is_random = says_random(self.info.get("is_random"), self.model_id)
        self.precision = self.info.get("precision")  # what the service runs (older services: unknown)
        served = int(self.info.get("max_images_per_request") or self.info.get("max_batch_size") or 32)
        self.max_batch_size = min(served, max_batch_size) if max_batch_size else served

    # -- connecting -----------------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs) -> httpx.Response:
        """One request; connection trouble and 503 become ``BackendUnavailableError`` (retryable)."""
        try:
            response = self._client.request(method, path, **kwargs)
        except (httpx.TransportError, httpx.TimeoutException) as error:
            raise BackendUnavailableError(f"cannot reach the service at {self.url}: {error or type(error).__name__}",
                                          hint="start it with `photodedup serve`, or pass --url") from error
        if response.status_code == 503:
            raise BackendUnavailableError(f"the service at {self.url} is not ready: {_message(response)}")
        if response.status_code == 401:
            raise BadInputError(f"the service at {self.url} refused the request: {_message(response)}",
                                hint="pass --token or set PHOTODEDUP_TOKEN")
        if 400 <= response.status_code < 500:
            raise BadInputError(f"the service at {self.url} rejected the request "
                                f"({response.status_code}): {_message(response)}")
        if response.status_code >= 500:
            raise InferenceError(f"the service at {self.url} failed ({response.status_code}): {_message(response)}")
        return response

    def _model_info(self) -> dict:
        return self._request("GET", "/v1/model").json()

    def _check(self, expected_model: str | None) -> None:
        """The served model must take what this client sends (uint8 NHWC 224x224 RGB crops)."""
        spec = self.info.get("input", {})
        expected = {"dtype": "uint8", "shape": [-1, *INPUT_SHAPE], "crop": DEFAULT_PREPROCESS.spec}
        actual = {key: spec.get(key) for key in expected}
        if actual != expected:
            raise ModelMismatchError(f"the service at {self.url} expects input {actual}; this client sends {expected}")
        if expected_model and self.info.get("model") != expected_model:
            raise ModelMismatchError(f"the service at {self.url} serves {self.info.get('model')!r}, "
                                     f"expected {expected_model!r}")

    # -- embedding ------------------------------------------------------------------------------------
    def _post(self, images: np.ndarray) -> httpx.Response:
        if self.payload == "uint8":
            return self._request("POST", "/embed", content=encode_npy(images),
                                 headers={"Content-Type": NPY_TYPE})
        files = [("image", (f"{i}.jpg", encode_jpeg(crop, self.jpeg_quality), "image/jpeg"))
                 for i, crop in enumerate(images)]
        return self._request("POST", "/embed", files=files)

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        images = check_batch(images)
        response = call_with_retries(lambda: self._post(images), retries=self.retries, backoff=self.backoff)
        try:
            out = np.load(io.BytesIO(response.content), allow_pickle=False)
        except Exception as error:
            raise InferenceError(f"the service at {self.url} sent an unreadable answer: {error}") from error
        if out.dtype != np.float32 or out.shape[0] != len(images):
            raise InferenceError(f"the service at {self.url} returned {out.dtype} {list(out.shape)} "
                                 f"for {len(images)} images")
        return out

    def close(self) -> None:
        self._client.close()

    def __repr__(self) -> str:
        return f"HttpServiceBackend({self.url}, {self.model_id}, payload={self.payload})"


def _message(response: httpx.Response) -> str:
    try:
        body = response.json()
        return body.get("message") or body.get("error") or response.text[:200]
    except Exception:  # not JSON
        return response.text[:200] or response.reason_phrase
