"""Image decoding and the model crop: open_clip's eval transform in numpy/PIL.

The preprocessing is data that travels with the model (``PreprocessConfig``, saved as
``preprocess.json`` beside every export). Every backend, the service and the Triton model read it.
The transform for ViT-B/32: resize the shortest side to 224 (bicubic), centre-crop 224x224, RGB.
Normalisation (mean/std) lives inside the exported ONNX graph, so what crosses any boundary is
``uint8 [N,224,224,3]``.
"""

from __future__ import annotations

import io
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from photodedup import jxl

# Pillow plugins, the decoders photodedup/formats.py names: HEIC/HEIF through pillow-heif, JPEG XL through
# pillow-jxl-plugin (both dependencies; a broken install records those files as "unsupported").
try:  # pragma: no cover - depends on the environment
    from pillow_heif import register_heif_opener

    register_heif_opener()
except ImportError:  # pragma: no cover
    pass
jxl.register()

OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

#: Images with more pixels than this are refused before decoding (decompression bombs).
DEFAULT_MAX_PIXELS = 200_000_000
# photodedup checks every decode against its own limit (``open_checked``) before any pixel is read;
# Pillow's separate limit (warn at 89 MP, refuse at 179 MP) would make a user's ``--max-pixels`` lie.
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True)
class PreprocessConfig:
    """open_clip's ``PreprocessCfg`` for the model, as data."""

    size: int = 224
    mean: tuple[float, float, float] = OPENAI_MEAN
    std: tuple[float, float, float] = OPENAI_STD
    interpolation: str = "bicubic"
    resize_mode: str = "shortest"
    fill_color: int = 0
    extra: dict = field(default_factory=dict)

    @property
    def spec(self) -> str:
        """A short key for crops made with this config (the catalog stores it with each crop)."""
        return f"{self.size}-{self.interpolation}-{self.resize_mode}-center"

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> PreprocessConfig:
        data = json.loads(Path(path).read_text())
        data["mean"] = tuple(data["mean"])
        data["std"] = tuple(data["std"])
        return cls(**data)


DEFAULT_PREPROCESS = PreprocessConfig()

_RESAMPLE = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR}


def draft_for_shortest_side(image: Image.Image, shortest: int) -> None:
    """Ask the JPEG decoder for a reduced DCT scale that keeps the shortest side >= ``shortest``.

    A no-op for other formats. Mutates the (not yet loaded) image; the EXIF orientation is unchanged.
    """
    if image.format not in ("JPEG", "MPO"):
        return
    width, height = image.size
    short = min(width, height)
    if short <= shortest:
        return
    scale = shortest / short
    image.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))


