"""The ``torch-local`` backend: open_clip's ViT-B/32 in PyTorch, on the CPU (the reference) or a GPU.

The model runs through ``photodedup.gpu.DeviceEncoder`` on every device: uint8 crops uploaded as they
are, normalised on the device, fp32/fp16/bf16 weights, eager or CUDA graphs or ``torch.compile``.
"""

from __future__ import annotations

import numpy as np

from photodedup import config
from photodedup.backends.base import Backend, BackendOptions, check_batch
from photodedup.errors import BackendUnavailableError, InferenceError


class TorchLocalBackend(Backend):
    """Embeds uint8 crops with open_clip in PyTorch, the same graph ``export-onnx`` exports."""

    name = "torch-local"

    @classmethod
    def from_options(cls, options: BackendOptions) -> TorchLocalBackend:
        return cls(options.weights or config.DEFAULT_WEIGHTS, options.device, options.seed, threads=options.threads,
                   max_batch_size=options.max_batch_size, precision=options.precision or "auto", mode=options.mode,
                   warm_up=options.warm_up)

    def __init__(self, weights: str = config.DEFAULT_WEIGHTS, device: str = "cpu", seed: int = 0, *,
                 threads: int | None = None, max_batch_size: int | None = None, precision: str = "auto",
                 mode: str = "auto", chunk: int | None = None, warm_up: bool = False) -> None:
        try:
            import torch
        except ImportError as error:  # pragma: no cover - torch is optional at run time
            raise BackendUnavailableError("the torch-local backend needs PyTorch and open_clip",
                                          hint="pip install torch open_clip_torch, or use --backend onnx") from error
        from photodedup import gpu
        from photodedup.model import load_model

        gpu.check_device(device)
        if threads:
            torch.set_num_threads(threads)
        self.device = device
        self.max_batch_size = max_batch_size or (gpu.MAX_BATCH if device.startswith("cuda") else 256)
        self.loaded = load_model(weights, seed=seed, device=device)
        self.model_id = self.loaded.model_id
        self.is_random = self.loaded.is_random
        self.weights = self.loaded.weights
        self.preprocess = self.loaded.preprocess
        self.encoder = gpu.DeviceEncoder.from_loaded(
            self.loaded, device=device, precision=precision, mode=mode, max_batch_size=self.max_batch_size,
            chunk=chunk or gpu.DEFAULT_CHUNK)
        self.mode = self.encoder.mode
        self.precision = self.encoder.precision
        if warm_up:
            self.encoder.warm_up()

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        try:
            return self.encoder.embed(check_batch(images))
        except RuntimeError as error:
            raise InferenceError(f"PyTorch failed on a batch of {len(images)}: {error}") from error

    def close(self) -> None:
        if self.encoder is not None:
            self.encoder.close()
        self.encoder = None
        self.loaded = None
