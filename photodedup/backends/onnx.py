"""The ``onnx`` backend: an exported model directory run by onnxruntime (CPU, CUDA or TensorRT).

It reads ``metadata.json`` and ``preprocess.json`` from the model directory (``exports.py``), never
repeats their constants, and needs no torch. Asking for an execution provider that this onnxruntime does not have
is an error naming the ones it has, never a silent fallback to the CPU.

On the CPU the optimised graph is kept on disk (``SESSION_CACHE`` in the model directory, keyed by the
export, onnxruntime, the options and the CPU: ``session_key``; its weights in a file of their own, mapped
into memory) and later sessions load it with no optimisation to redo; the outputs are the same bit for bit
(onnxruntime's offline mode).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import shutil
from pathlib import Path

import numpy as np

from photodedup.backends.base import Backend, BackendOptions, check_batch, default_precision, l2_normalize
from photodedup.errors import BackendUnavailableError, InferenceError, ModelMismatchError, ModelNotFoundError
from photodedup.exports import (
    SESSION_CACHE,
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
            self.session, self.loaded_from = _open_session(self.model_dir, options, device, self.metadata)
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


def session_key(model_dir: Path, options, device: str, metadata: dict) -> str:
    """What the optimised graph depends on: the export (its sha256, and the size and mtime of model.onnx,
    so that a file replaced by hand counts), onnxruntime's version, the providers, the optimisation
    level, and the CPU (the optimiser picks kernels and layouts for the CPU it runs on)."""
    import onnxruntime as ort

    stat = (model_dir / "model.onnx").stat()
    cpu = ""
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line for line in handle if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    parts = [metadata.get("sha256", ""), str(stat.st_size), str(stat.st_mtime_ns), ort.__version__,
             ",".join(PROVIDERS[device]), str(options.graph_optimization_level), platform.machine(), cpu]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:24]


#: The cached graph's initializers (its weights) go to this file beside it, which onnxruntime maps into
#: memory when it loads the graph instead of parsing them out of one protobuf and copying them: an fp32
#: ViT-B/32 session loads in 0.35 s of CPU instead of 0.8-1.3 s, with the same bits out.
CACHE_WEIGHTS = "weights.bin"


def _open_session(model_dir: Path, options, device: str, metadata: dict):
    """``(session, the file it was loaded from)``. On the CPU: from the cached optimised graph when it
    matches ``session_key`` (a folder named by the key: ``model.onnx`` and its weights, ``CACHE_WEIGHTS``),
    else from model.onnx, saving the optimised graph for the next time (a model directory that cannot be
    written is simply not cached). Other providers load model.onnx (TensorRT compiles nodes, which cannot
    be saved)."""
    import onnxruntime as ort

    source = model_dir / "model.onnx"
    providers = PROVIDERS[device]
    if device != "cpu":
        return ort.InferenceSession(str(source), options, providers=providers), source
    folder = model_dir / SESSION_CACHE
    entry = folder / session_key(model_dir, options, device, metadata)
    cached = entry / "model.onnx"
    if cached.is_file():
        level = options.graph_optimization_level
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # done already
        try:
            return ort.InferenceSession(str(cached), options, providers=providers), cached
        except Exception as error:  # noqa: BLE001 - a damaged cache is rebuilt from model.onnx
            log.warning("the cached onnxruntime graph %s cannot be loaded (%s): rebuilding it", cached, error)
            options.graph_optimization_level = level
            shutil.rmtree(entry, ignore_errors=True)
    partial = folder / f".{entry.name}.{os.getpid()}.partial"  # renamed to ``entry`` once complete
    try:
        partial.mkdir(parents=True, exist_ok=True)
        options.optimized_model_filepath = str(partial / "model.onnx")
        options.add_session_config_entry("session.optimized_model_external_initializers_file_name", CACHE_WEIGHTS)
        options.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
    except OSError as error:  # a read-only model directory: no cache
        log.debug("not caching the optimised graph in %s: %s", folder, error)
    try:
        session = ort.InferenceSession(str(source), options, providers=providers)
    except Exception:  # not because of the graph it could not save (a full disk)? then without saving it
        shutil.rmtree(partial, ignore_errors=True)
        if not options.optimized_model_filepath:
            raise
        options.optimized_model_filepath = ""
        return ort.InferenceSession(str(source), options, providers=providers), source
    if (partial / "model.onnx").is_file():
        try:
            os.rename(partial, entry)  # atomic; refused when another process saved the same graph first
            for old in folder.iterdir():  # graphs of an earlier export, onnxruntime or CPU (not one being saved)
                if old != entry and not old.name.startswith("."):
                    shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)
        except OSError as error:
            log.debug("not caching the optimised graph in %s: %s", folder, error)
    shutil.rmtree(partial, ignore_errors=True)
    return session, source
