"""The ``torch-local`` backend: open_clip's ViT-B/32 in PyTorch eager mode (the reference)."""

from __future__ import annotations

import numpy as np

from photodedup import config
from photodedup.backends.base import Backend, BackendOptions, check_batch, l2_normalize
from photodedup.errors import BackendUnavailableError, InferenceError


class TorchLocalBackend(Backend):
    """Embeds uint8 crops with open_clip in PyTorch (fp32), the same graph ``export-onnx`` exports."""

    name = "torch-local"

    @classmethod
    def from_options(cls, options: BackendOptions) -> TorchLocalBackend:
        return cls(options.weights or config.DEFAULT_WEIGHTS, options.device, options.seed, threads=options.threads)

    def __init__(self, weights: str = config.DEFAULT_WEIGHTS, device: str = "cpu", seed: int = 0, *,
                 threads: int | None = None, max_batch_size: int = 256) -> None:
        try:
            import torch
        except ImportError as error:  # pragma: no cover - torch is optional at run time
            raise BackendUnavailableError("the torch-local backend needs PyTorch and open_clip",
                                          hint="pip install torch open_clip_torch, or use --backend onnx") from error
        from photodedup.model import image_encoder, load_model

        if device.startswith("cuda") and not torch.cuda.is_available():
            raise BackendUnavailableError(f"PyTorch sees no CUDA device here (--device {device})",
                                          hint="use --device cpu")
        if threads:
            torch.set_num_threads(threads)
        loaded = load_model(weights, seed=seed, device=device)
        self.model_id = loaded.model_id
        self.is_random = loaded.is_random
        self.weights = loaded.weights
        self.preprocess = loaded.preprocess
        self.device = device
        self.max_batch_size = max_batch_size
        self.encoder = image_encoder(loaded, "uint8")

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        from photodedup.model import embed_with_torch

        try:
            return l2_normalize(embed_with_torch(self.encoder, check_batch(images)))
        except RuntimeError as error:
            raise InferenceError(f"PyTorch failed on a batch of {len(images)}: {error}") from error

    def close(self) -> None:
        self.encoder = None
