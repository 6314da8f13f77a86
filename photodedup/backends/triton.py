"""Triton Inference Server backends: ``triton-http``, ``triton-grpc`` and ``triton-trt``.

Tensors travel as binary data (never JSON floats). Each thread that calls ``embed_batch`` gets its
own client (``embed_batches(in_flight=N)`` keeps N requests in flight, and Triton's dynamic batcher
joins them); a client keeps its connection open between calls. On connect the backend checks that
the server is up (failing fast with the URL), waits up to ``ready_timeout`` for the model to be
ready, and checks the served model's metadata against what it will send, the way Triton's own
``image_client.py`` does in ``parse_model``.

Which model, when none is named: ``triton-http``/``triton-grpc`` take ``openclip_vit_b32`` (CUDA) when
the server has it ready, else ``openclip_vit_b32_cpu`` (the Python-backend variant that servers
without an onnxruntime backend, like nvidia-pytriton's, can run); ``triton-trt`` takes
``openclip_vit_b32_trt`` only. ``triton-trt`` talks gRPC.
"""

from __future__ import annotations

import logging
import os
import threading
import time

import numpy as np

from photodedup import config as app_config
from photodedup.backends.base import BackendOptions, RemoteBackend, check_batch, l2_normalize
from photodedup.config import EMBEDDING_DIM
from photodedup.errors import BackendUnavailableError, InferenceError, ModelMismatchError, ModelNotFoundError
from photodedup.exports import says_random, to_float_input
from photodedup.preprocess import DEFAULT_PREPROCESS
from photodedup.triton.config import CPU_MODEL, CUDA_MODEL, TRT_MODEL

log = logging.getLogger(__name__)

#: What the client can send: uint8 NHWC crops (the contract), or the fp32 NCHW baseline export.
ACCEPTED_INPUTS = {"UINT8": [-1, 224, 224, 3], "FP32": [-1, 3, 224, 224]}
#: Requests ``embed`` keeps in flight: the server's dynamic batcher joins them, and the client
#: serialises the next batch while the server computes (see docs/BENCHMARKS.md, "Triton in flight").
DEFAULT_IN_FLIGHT = 4
HINT_START = "start one with: photodedup serve --engine triton (see docs/TRITON.md)"


