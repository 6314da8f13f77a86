"""What an exported model directory is: its files, metadata, crop, where it lives, how to run it.

``export-onnx`` writes such a directory; the onnx backend, ``triton-config``, the Triton model and
``bench`` read it. This module needs no torch (the exporter does), so serving code depends on it and
never on the exporter. A model directory holds:

- ``model.onnx``: ``uint8 [N,224,224,3]`` RGB crops in (normalisation inside the graph), or
  ``float32 [N,3,224,224]`` already normalised (the baseline); ``float32 [N,512]`` L2-normalised out;
- ``preprocess.json``: the crop the model expects (``PreprocessConfig``);
- ``metadata.json``: model id, weights, precision, opset, input/output names, shapes, dtype, sha256.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from photodedup import config
from photodedup.errors import ExportError, ModelNotFoundError
from photodedup.preprocess import PreprocessConfig

MODEL_FILES = ("model.onnx", "metadata.json", "preprocess.json")
#: The folder where the onnx backend keeps the optimised graph (``backends/onnx.py``), rebuilt when missing.
SESSION_CACHE = "session-cache"
INPUT_NAME = "images"
OUTPUT_NAME = "embeddings"


# -- where it lives -------------------------------------------------------------------------------------
def default_export_dir(weights: str = config.DEFAULT_WEIGHTS, precision: str = "fp32",
                       input_kind: str = "uint8", *, seed: int = 0) -> Path:
    """``<models_dir>/<model id with / replaced by ->-<input>-<precision>``."""
    from photodedup.model import model_id_for

    model_id = model_id_for(weights, seed=seed)
    return config.models_dir() / f"{model_id.replace('/', '-')}-{input_kind}-{precision}"


def resolve_model_dir(model_dir: Path | None = None, *, weights: str | None = None,
                      precision: str | None = None, input_kind: str = "uint8") -> Path:
    """``model_dir``, else ``$PHOTODEDUP_MODEL_DIR``, else the default export location for ``weights``
    (at ``precision``, by default the one default every command uses: ``default_precision()``)."""
    if model_dir:
        return Path(model_dir).expanduser()
    if env := os.environ.get("PHOTODEDUP_MODEL_DIR"):
        return Path(env).expanduser()
    from photodedup.backends.base import default_precision

    return default_export_dir(weights or config.DEFAULT_WEIGHTS, precision or default_precision(), input_kind)


def find_export(model_dir: Path | None, input_kind: str = "uint8", *, weights: str | None = None) -> Path:
    """The export to use (see ``resolve_model_dir``), checked to hold every model file."""
    model_dir = resolve_model_dir(model_dir, weights=weights, input_kind=input_kind)
    missing = [name for name in MODEL_FILES if not (model_dir / name).is_file()]
    if missing:
        raise ModelNotFoundError(f"no ONNX export in {model_dir} (missing {', '.join(missing)})",
                                 hint="create one with: photodedup export-onnx (or pass --model-dir)")
    return model_dir


# -- what it holds --------------------------------------------------------------------------------------
def read_metadata(model_dir: Path) -> dict:
    path = Path(model_dir) / "metadata.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise ExportError(f"{path} is missing or unreadable: {error}",
                          hint="run `photodedup export-onnx` to (re)create the model directory") from error


def says_random(is_random: bool | str | None, model_id: str) -> bool:
    """Whether a model's weights are random (its embeddings carry no meaning), from what its export's metadata
    says: ``is_random`` in ``metadata.json``, passed on by the HTTP service (``/v1/model``) and Triton's config
    (a ``"true"``/``"false"`` parameter). ``None``: made before the metadata was passed on (an older service or
    Triton repository, or a hand-made export); then the model id decides, by the rule it was named with
    (random weights are ``<arch>/random-seed<N>``: ``model.model_id_for``)."""
    if is_random is None:
        return "/random" in model_id
    if isinstance(is_random, str):
        return is_random.lower() == "true"
    return bool(is_random)


def read_preprocess(model_dir: Path) -> PreprocessConfig:
    return PreprocessConfig.load(Path(model_dir) / "preprocess.json")


def to_float_input(crops: np.ndarray, cfg: PreprocessConfig) -> np.ndarray:
    """uint8 NHWC crops -> normalised float32 NCHW (the float32 export's input)."""
    x = crops.astype(np.float32) / 255.0
    x = (x - np.asarray(cfg.mean, np.float32)) / np.asarray(cfg.std, np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


# -- how to run it --------------------------------------------------------------------------------------
def default_threads() -> int:
    """One intra-op thread per CPU this process may run on (2 here); inter-op parallelism stays off."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return max(1, os.cpu_count() or 1)


def session_options(precision: str = "fp32", threads: int | None = None, *, device: str = "cpu"):
    """onnxruntime session options: ``threads`` intra-op threads (default: the CPUs we may use),
    sequential execution, no spinning (idle pool threads would steal the cores that decode the next
    batch; measured 24.4 vs 21.6 images/s int8 side by side under shared load), all graph
    optimisations, except for fp16 on the CPU, where onnxruntime 1.32's layout optimisations crash
    while loading the session (extended level is safe)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads or default_threads()
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    level = ort.GraphOptimizationLevel
    options.graph_optimization_level = (level.ORT_ENABLE_EXTENDED if precision == "fp16" and device == "cpu"
                                        else level.ORT_ENABLE_ALL)
    options.log_severity_level = 3
    return options


# -- what it is checked on ------------------------------------------------------------------------------
def sample_crops(n: int = 4, seed: int = 0) -> np.ndarray:
    """Photo-like uint8 crops (smooth gradients, shapes, mild noise): what an export is verified on when
    no real photos are given (random noise alone exercises the graph but not realistic activations),
    and what ``bench`` sends."""
    from PIL import Image, ImageDraw, ImageFilter

    rng = np.random.default_rng(seed)
    crops = []
    for _ in range(n):
        yy, xx = np.mgrid[0:224, 0:224] / 223.0
        base = np.stack([rng.uniform(0, 255) * (1 - yy) + rng.uniform(0, 255) * xx for _ in range(3)], axis=-1)
        image = Image.fromarray(base.clip(0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(6):
            x0, y0 = rng.integers(0, 180, 2)
            x1, y1 = x0 + rng.integers(20, 120), y0 + rng.integers(20, 120)
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            (draw.ellipse if rng.random() < 0.5 else draw.rectangle)((x0, y0, x1, y1), fill=color)
        image = image.filter(ImageFilter.GaussianBlur(1.5))
        noisy = np.asarray(image, dtype=np.float32) + rng.normal(0, 4, (224, 224, 3))
        crops.append(noisy.clip(0, 255).astype(np.uint8))
    return np.stack(crops)
