"""The ``onnx`` backend: an exported model directory run by onnxruntime (CPU, CUDA or TensorRT).

It reads ``metadata.json`` and ``preprocess.json`` from the model directory (``exports.py``), never
repeats their constants, and needs no torch. Asking for an execution provider that this onnxruntime does not have
is an error naming the ones it has, never a silent fallback to the CPU.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from photodedup.backends.base import Backend, BackendOptions, check_batch, default_precision, l2_normalize
from photodedup.errors import BackendUnavailableError, InferenceError, ModelMismatchError, ModelNotFoundError
from photodedup.exports import (
    read_metadata,
    read_preprocess,
    resolve_model_dir,
    says_random,
    session_options,
    to_float_input,
)

log = logging.getLogger(__name__)

PROVIDERS = {
    "cpu": ["CPUExecutionProvider"],
    "cuda": ["CUDAExecutionProvider", "CPUExecutionProvider"],
    "tensorrt": ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"],
}


class OnnxBackend(Backend):
    """Embeds uint8 crops with an exported ViT-B/32 through onnxruntime."""

    name = "onnx"

    @classmethod
    def from_options(cls, options: BackendOptions) -> OnnxBackend:
        return cls(options.model_dir, options.device, options.threads, weights=options.weights,
                   precision=options.precision or default_precision(options.device),
                   max_batch_size=options.max_batch_size or 256)

    def __init__(self, model_dir: Path | None = None, device: str = "cpu", threads: int | None = None, *,
                 weights: str | None = None, precision: str = "fp32", max_batch_size: int = 256) -> None:
        import onnxruntime as ort

        self.model_dir = resolve_model_dir(model_dir, weights=weights, precision=precision)
        weights_flag = f" --weights {weights}" if weights else ""
        if not (self.model_dir / "model.onnx").is_file():
            raise ModelNotFoundError(
                f"no ONNX export in {self.model_dir}",
                hint=f"run `photodedup export-onnx{weights_flag} --precision {precision}` first, "
                     "or point --model-dir (PHOTODEDUP_MODEL_DIR) at an export")
        self.metadata = read_metadata(self.model_dir)
        self.precision = self.metadata.get("precision", "fp32")
        self.model_id: str = self.metadata["model_id"]
        self.is_random = says_random(self.metadata.get("is_random"), self.model_id)
        self.weights: str = self.metadata.get("weights", self.model_id.split("/", 1)[-1])
        self.preprocess = read_preprocess(self.model_dir)
        self.input_name: str = self.metadata["input_name"]
        self.output_name: str = self.metadata["output_name"]
        self.input_dtype = self.metadata.get("input_dtype", "uint8")
        self.max_batch_size = max_batch_size
        if self.is_random:
            from photodedup.model import RANDOM_WARNING

            log.warning(RANDOM_WARNING)

        if device not in PROVIDERS:
            raise BackendUnavailableError(f"unknown device {device!r} for the onnx backend",
                                          hint=f"choose one of: {', '.join(PROVIDERS)}")
        available = ort.get_available_providers()
        wanted = PROVIDERS[device][0]
        if wanted not in available:
            raise BackendUnavailableError(
                f"onnxruntime has no {wanted} here (--device {device}); available providers: {', '.join(available)}",
                hint="use --device cpu, or install onnxruntime-gpu on a machine with an NVIDIA GPU")
        options = session_options(self.metadata.get("precision", "fp32"), threads, device=device)
        self.threads = options.intra_op_num_threads
        self.device = device
        try:
            self.session = ort.InferenceSession(str(self.model_dir / "model.onnx"), options,
                                                providers=PROVIDERS[device])
        except Exception as error:  # onnxruntime raises its own Fail/InvalidGraph types
            raise BackendUnavailableError(
                f"onnxruntime cannot load {self.model_dir / 'model.onnx'}: {error}") from error
        if wanted not in self.session.get_providers():
            raise BackendUnavailableError(
                f"onnxruntime could not start {wanted} (--device {device}); "
                f"the session runs on {', '.join(self.session.get_providers())}",
                hint="check the CUDA/TensorRT libraries onnxruntime-gpu needs, or use --device cpu")
        self._check_io()

    def _check_io(self) -> None:
        inputs = {i.name: i for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if self.input_name not in inputs or self.output_name not in outputs:
            raise ModelMismatchError(
                f"{self.model_dir / 'model.onnx'} has inputs {sorted(inputs)} and outputs {sorted(outputs)}; "
                f"metadata.json expects {self.input_name!r} -> {self.output_name!r}",
                hint="re-run `photodedup export-onnx`")
        expected = "tensor(uint8)" if self.input_dtype == "uint8" else "tensor(float)"
        actual = inputs[self.input_name].type
        if actual != expected:
            raise ModelMismatchError(f"{self.model_dir / 'model.onnx'} input {self.input_name!r} is {actual}, "
                                     f"metadata.json says {expected}", hint="re-run `photodedup export-onnx`")

    def embed_batch(self, images: np.ndarray) -> np.ndarray:
        images = check_batch(images)
        if self.input_dtype == "uint8":
            feed = images
        else:
            feed = to_float_input(images, self.preprocess)
        try:
            out = self.session.run([self.output_name], {self.input_name: feed})[0]
        except Exception as error:
            raise InferenceError(f"onnxruntime failed on a batch of {len(images)}: {error}") from error
        return l2_normalize(out)

    def close(self) -> None:
        self.session = None

    def __repr__(self) -> str:
        return (f"OnnxBackend({self.model_id}, {self.metadata.get('precision')}, {self.input_dtype} input, "
                f"{self.device}, {self.threads} threads)")
