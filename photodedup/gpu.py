"""ViT-B/32 on a GPU, fast, and JPEG decoding on the GPU (nvJPEG through torchvision).

Both run unchanged on the CPU (``device="cpu"``), which is how they are tested on machines without
a GPU. Nothing here has been measured on a GPU yet: ``benchmarks/gpu_check.py`` does that (docs/GPU.md).

``DeviceEncoder``: ``uint8 [N,224,224,3]`` crops in, L2-normalised ``float32 [N,512]`` out.

- crops cross to the device as uint8 (4x fewer bytes than float32), from pinned staging buffers with
  non-blocking copies on a copy stream; two staging slots, so filling and uploading one chunk overlaps
  the model running on the previous one;
- /255, mean/std and NHWC -> NCHW happen on the device. The NCHW view of NHWC memory *is* the
  channels-last layout, so the patch-embedding convolution (weights made channels-last too) reads the
  crops as they arrived, without a transposing copy;
- weights in fp16, bf16 or fp32 (TF32 off, so fp32 is the reference); the embedding is normalised in fp32;
- ``mode``: ``eager``; ``cuda-graphs`` (one graph per power-of-two batch bucket, captured on first use;
  a short batch is padded to its bucket and the rows trimmed: ViT rows never see each other, so the
  padding cannot change the real rows); ``compile`` (``torch.compile`` with static shapes, the same
  buckets). ``auto`` is cuda-graphs on CUDA and eager on the CPU, until the GPU check says otherwise.

``JpegCropper``: encoded files in, model crops out, decoded on the device: ``decode_jpeg`` on a list
(one batched nvJPEG call on CUDA), the EXIF orientation applied as flips and transposes, the shortest
side resized to 224 (bicubic, antialiased) and the centre cropped, all on the device. Files nvJPEG
cannot take (PNG, HEIC, CMYK JPEGs, or a JPEG it fails on) go through the PIL path instead, so every
file gives the crop the CPU path would give or the error it would record. The pixels differ from the
PIL path's (which decodes at reduced DCT scale, ``draft``, then resizes): the GPU check records the
cosine of the resulting embeddings.
"""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from photodedup.errors import BackendUnavailableError, BadInputError
from photodedup.preprocess import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_PREPROCESS,
    PreprocessConfig,
    center_crop_array,
    decode_oriented,
    open_checked,
)

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16", "bf16")  # and "auto": fp16 on a GPU, fp32 on the CPU
MODES = ("auto", "eager", "cuda-graphs", "compile")
#: Largest batch one model call takes on a GPU (1024 crops: 154 MB of uint8).
MAX_BATCH = 1024
#: Images per upload-and-run step inside one call: big enough to fill an H200, small enough that the
#: upload of the next chunk hides behind the model.
DEFAULT_CHUNK = 256
EXIF_ORIENTATION = 0x0112


def require_torch():
    try:
        import torch
    except ImportError as error:  # pragma: no cover - torch is optional at run time
        raise BackendUnavailableError("the GPU paths need PyTorch",
                                      hint="pip install torch torchvision open_clip_torch") from error
    return torch


def check_device(device: str) -> str:
    """``cpu``, ``cuda`` or ``cuda:N``, and PyTorch must see that device."""
    torch = require_torch()
    if device != "cpu" and not device.startswith("cuda"):
        raise BadInputError(f"--device {device!r} is not cpu, cuda or cuda:N")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BackendUnavailableError(f"PyTorch sees no CUDA device here (--device {device})", hint="use --device cpu")
    return device


def torch_dtype(precision: str):
    torch = require_torch()
    if precision not in PRECISIONS:
        raise BadInputError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)} for PyTorch")
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[precision]


def resolve_precision(precision: str, device: str) -> str:
    if precision == "auto":
        return "fp16" if device.startswith("cuda") else "fp32"
    torch_dtype(precision)
    return precision


def resolve_mode(mode: str, device: str) -> str:
    if mode not in MODES:
        raise BadInputError(f"mode {mode!r} is not one of {', '.join(MODES)}")
    if mode == "auto":
        return "cuda-graphs" if device.startswith("cuda") else "eager"
    if mode == "cuda-graphs" and not device.startswith("cuda"):
        raise BadInputError("--mode cuda-graphs needs --device cuda", hint="use --mode eager or compile on the CPU")
    return mode


def bucket(count: int, limit: int) -> int:
    """The power of two at or above ``count``, at most ``limit`` (the batch a graph is captured for)."""
    size = 1
    while size < count:
        size *= 2
    return min(size, limit)


def cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine of two ``[N,D]`` arrays."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return np.sum(a * b, axis=1) / np.maximum(np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1), 1e-12)


