"""The backend contract: embed one uint8 batch, return (N, 512) float32 L2-normalised rows.

``Backend`` is the embedding interface (``embed_batch``, ``close``, ``model_id``, ``preprocess``; the rest
with defaults), ``RemoteBackend`` what a server-side model adds (``url``, ``payload``, ``server``,
``statistics``); ``BackendOptions`` everything a backend may be given. Backends know nothing of the
catalog or the CLI: arrays in, arrays out. Batching, retries and concurrency are written once, here, for
every backend (``embed_batches``).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from photodedup.errors import BackendUnavailableError, InferenceError
from photodedup.preprocess import DEFAULT_PREPROCESS, PreprocessConfig

log = logging.getLogger(__name__)

INPUT_SHAPE = (224, 224, 3)


def default_precision(device: str = "cpu") -> str:
    """The one default ONNX export precision, for every command (embed, run, serve, export-onnx): int8
    on a CPU (dynamic quantisation, about 3x fp32, cosine >= 0.9997 to it), fp32 on a GPU (onnxruntime's
    integer kernels are CPU-only)."""
    return "int8" if device == "cpu" else "fp32"


@dataclass(frozen=True)
class BackendOptions:
    """Every option a backend may be given (by ``embed``, ``serve``, ``bench``, ``run`` or the API).

    Each backend's ``from_options`` reads the ones it understands and ignores the rest, so callers
    pass what the user said and never route options by backend name. ``None`` means the default.
    """

    model_dir: Path | None = None  # onnx, auto's fallback: an export directory
    weights: str | None = None  # onnx (which default export), torch-local: a tag, a checkpoint, random
    precision: str | None = None  # onnx: which default export (default_precision); torch-local: auto/fp32/fp16/bf16
    device: str = "cpu"  # onnx: cpu/cuda/tensorrt; torch-local: cpu/cuda
    threads: int | None = None  # in-process backends: intra-op threads
    seed: int = 0  # torch-local with random weights
    mode: str = "auto"  # torch-local: eager, CUDA graphs or compile (see gpu.py)
    warm_up: bool = False  # torch-local: build the CUDA graph or compiled code now
    max_batch_size: int | None = None  # in-process backends: the largest model call
    url: str | None = None  # remote backends: the server
    token: str | None = None  # http-service, auto: the bearer token
    payload: str | None = None  # http-service, auto: jpeg or uint8
    model: str | None = None  # triton-*: the served model's name
    in_flight: int | None = None  # remote backends: requests kept in flight by ``embed``


class Backend(ABC):
    """The embedding interface: every backend implements ``embed_batch`` and ``close`` and sets ``model_id``
    and ``preprocess`` (what it embeds with and the crop that model expects). What a model running in a
    server adds is ``RemoteBackend``'s. The rest has a default here, so callers read attributes, never probe.

    ``model_id`` names architecture and weights (``ViT-B-32/laion2b_s34b_b79k``); embeddings of two
    backends are comparable exactly when their model ids are equal.
    """

    #: The registry name (``onnx``, ``triton-grpc``...).
    name: str = ""
    model_id: str
    #: The crop the model expects (travels with the model: ``preprocess.json``).
    preprocess: PreprocessConfig = DEFAULT_PREPROCESS
    #: The largest batch one ``embed_batch`` call takes; ``embed_batches`` splits larger ones.
    max_batch_size: int = 256
    #: Batches ``embed`` keeps in flight: 1 for in-process backends (one session already uses every
    #: core), several for remote ones (the server batches and computes while the client prepares).
    in_flight: int = 1
    #: What the model takes: ``uint8`` crops (the contract) or ``float32`` normalised NCHW (the baseline).
    input_dtype: str = "uint8"
    #: Where the model runs, for in-process backends (``cpu``, ``cuda``...); remote ones: ``cpu``
    #: (what the client does, decoding, runs on the CPU).
    device: str = "cpu"
    #: The numeric precision the model runs at (``fp32``, ``fp16``, ``bf16``, ``int8``); None when the
    #: backend cannot know (a remote server).
    precision: str | None = None
    #: Random weights: embeddings that carry no meaning (said loudly by ``embed`` and ``run``). Each backend
    #: sets it from what made its model: the export's metadata (``exports.says_random``), the loader, the server.
    is_random: bool = False

    @property
    def embedding_id(self) -> str:
        """What the catalog files this backend's vectors under: the model id, plus the precision when it
        is not fp32 (``ViT-B-32/laion2b_s34b_b79k@int8``), so vectors of two precisions never mix."""
        if self.precision in (None, "fp32"):
            return self.model_id
        return f"{self.model_id}@{self.precision}"

    @classmethod
    def from_options(cls, options: BackendOptions) -> Backend:
        """Build the backend from the options it understands."""
        raise NotImplementedError

    @cached_property
    def weights(self) -> str:
        """What the weights are called (a tag, a checkpoint, ``random``); by default from the model id."""
        return self.model_id.split("/", 1)[-1]

    @property
    def last_backend(self) -> str:
        """The backend that embedded the calling thread's latest batch (``auto`` has two)."""
        return self.name

    @abstractmethod
    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        """Embed ``uint8 [N,224,224,3]`` RGB crops; return ``float32 [N,512]``, L2-normalised."""

    @abstractmethod
    def close(self) -> None:
        """Release sessions, connections and threads."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class RemoteBackend(Backend):
    """A backend whose model runs in a server (our HTTP service, Triton): what crosses the wire and where to."""

    #: The server's address.
    url: str
    #: What crosses the wire per image: ``jpeg``, ``uint8`` or ``fp32`` (None: ``auto`` embedding locally).
    payload: str | None = None
    #: Which server answers at ``url``: ``photodedup`` (our service, with ``/metrics``), ``triton``
    #: (with ``statistics()``), or None.
    server: str | None = None

    def statistics(self) -> dict:
        """The server's own counters (``server == "triton"`` only)."""
        raise NotImplementedError(f"{self.name} has no server statistics")


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
        return BatchResult(index, out, time.perf_counter() - start, backend.last_backend)

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
