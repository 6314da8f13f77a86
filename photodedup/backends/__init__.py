"""Backends: one file each, one method each (``embed_batch``). ``get_backend`` is the only place
that knows every name."""

from __future__ import annotations

import importlib

from photodedup.backends.base import Backend, embed_batches
from photodedup.errors import BadInputError

# name -> "module:factory". Each factory takes keyword options and returns a Backend.
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


def get_backend(name: str, **options) -> Backend:
    """Create the backend called ``name``; options are passed to its constructor."""
    if name not in _REGISTRY:
        raise BadInputError(f"unknown backend {name!r}", hint=f"choose one of: {', '.join(BACKEND_NAMES)}")
    module_name, _, attr = _REGISTRY[name].partition(":")
    factory = getattr(importlib.import_module(module_name), attr)
    return factory(**options)


__all__ = ["Backend", "BACKEND_NAMES", "embed_batches", "get_backend"]