class _TritonBackend(RemoteBackend):
    """The protocol-independent part; subclasses supply the client calls."""

    name = "triton"
    server = "triton"
    protocol = ""
    default_url = ""
    env_var = ""
    default_models: tuple[str, ...] = (CUDA_MODEL, CPU_MODEL)

    @classmethod
    def from_options(cls, options: BackendOptions) -> _TritonBackend:
        return cls(options.url, options.model, in_flight=options.in_flight or DEFAULT_IN_FLIGHT)

    def __init__(self, url: str | None = None, model: str | None = None, *, timeout: float = 120.0,
                 ready_timeout: float = 30.0, connect_timeout: float = 5.0,
                 in_flight: int = DEFAULT_IN_FLIGHT) -> None:
        self.url = _strip_scheme(url or os.environ.get(self.env_var) or self.default_url)
        self.in_flight = max(1, in_flight)
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self._local = threading.local()
        self._clients: list = []
        self._lock = threading.Lock()
        try:
            client = self._client()
            self._check_live(client)
            self.model_name = self._wait_for_model(client, model, ready_timeout)
            self._check_metadata(client)
        except BaseException:
            self.close()
            raise

    # -- connecting and checking -------------------------------------------------------------------
    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._new_client()
            self._local.client = client
            with self._lock:
                self._clients.append(client)
        return client

    def _call(self, what: str, fn, *args, **kwargs):
        """Run one client call, mapping a dead connection to BackendUnavailableError."""
        try:
            return fn(*args, **kwargs)
        except Exception as error:  # noqa: BLE001 - tritonclient raises many kinds; classified here
            if _is_connection_error(error):
                raise BackendUnavailableError(
                    f"Triton at {self.protocol}://{self.url} is not reachable ({what}: {_describe(error)})",
                    hint=HINT_START) from error
            raise

    def _check_live(self, client) -> None:
        try:
            live = self._call("health check", self._is_live, client)
        except BackendUnavailableError:
            raise
        except Exception as error:  # noqa: BLE001
            raise BackendUnavailableError(
                f"Triton at {self.protocol}://{self.url} did not answer a health check: {_describe(error)}",
                hint=HINT_START) from error
        if not live:
            raise BackendUnavailableError(f"Triton at {self.protocol}://{self.url} is not live", hint=HINT_START)

    def _wait_for_model(self, client, model: str | None, ready_timeout: float) -> str:
        deadline = time.monotonic() + ready_timeout
        while True:
            index = {entry["name"]: entry for entry in self._call("repository index", self._index, client)}
            name = model or _pick(self.default_models, index)
            if name not in index:
                wanted = f"{name!r}" if name else " or ".join(repr(m) for m in self.default_models)
                raise ModelNotFoundError(
                    f"Triton at {self.protocol}://{self.url} has no model {wanted} "
                    f"(it has: {', '.join(sorted(index)) or 'none'})",
                    hint="generate the repository with: photodedup triton-config, then restart the server")
            state, reason = index[name].get("state", ""), index[name].get("reason", "")
            if state == "READY" and self._call("model readiness", self._is_ready, client, name):
                return name
            if state not in ("LOADING", "READY") or time.monotonic() > deadline:
                what = state or "not loaded"
                raise BackendUnavailableError(
                    f"model {name!r} on Triton at {self.protocol}://{self.url} is not ready ({what}"
                    f"{': ' + reason if reason else ''})",
                    hint="the server may lack this model's backend; see its log and docs/TRITON.md")
            time.sleep(0.25)

    def _check_metadata(self, client) -> None:
        metadata = self._call("model metadata", self._metadata, client, self.model_name)
        config = self._call("model config", self._config, client, self.model_name)
        where = f"model {self.model_name!r} on Triton at {self.protocol}://{self.url}"
        inputs, outputs = metadata.get("inputs", []), metadata.get("outputs", [])
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelMismatchError(f"{where}: expected 1 input and 1 output, served {len(inputs)} and {len(outputs)}")
        (tensor_in,), (tensor_out,) = inputs, outputs
        dtype, shape = tensor_in["datatype"], [int(d) for d in tensor_in["shape"]]
        if ACCEPTED_INPUTS.get(dtype) != shape:
            raise ModelMismatchError(
                f"{where}: expected input UINT8 {ACCEPTED_INPUTS['UINT8']} (or FP32 {ACCEPTED_INPUTS['FP32']}), "
                f"served {tensor_in['name']!r} {dtype} {shape}")
        out_dtype, out_shape = tensor_out["datatype"], [int(d) for d in tensor_out["shape"]]
        if (out_dtype, out_shape) != ("FP32", [-1, EMBEDDING_DIM]):
            raise ModelMismatchError(
                f"{where}: expected output FP32 [-1, {EMBEDDING_DIM}], "
                f"served {tensor_out['name']!r} {out_dtype} {out_shape}")
        max_batch = int(config.get("max_batch_size", 0))
        if max_batch < 1:
            raise ModelMismatchError(f"{where}: expected max_batch_size >= 1 (batching), served {max_batch}")
        self.input_name, self.wire_dtype = tensor_in["name"], dtype
        self.input_dtype = "uint8" if dtype == "UINT8" else "float32"
        self.payload = "uint8" if dtype == "UINT8" else "fp32"
        self.output_name = tensor_out["name"]
        self.max_batch_size = max_batch
        parameters = config.get("parameters", {})
        self.model_id = parameters.get("model_id", {}).get("string_value") or f"triton:{self.model_name}"
        self.is_random = says_random(parameters.get("is_random", {}).get("string_value"), self.model_id)
        log.info("%s: %s, input %s %s, max batch %d", where, self.model_id, self.input_name, dtype, max_batch)

    # -- the one method ----------------------------------------------------------------------------
    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        batch = _to_model_input(check_batch(images), self.wire_dtype)
        client = self._client()
        try:
            out = self._call("inference", self._infer, client, batch)
        except BackendUnavailableError:
            raise
        except Exception as error:  # noqa: BLE001 - the server answered with an error
            if not self._still_serving(client):  # "unknown model", "connection closed": it is going away
                raise BackendUnavailableError(
                    f"Triton at {self.protocol}://{self.url} is shutting down (or restarting): the batch of "
                    f"{len(batch)} was not run ({_describe(error)})", hint=HINT_START) from error
            raise InferenceError(f"Triton {self.model_name!r} at {self.protocol}://{self.url} failed a batch of "
                                 f"{len(batch)}: {_describe(error)}") from error
        if out is None or out.shape != (len(batch), EMBEDDING_DIM):
            shape = None if out is None else list(out.shape)
            raise InferenceError(f"Triton {self.model_name!r} returned {shape} for {len(batch)} images")
        return l2_normalize(out)

    def statistics(self) -> dict:
        """Triton's statistics extension for this model, as counts and nanosecond totals."""
        raw = self._call("statistics", self._statistics, self._client(), self.model_name)
        return parse_statistics(raw, self.model_name)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            try:
                client.close()
            except Exception as error:  # noqa: BLE001 - closing must not fail the caller
                log.debug("closing a Triton client: %s", error)
        self._local = threading.local()

    # -- the calls, in each protocol's spelling ----------------------------------------------------
    def _still_serving(self, client) -> bool:
        """Whether the server still serves our model (False while it shuts down and unloads it)."""
        try:
            return bool(self._is_ready(client, self.model_name))
        except Exception:  # noqa: BLE001 - no answer at all: not serving
            return False

    def _ask(self, client, method: str, *args, timeout: float, as_json: bool = True):
        return getattr(client, method)(*args, **self._query_options(timeout, as_json))

    def _is_live(self, client) -> bool:
        return self._ask(client, "is_server_live", timeout=self.connect_timeout, as_json=False)

    def _is_ready(self, client, name: str) -> bool:
        return self._ask(client, "is_model_ready", name, timeout=self.connect_timeout, as_json=False)

    def _index(self, client) -> list[dict]:
        index = self._ask(client, "get_model_repository_index", timeout=self.timeout)
        return index.get("models", []) if isinstance(index, dict) else index  # gRPC wraps the list

    def _metadata(self, client, name: str) -> dict:
        return self._ask(client, "get_model_metadata", name, timeout=self.timeout)

    def _config(self, client, name: str) -> dict:
        config = self._ask(client, "get_model_config", name, timeout=self.timeout)
        return config.get("config", config)  # gRPC wraps the config

    def _statistics(self, client, name: str) -> dict:
        return self._ask(client, "get_inference_statistics", name, timeout=self.timeout)

    def _infer(self, client, batch: np.ndarray) -> np.ndarray:
        module = self._module()
        tensor = module.InferInput(self.input_name, list(batch.shape), self.wire_dtype)
        tensor.set_data_from_numpy(batch, **self.tensor_options)
        wanted = module.InferRequestedOutput(self.output_name, **self.tensor_options)
        result = client.infer(self.model_name, [tensor], outputs=[wanted], **self._query_options(self.timeout, False))
        return result.as_numpy(self.output_name)

    # -- what differs between the protocols --------------------------------------------------------
    tensor_options: dict = {}

    def _module(self): raise NotImplementedError
    def _new_client(self): raise NotImplementedError
    def _query_options(self, timeout: float, as_json: bool) -> dict: raise NotImplementedError


