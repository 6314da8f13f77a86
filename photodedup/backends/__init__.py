"""Backends: one file each, each a ``Backend`` (``base.py``: the embedding interface; a server's model:
``RemoteBackend``). ``get_backend`` is the only place that knows every name; each backend builds itself from
the options it understands."""

from __future__ import annotations

import dataclasses
import importlib

from photodedup.backends.base import Backend, BackendOptions, embed_batches
from photodedup.errors import BadInputError

# name -> "module:class". Each class has ``from_options(BackendOptions) -> Backend``.
_REGISTRY: dict[str, str] = {
    "torch-local": "photodedup.backends.torch_local:TorchLocalBackend",
    "onnx": "photodedup.backends.onnx:OnnxBackend",
    "http-service": "photodedup.backends.http_service:HttpServiceBackend",
    "triton-http": "photodedup.backends.triton:TritonHttpBackend",
    "triton-grpc": "photodedup.backends.triton:TritonGrpcBackend",
    "triton-trt": "photodedup.backends.triton:TritonTrtBackend",
    "auto": "photodedup.backends.auto:AutoBackend",
}

BACKEND_NAMES = tuple(_REGISTRY)
OPTION_NAMES = tuple(f.name for f in dataclasses.fields(BackendOptions))


def get_backend(name: str, **options) -> Backend:
    """Create the backend called ``name`` from ``options`` (``BackendOptions`` fields; None: default)."""
    if name not in _REGISTRY:
        raise BadInputError(f"unknown backend {name!r}", hint=f"choose one of: {', '.join(BACKEND_NAMES)}")
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise BadInputError(f"unknown backend option(s) {', '.join(unknown)}",
                            hint=f"backends take: {', '.join(OPTION_NAMES)}")
    given = {key: value for key, value in options.items() if value is not None}
    module_name, _, attr = _REGISTRY[name].partition(":")
    backend_class = getattr(importlib.import_module(module_name), attr)
    return backend_class.from_options(BackendOptions(**given))


__all__ = ["Backend", "BackendOptions", "BACKEND_NAMES", "embed_batches", "get_backend"]