class DeviceEncoder:
    """ViT-B/32's image tower on one device (see the module docstring). Thread-safe: calls are serialised."""

    def __init__(self, module, *, device: str = "cpu",
                 precision: str = "auto", mode: str = "auto", max_batch_size: int = MAX_BATCH,
                 chunk: int = DEFAULT_CHUNK, compile_options: dict | None = None) -> None:
        torch = require_torch()
        self.device = check_device(device)
        self.cuda = self.device.startswith("cuda")
        self.precision = resolve_precision(precision, self.device)
        self.dtype = torch_dtype(self.precision)
        self.mode = resolve_mode(mode, self.device)
        self.max_batch_size = max(1, int(max_batch_size))
        self.chunk = max(1, min(int(chunk), self.max_batch_size))
        if self.cuda:
            torch.backends.cuda.matmul.allow_tf32 = False  # fp32 stays the reference
            torch.backends.cudnn.allow_tf32 = False
        # ``module`` is ``model.image_encoder``'s (the graph export-onnx exports): its scale and shift
        # buffers hold the normalisation, in float32; only the image tower takes the precision.
        self.module = module.to(self.device).eval()
        self.visual = module.visual.to(self.dtype)
        self.visual.conv1.to(memory_format=torch.channels_last)
        self._lock = threading.Lock()
        self._graphs: dict[int, tuple] = {}
        self._pool = None
        self._compiled = (torch.compile(self.forward, dynamic=False, **(compile_options or {}))
                          if self.mode == "compile" else None)
        self._slots = [_Slot(self.chunk, self.device) for _ in range(2)]
        self.compute_stream = torch.cuda.Stream(self.device) if self.cuda else None
        self.copy_stream = torch.cuda.Stream(self.device) if self.cuda else None
        host_out = torch.empty((self.max_batch_size, self.dim), dtype=torch.float32)
        self._out = host_out.pin_memory() if self.cuda else host_out

    @classmethod
    def from_loaded(cls, loaded, **options) -> DeviceEncoder:
        """From ``model.load_model``'s result."""
        from photodedup.model import image_encoder

        return cls(image_encoder(loaded, "uint8"), **options)

    @property
    def dim(self) -> int:
        return int(self.visual.output_dim)

    # -- the model on the device ---------------------------------------------------------------------
    def forward(self, images):
        """``uint8 [n,224,224,3]`` on the device -> normalised ``float32 [n,512]`` on the device."""
        import torch

        x = images.permute(0, 3, 1, 2)  # a channels-last NCHW view: no copy
        x = (x.float() * self.module.scale - self.module.shift).to(self.dtype, memory_format=torch.channels_last)
        return torch.nn.functional.normalize(self.visual(x).float(), dim=-1)

    def run(self, images):
        """``forward`` as the mode runs it; ``images`` is a device tensor of at most ``max_batch_size`` rows."""
        if self.mode == "eager":
            return self.forward(images)
        count = len(images)
        size = bucket(count, max(self.chunk, count))
        if self.mode == "compile":
            if size != count:
                padded = images.new_zeros((size, *images.shape[1:]))
                padded[:count].copy_(images)
                images = padded
            return self._compiled(images)[:count]
        graph, static_in, static_out = self._graph(size)
        static_in[:count].copy_(images)
        graph.replay()
        return static_out[:count]

    def _graph(self, size: int) -> tuple:
        """The CUDA graph of ``forward`` for ``size`` rows, captured the first time it is needed."""
        import torch

        if size in self._graphs:
            return self._graphs[size]
        static_in = torch.zeros((size, 224, 224, 3), dtype=torch.uint8, device=self.device)
        side = torch.cuda.Stream(self.device)
        side.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(side):
            for _ in range(2):  # warm-up: cuBLAS handles, autotuning, allocator pools
                self.forward(static_in)
        torch.cuda.current_stream(self.device).wait_stream(side)
        if self._pool is None:
            self._pool = torch.cuda.graph_pool_handle()
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self._pool):
            static_out = self.forward(static_in)
        log.info("captured a CUDA graph for batch %d", size)
        self._graphs[size] = (graph, static_in, static_out)
        return self._graphs[size]

    def warm_up(self, sizes: Sequence[int] = ()) -> None:
        """Run these batch sizes once, so no request pays for capture or compilation. By default: every
        bucket up to a chunk for cuda-graphs (about a second), one chunk for compile (the other buckets
        compile when first used), one image for eager."""
        if not sizes:
            buckets = sorted({bucket(n, self.chunk) for n in range(1, self.chunk + 1)})
            sizes = {"cuda-graphs": buckets, "compile": [self.chunk]}.get(self.mode, [1])
        for size in sizes:
            self.embed(np.zeros((size, 224, 224, 3), np.uint8))

    # -- host arrays in, host arrays out -------------------------------------------------------------
    def embed(self, crops) -> np.ndarray:
        """``uint8 [N,224,224,3]`` (numpy or a CPU tensor) -> ``float32 [N,512]`` numpy, in chunks."""
        import torch

        crops = torch.as_tensor(np.ascontiguousarray(crops) if isinstance(crops, np.ndarray) else crops)
        if crops.dtype != torch.uint8 or crops.ndim != 4 or tuple(crops.shape[1:]) != (224, 224, 3):
            raise BadInputError(f"expected uint8 [N,224,224,3], got {crops.dtype} {list(crops.shape)}")
        parts = [self._embed_some(crops[i : i + self.max_batch_size])
                 for i in range(0, len(crops), self.max_batch_size)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _embed_some(self, crops) -> np.ndarray:
        import torch

        count = len(crops)
        with self._lock, torch.inference_mode():
            if not self.cuda:
                for start in range(0, count, self.chunk):
                    part = crops[start : start + self.chunk]
                    self._out[start : start + len(part)].copy_(self.run(part))
                return self._out[:count].numpy().copy()
            compute, copy = self.compute_stream, self.copy_stream
            compute.wait_stream(torch.cuda.current_stream(self.device))
            for index, start in enumerate(range(0, count, self.chunk)):
                part = crops[start : start + self.chunk]
                slot = self._slots[index % 2]
                rows = len(part)
                slot.uploaded.synchronize()  # this slot's last upload has left the pinned buffer
                slot.host[:rows].copy_(part)
                with torch.cuda.stream(copy):
                    copy.wait_event(slot.consumed)  # the model is done with this slot's device buffer
                    slot.device[:rows].copy_(slot.host[:rows], non_blocking=True)
                    slot.uploaded.record(copy)
                with torch.cuda.stream(compute):
                    compute.wait_event(slot.uploaded)
                    out = self.run(slot.device[:rows])
                    slot.consumed.record(compute)
                    self._out[start : start + rows].copy_(out, non_blocking=True)
            compute.synchronize()
            return self._out[:count].numpy().copy()

    def close(self) -> None:
        self._graphs.clear()
        self._slots = []
        self.visual = self.module = None


class _Slot:
    """One staging slot: a pinned host buffer, its device twin and the events that guard their reuse."""

    def __init__(self, rows: int, device: str) -> None:
        import torch

        self.host = self.device = self.uploaded = self.consumed = None
        if not device.startswith("cuda"):
            return
        self.host = torch.empty((rows, 224, 224, 3), dtype=torch.uint8).pin_memory()
        self.device = torch.empty((rows, 224, 224, 3), dtype=torch.uint8, device=device)
        self.uploaded, self.consumed = torch.cuda.Event(), torch.cuda.Event()


# -- JPEG decoding on the device ---------------------------------------------------------------------
#: PIL's ``exif_transpose`` operations for orientations 2..8, as tensor operations on ``[C,H,W]``.
def _orient(image, orientation: int):
    import torch

    if orientation == 2:
        return image.flip(-1)
    if orientation == 3:
        return image.flip(-1).flip(-2)
    if orientation == 4:
        return image.flip(-2)
    if orientation == 5:
        return image.transpose(-1, -2)
    if orientation == 6:
        return torch.rot90(image, -1, dims=(-2, -1))
    if orientation == 7:
        return image.transpose(-1, -2).flip(-1).flip(-2)
    if orientation == 8:
        return torch.rot90(image, 1, dims=(-2, -1))
    return image


@dataclass
class _Header:
    """What the PIL header says about one file, read before any pixel is decoded."""

    gpu: bool           # nvJPEG can take it (a baseline/progressive RGB or greyscale JPEG)
    orientation: int
    image: Image.Image  # opened lazily, for the PIL fallback


def decode_failure(error: BaseException) -> str:
    """The reason recorded for a file that cannot be decoded (the same words as the PIL path's)."""
    if isinstance(error, FileNotFoundError):
        return "file vanished since the scan"
    if isinstance(error, Image.DecompressionBombError):
        return f"refused before decoding: {error}"
    return f"cannot decode: {type(error).__name__}: {error}"


class JpegCropper:
    """Encoded images -> ``uint8 [N,224,224,3]`` model crops, decoded and cropped on ``device``."""

    def __init__(self, config: PreprocessConfig = DEFAULT_PREPROCESS, *, device: str = "cuda",
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        require_torch()
        self.device = check_device(device)
        self.config = config
        self.max_pixels = max_pixels
        self.stats = {"gpu": 0, "pil": 0, "errors": 0}

    def crops(self, blobs: Sequence[bytes]) -> tuple[list[int], np.ndarray, dict[int, str]]:
        """``(indices decoded, uint8 [n,224,224,3] in that order, {index: reason} for the others)``."""
        tensor, good, errors = self.crops_on_device(blobs)
        return good, tensor.cpu().numpy(), errors

    def crops_on_device(self, blobs: Sequence[bytes]):
        """As ``crops``, with the crops left on the device: ``(uint8 tensor [n,224,224,3], indices, errors)``."""
        import torch

        headers: dict[int, _Header] = {}
        errors: dict[int, str] = {}
        for index, blob in enumerate(blobs):
            try:
                headers[index] = self._header(blob)
            except Exception as error:  # noqa: BLE001 - any header failure is data about this file
                errors[index] = decode_failure(error)
        gpu = [i for i, h in headers.items() if h.gpu]
        decoded = self._decode(blobs, gpu)
        crops: dict[int, object] = {}
        for index, header in headers.items():
            image = decoded.get(index)
            try:
                if image is None:  # not for nvJPEG, or nvJPEG refused it: the PIL path
                    crop = center_crop_array(decode_oriented(header.image, fast=True, shortest=self.config.size),
                                             self.config)
                    crops[index] = torch.from_numpy(crop).to(self.device)
                    self.stats["pil"] += 1
                else:
                    crops[index] = self._crop(_orient(image, header.orientation))
                    self.stats["gpu"] += 1
            except Exception as error:  # noqa: BLE001
                errors[index] = decode_failure(error)
        self.stats["errors"] += len(errors)
        good = sorted(crops)
        size = self.config.size
        stacked = (torch.stack([crops[i] for i in good]) if good
                   else torch.zeros((0, size, size, 3), dtype=torch.uint8, device=self.device))
        return stacked, good, dict(sorted(errors.items()))

    def _header(self, blob: bytes) -> _Header:
        image = open_checked(blob, max_pixels=self.max_pixels)
        orientation = int(image.getexif().get(EXIF_ORIENTATION, 1) or 1)
        gpu = image.format in ("JPEG", "MPO") and image.mode in ("RGB", "L")
        return _Header(gpu, orientation if 1 <= orientation <= 8 else 1, image)

    def _decode(self, blobs: Sequence[bytes], indices: list[int]) -> dict[int, object]:
        """nvJPEG (or libjpeg on the CPU) on the files at ``indices``: one batched call, then one at a
        time if the batch fails, so a file nvJPEG refuses only sends that file to the PIL path."""
        import torch
        from torchvision.io import ImageReadMode, decode_jpeg

        if not indices:
            return {}
        data = [torch.frombuffer(bytearray(blobs[i]), dtype=torch.uint8) for i in indices]
        try:
            return dict(zip(indices, decode_jpeg(data, mode=ImageReadMode.RGB, device=self.device), strict=True))
        except RuntimeError as error:
            log.info("batched JPEG decode failed (%s); decoding one at a time", error)
        out = {}
        for index, tensor in zip(indices, data, strict=True):
            try:
                out[index] = decode_jpeg(tensor, mode=ImageReadMode.RGB, device=self.device)
            except RuntimeError as error:
                log.info("JPEG %d falls back to PIL: %s", index, error)
        return out

    def _crop(self, image):
        """``uint8 [3,H,W]`` -> the model crop ``uint8 [224,224,3]``: shortest side to ``size`` (long side
        truncated, as torchvision's Resize and ``center_crop_array`` do), then the centre."""
        from torchvision.transforms.v2 import InterpolationMode
        from torchvision.transforms.v2 import functional as F

        size = self.config.size
        height, width = image.shape[-2:]
        if width <= height:
            new_w, new_h = size, int(size * height / width)
        else:
            new_w, new_h = int(size * width / height), size
        if (new_h, new_w) != (height, width):
            mode = InterpolationMode.BICUBIC if self.config.interpolation == "bicubic" else InterpolationMode.BILINEAR
            image = F.resize(image, [new_h, new_w], interpolation=mode, antialias=True)
        if new_w < size or new_h < size:
            image = F.center_crop(image, [size, size])  # pads with zeros, like the PIL path's fill_color 0
            return image.permute(1, 2, 0).contiguous()
        top, left = int(round((new_h - size) / 2.0)), int(round((new_w - size) / 2.0))
        return image[:, top : top + size, left : left + size].permute(1, 2, 0).contiguous()


def read_files(paths: Sequence[str]) -> tuple[list[bytes], dict[int, str]]:
    """The bytes of each file (``b""`` for one that cannot be read, with its reason)."""
    blobs, errors = [], {}
    for index, path in enumerate(paths):
        try:
            with open(path, "rb") as handle:
                blobs.append(handle.read())
        except OSError as error:
            blobs.append(b"")
            errors[index] = decode_failure(error)
    return blobs, errors


def pil_crops(blobs: Sequence[bytes], config: PreprocessConfig = DEFAULT_PREPROCESS) -> np.ndarray:
    """The PIL path's crops of ``blobs`` (the reference the device path is compared with)."""
    from photodedup.preprocess import crop_from_source

    return np.stack([crop_from_source(io.BytesIO(blob), config, fast=True) for blob in blobs])