class TritonHttpBackend(_TritonBackend):
    """Triton over HTTP/REST (``tritonclient.http``), binary tensor data. Default ``127.0.0.1:8003``."""

    name = "triton-http"
    protocol = "http"
    default_url = f"127.0.0.1:{app_config.TRITON_HTTP_PORT}"
    env_var = "PHOTODEDUP_TRITON_URL"
    tensor_options = {"binary_data": True}

    def _module(self):
        import tritonclient.http

        return tritonclient.http

    def _new_client(self):
        return self._module().InferenceServerClient(self.url, connection_timeout=self.connect_timeout,
                                                    network_timeout=self.timeout)

    def _query_options(self, timeout: float, as_json: bool) -> dict:
        return {}  # JSON already; the client's own timeouts apply


class TritonGrpcBackend(_TritonBackend):
    """Triton over gRPC (``tritonclient.grpc``). Default ``127.0.0.1:8004``."""

    name = "triton-grpc"
    protocol = "grpc"
    default_url = f"127.0.0.1:{app_config.TRITON_GRPC_PORT}"
    env_var = "PHOTODEDUP_TRITON_GRPC_URL"

    def _module(self):
        import tritonclient.grpc

        return tritonclient.grpc

    def _new_client(self):
        return self._module().InferenceServerClient(self.url)

    def _query_options(self, timeout: float, as_json: bool) -> dict:
        return {"client_timeout": timeout, **({"as_json": True} if as_json else {})}


class TritonTrtBackend(TritonGrpcBackend):
    """The TensorRT variant (``openclip_vit_b32_trt``: onnxruntime + TensorRT EP, FP16) over gRPC."""

    name = "triton-trt"
    default_models = (TRT_MODEL,)


def parse_statistics(raw: dict, model: str) -> dict:
    """Flatten one model's entry of Triton's statistics extension (HTTP and gRPC JSON alike)."""
    entries = [entry for entry in raw.get("model_stats", []) if entry.get("name") == model]
    totals = {"inference_count": 0, "execution_count": 0}
    stages = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")
    totals.update({f"{stage}_{unit}": 0 for stage in stages for unit in ("count", "ns")})
    for entry in entries:
        totals["inference_count"] += int(entry.get("inference_count", 0))
        totals["execution_count"] += int(entry.get("execution_count", 0))
        for stage in stages:
            value = entry.get("inference_stats", {}).get(stage, {})
            totals[f"{stage}_count"] += int(value.get("count", 0))
            totals[f"{stage}_ns"] += int(value.get("ns", 0))
    return {"model": model, **totals}


def _pick(candidates: tuple[str, ...], index: dict[str, dict]) -> str | None:
    """The first candidate that is READY, else the first one the server knows, else None."""
    for name in candidates:
        if index.get(name, {}).get("state") == "READY":
            return name
    return next((name for name in candidates if name in index), None)


def _to_model_input(images: np.ndarray, dtype: str) -> np.ndarray:
    """uint8 NHWC as is; for an FP32 model, normalise and transpose to NCHW the way the export does."""
    if dtype == "UINT8":
        return images
    return to_float_input(images, DEFAULT_PREPROCESS)


def _strip_scheme(url: str) -> str:
    for scheme in ("http://", "https://", "grpc://"):
        if url.startswith(scheme):
            return url[len(scheme):].rstrip("/")
    return url.rstrip("/")


def _is_connection_error(error: BaseException) -> bool:
    if isinstance(error, (ConnectionError, TimeoutError, OSError)):
        return True
    status = str(getattr(error, "status", lambda: "")() or "")
    return status in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED")


def _describe(error: BaseException) -> str:
    message = getattr(error, "message", None)
    text = message() if callable(message) else str(error)
    return text or type(error).__name__
