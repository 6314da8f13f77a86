"""What the service accepts, and how request bodies become model input (``uint8 [N,224,224,3]``).

Everything here runs on untrusted bytes, so every failure is a ``RequestRejected`` carrying an HTTP
4xx status and a short machine-readable code; nothing a client sends can raise anything else.
Pixel counts are checked from the image header, before any pixel is decoded (decompression bombs).

Decode cost is bounded three ways: only the JPEG, PNG and WebP decoders ever see client bytes (and
only the one the declared content type names), JPEGs are decoded at the reduced DCT scale the
model needs, and a ``DecodeBudget`` caps the pixels being decoded at once across all requests (a
PNG cannot be decoded smaller: there the pixel limit is the bound).
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import Image

from photodedup import formats
from photodedup.backends.base import INPUT_SHAPE
from photodedup.backends.http_service import NPY_TYPE
from photodedup.config import MB
from photodedup.errors import BadInputError
from photodedup.preprocess import PreprocessConfig, center_crop_array, decode_oriented, open_checked

MULTIPART_TYPE = "multipart/form-data"
IMAGE_TYPES = ("image/jpeg", "image/png", "image/webp")
#: The Pillow decoders each declared type may use, from the format table: the names Pillow opens by
#: (an MPO, a JPEG with more frames, is opened by the JPEG decoder and names itself MPO; the first is read).
Image.init()
DECODERS = {media: tuple(name for name in formats.names_for_type(media) if name in Image.OPEN) for media in IMAGE_TYPES}
ALL_DECODERS = tuple(name for names in DECODERS.values() for name in names)
#: The service's pixel limit: a 7000x7000 image. A PNG cannot be decoded at reduced size, and a
#: 13000x13000 one (169 MP, 657 KB on the wire) took 7.6 s and 2 GB; this bounds one decode near 0.6 GB.
SERVICE_MAX_PIXELS = 50_000_000
ACCEPTED_TYPES = (*IMAGE_TYPES, MULTIPART_TYPE, NPY_TYPE)


@dataclass(frozen=True)
class Limits:
    """Per-request limits. The defaults admit a 64-image uint8 batch (9.6 MB) or 64 phone photos."""

    max_body_bytes: int = 64 * MB
    max_images: int = 64
    max_pixels: int = SERVICE_MAX_PIXELS


class DecodeBudget:
    """At most ``pixels`` pixels being decoded at once, across all requests (an image larger than the
    budget waits until it can decode alone). Memory stays bounded however many requests arrive."""

    def __init__(self, pixels: int) -> None:
        self.total = self.free = max(1, int(pixels))
        self._cond = threading.Condition()

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        pixels = min(max(1, pixels), self.total)
        with self._cond:
            self._cond.wait_for(lambda: self.free >= pixels)
            self.free -= pixels
        try:
            yield
        finally:
            with self._cond:
                self.free += pixels
                self._cond.notify_all()


class RequestRejected(BadInputError):
    """A request the service will not process: its own HTTP status (4xx) and a ``code`` naming the problem."""

    def __init__(self, http_status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code


def media_type(content_type: str | None) -> str:
    """``'image/jpeg; q=1'`` -> ``'image/jpeg'`` (``image/jpg`` is read as ``image/jpeg``)."""
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return "image/jpeg" if media == "image/jpg" else media


def check_media_type(content_type: str | None) -> str:
    media = media_type(content_type)
    if media not in ACCEPTED_TYPES:
        shown = media or "none"
        raise RequestRejected(415, "unsupported_media_type",
                              f"content type {shown!r} is not accepted; send one of: {', '.join(ACCEPTED_TYPES)}")
    return media


def check_declared_length(content_length: str | None, limits: Limits) -> None:
    """Refuse a body whose declared ``Content-Length`` is over the limit, before reading it."""
    if content_length is None:
        return
    try:
        declared = int(content_length)
    except ValueError:
        raise RequestRejected(400, "bad_content_length", f"Content-Length {content_length!r} is not a number") from None
    if declared > limits.max_body_bytes:
        raise body_too_large(limits)


def body_too_large(limits: Limits) -> RequestRejected:
    return RequestRejected(413, "body_too_large",
                           f"the request body is over the limit of {limits.max_body_bytes} bytes")


def decode_image(data: bytes, config: PreprocessConfig, limits: Limits, *, index: int = 0,
                 declared: str | None = None, budget: DecodeBudget | None = None) -> np.ndarray:
    """One encoded image -> its model crop ``uint8 [224,224,3]``, or a ``RequestRejected``.

    ``declared``: the content type the client gave it; the bytes must be that format (415 otherwise).
    """
    if not data:
        raise RequestRejected(400, "empty_image", f"image {index} is empty")
    try:
        image = open_checked(data, max_pixels=limits.max_pixels, formats=DECODERS.get(declared, ALL_DECODERS))
        with budget.hold(image.width * image.height) if budget else _nothing():
            return center_crop_array(decode_oriented(image, fast=True, shortest=config.size), config)
    except Image.DecompressionBombError as error:
        raise RequestRejected(413, "too_many_pixels", f"image {index} is too large: {error}") from None
    except Image.UnidentifiedImageError:
        actual = _identify(data)
        if actual and declared in DECODERS:
            raise RequestRejected(415, "content_type_mismatch",
                                  f"image {index} is declared {declared} but is {actual}") from None
        raise RequestRejected(400, "undecodable_image", f"image {index} could not be decoded: not a JPEG, PNG "
                              "or WebP image") from None
    except Exception as error:  # any decoder failure on client bytes is the client's bad input
        reason = str(error) or type(error).__name__
        raise RequestRejected(400, "undecodable_image", f"image {index} could not be decoded: {reason}") from None


def _identify(data: bytes) -> str | None:
    """Which accepted format these bytes are (header only), or None."""
    try:
        with Image.open(io.BytesIO(data), formats=ALL_DECODERS) as image:
            return formats.browser_type(image.format) or image.format
    except Exception:  # noqa: BLE001 - not one of them
        return None


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def decode_images(blobs: list[bytes], config: PreprocessConfig, limits: Limits, *,
                  declared: list[str | None] | None = None, budget: DecodeBudget | None = None) -> np.ndarray:
    """Several encoded images (each with its declared content type) -> ``uint8 [N,224,224,3]``."""
    if not blobs:
        raise RequestRejected(400, "no_images", "the request holds no images")
    if len(blobs) > limits.max_images:
        raise too_many_images(len(blobs), limits)
    declared = declared or [None] * len(blobs)
    return np.stack([decode_image(blob, config, limits, index=i, declared=media_type(declared[i]) or None,
                                  budget=budget) for i, blob in enumerate(blobs)])


def too_many_images(count: int | None, limits: Limits) -> RequestRejected:
    what = f"{count} images are" if count is not None else "the request holds"
    return RequestRejected(413, "too_many_images", f"{what} over the limit of {limits.max_images} per request")


def parse_npy(data: bytes, limits: Limits) -> np.ndarray:
    """An ``.npy`` body -> ``uint8 [N,224,224,3]``. Never unpickles; the header must match the data."""
    stream = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran_order, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ValueError(f"npy format version {version[0]}.{version[1]} is not supported")
    except Exception as error:
        reason = str(error) or type(error).__name__
        raise RequestRejected(400, "malformed_tensor", f"the body is not a valid .npy array: {reason}") from None
    expected = f"uint8 [N,{','.join(map(str, INPUT_SHAPE))}] in C order"
    if dtype != np.uint8 or fortran_order or len(shape) != 4 or tuple(shape[1:]) != INPUT_SHAPE:
        order = "Fortran" if fortran_order else "C"
        raise RequestRejected(400, "malformed_tensor",
                              f"expected {expected}, got {dtype} {list(shape)} in {order} order")
    count = shape[0]
    if count == 0:
        raise RequestRejected(400, "no_images", "the tensor holds no images")
    if count > limits.max_images:
        raise too_many_images(count, limits)
    offset = stream.tell()
    needed = count * int(np.prod(INPUT_SHAPE))
    if len(data) - offset != needed:
        raise RequestRejected(400, "malformed_tensor",
                              f"the header promises {needed} bytes of data, the body holds {len(data) - offset}")
    return np.frombuffer(data, dtype=np.uint8, offset=offset).reshape(shape)