def center_crop_array(image: Image.Image, config: PreprocessConfig = DEFAULT_PREPROCESS) -> np.ndarray:
    """open_clip's eval transform up to (not including) normalisation: ``uint8 [224,224,3]`` RGB.

    Mirrors torchvision: ``Resize(size)`` (shortest side, long side truncated), ``CenterCrop(size)``
    with rounded offsets, then RGB conversion.
    """
    size = config.size
    width, height = image.size
    if width <= height:
        new_w, new_h = size, int(size * height / width)
    else:
        new_w, new_h = int(size * width / height), size
    if (new_w, new_h) != (width, height):
        image = image.resize((new_w, new_h), _RESAMPLE[config.interpolation])
    if new_w < size or new_h < size:  # tiny images: pad like torchvision's CenterCrop
        padded = Image.new(image.mode, (max(new_w, size), max(new_h, size)), config.fill_color)
        padded.paste(image, ((padded.width - new_w) // 2, (padded.height - new_h) // 2))
        image, new_w, new_h = padded, padded.width, padded.height
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    image = image.crop((left, top, left + size, top + size))
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def open_checked(source, *, max_pixels: int = DEFAULT_MAX_PIXELS,
                 formats: tuple[str, ...] | None = None) -> Image.Image:
    """Open ``source`` (path, bytes or file) lazily and refuse decompression bombs before decoding.

    ``max_pixels`` is the one pixel limit: Pillow's own (a warning above 89 MP, an error above
    179 MP) is switched off (``Image.MAX_IMAGE_PIXELS = None`` above), so the limit a user sets is the one that holds.
    ``formats``: only try these Pillow decoders (the service's untrusted bytes).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    if formats is None or "JXL" in formats:  # its plugin decodes while opening: check the header first
        _refuse_declared_bomb(source, max_pixels)
    image = Image.open(source, formats=formats)
    if image.width * image.height > max_pixels:
        raise Image.DecompressionBombError(
            f"{image.width}x{image.height} = {image.width * image.height} pixels is over the limit of {max_pixels}")
    return image


def _refuse_declared_bomb(source, max_pixels: int) -> None:
    """Refuse a JPEG XL file whose header declares more than ``max_pixels`` (before its plugin decodes it)."""
    if isinstance(source, (str, Path)):
        with open(source, "rb") as handle:
            size = jxl.declared_size(handle)
    else:
        size = jxl.declared_size(source)
    if size and size[0] * size[1] > max_pixels:
        raise Image.DecompressionBombError(
            f"{size[0]}x{size[1]} = {size[0] * size[1]} pixels is over the limit of {max_pixels}")


def decode_oriented(image: Image.Image, *, fast: bool = True, shortest: int = 224) -> Image.Image:
    """Decode an opened image (at reduced DCT scale when ``fast``), apply its EXIF orientation, and bring
    16-bit and floating-point grey levels to 8 bits (every later step works on 8-bit L or RGB)."""
    if fast:
        draft_for_shortest_side(image, shortest)
    image.load()
    return eight_bits(ImageOps.exif_transpose(image))


def eight_bits(image: Image.Image) -> Image.Image:
    """A 16-bit (``I;16``), 32-bit (``I``) or float (``F``) grey image as 8-bit ``L``, its range scaled.

    Pillow's own conversion to L or RGB clips at 255: a 16-bit PNG or TIFF would become a white page.
    ``I;16`` is divided by 257; ``I`` likewise when it holds 16-bit values, else by its maximum; ``F``
    is read as 0..1 when it stays within, else scaled by its maximum.
    """
    if image.mode not in ("I", "F") and not image.mode.startswith("I;16"):
        return image
    values = np.asarray(image.convert("F") if image.mode != "F" else image, dtype=np.float32)
    top = float(values.max()) if values.size else 0.0
    if image.mode.startswith("I;16") or (image.mode == "I" and top <= 65535):
        scale = 255.0 / 65535.0 if image.mode.startswith("I;16") or top > 255 else 1.0
    else:
        scale = 255.0 if image.mode == "F" and top <= 1.0 else 255.0 / top if top > 0 else 1.0
    return Image.fromarray(np.clip(values * scale, 0, 255).round().astype(np.uint8))


def load_oriented(source, *, fast: bool = True, shortest: int = 224,
                  max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Open, check, decode and orient one image. Raises PIL/OS errors for the caller to classify."""
    return decode_oriented(open_checked(source, max_pixels=max_pixels), fast=fast, shortest=shortest)


def crop_from_source(source, config: PreprocessConfig = DEFAULT_PREPROCESS, *, fast: bool = True) -> np.ndarray:
    """Decode one image and return its model crop, ``uint8 [224,224,3]``."""
    return center_crop_array(load_oriented(source, fast=fast, shortest=config.size), config)


def encode_jpeg(array_or_image, quality: int = 95) -> bytes:
    """JPEG bytes without chroma subsampling (used for stored crops and the service's jpeg payload)."""
    image = Image.fromarray(array_or_image) if isinstance(array_or_image, np.ndarray) else array_or_image
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality, subsampling=0)
    return buffer.getvalue()


def decode_crop(data: bytes) -> np.ndarray:
    """Decode a stored crop (JPEG bytes) back to ``uint8 [224,224,3]``."""
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image.convert("RGB"), dtype=np.uint8)
