"""Per-image features for matching: uniform borders, grayscale, and the pHash of every dihedral variant.

- ``trim_box``: the content of an image without uniform borders (black, white or any one colour, with a
  tolerance for JPEG noise), so a copy with an added frame hashes like the original.
- ``is_grayscale``: colour information absent (a grey photo saved as RGB counts as grey).
- ``is_flat``: a picture of one colour (a solid frame): no border, and neither grey nor colour.
- ``dihedral_phashes``: the pHash of the image turned 0/90/180/270 degrees, mirrored or not. Variant 0 is
  imagehash's ``phash`` bit for bit. The other seven come from the same 8x8 block of DCT coefficients:
  mirroring a sequence multiplies its DCT-II coefficient k by (-1)^k and transposing an image transposes
  its 2-D DCT, so the eight hashes cost one DCT.

``VARIANTS[v]`` names what turns an image into variant ``v``; hash ``v`` of image A close to hash 0 of
image B means B looks like A after that transformation.
"""

from __future__ import annotations

import functools
import importlib.machinery
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
from PIL import Image

#: (transpose, flip rows, flip columns) applied in that order to the pixel array, and the name.
VARIANTS: tuple[tuple[bool, bool, bool, str], ...] = (
    (False, False, False, ""),
    (False, False, True, "mirrored"),
    (False, True, False, "flipped upside down"),
    (False, True, True, "turned 180"),
    (True, True, False, "turned 90"),           # np.rot90: counter-clockwise
    (True, False, True, "turned 270"),          # clockwise 90
    (True, False, False, "mirrored, turned 90"),
    (True, True, True, "mirrored, turned 270"),
)
#: The variant that undoes each variant (90 and 270 swap, the rest undo themselves).
INVERSE = (0, 1, 2, 3, 5, 4, 6, 7)

#: A border row or column: every channel within this many levels of the border colour at the 98th
#: percentile of its pixels (JPEG ringing and noise stay under it; photo content does not).
BORDER_TOLERANCE = 6
#: Never trim more than this share of a side (a mostly uniform picture is content, not border).
MAX_TRIM = 0.4
#: Grey: the 99th percentile of the largest channel difference of a pixel is at most this.
GRAY_TOLERANCE = 10

_SIGNS = np.where(np.arange(8) % 2 == 0, 1.0, -1.0)
_WEIGHTS = np.uint64(1) << np.arange(63, -1, -1, dtype=np.uint64)


def variant_name(variant: int) -> str:
    return VARIANTS[variant][3]


def trim_box(pixels: np.ndarray, flat: bool | None = None) -> tuple[int, int, int, int]:
    """``(left, top, right, bottom)`` of the content inside uniform borders of an ``[H, W(, C)]`` array.
    ``flat``: ``is_flat(pixels)`` where the caller has it already (a scan asks both: it is measured once)."""
    # no widening copy: every comparison is with a float median (``_uniform``), so uint8 reads the same
    arr = pixels[:, :, None] if pixels.ndim == 2 else pixels
    height, width = arr.shape[:2]
    if height < 8 or width < 8:
        return 0, 0, width, height
    if _flat(arr) if flat is None else flat:  # one colour: all content, not all border
        return 0, 0, width, height
    top, bottom, left, right = 0, height, 0, width
    limit_y, limit_x = int(height * MAX_TRIM), int(width * MAX_TRIM)
    # Each side on its own (a frame on two sides only, letterbox or pillarbox, is still a border): its
    # colour is the median of its outermost line, when that line is uniform.
    colour = _edge_colour(arr[0])
    while colour is not None and top < limit_y and _uniform(arr[top, left:right], colour):
        top += 1
    colour = _edge_colour(arr[-1])
    while colour is not None and height - bottom < limit_y and _uniform(arr[bottom - 1, left:right], colour):
        bottom -= 1
    colour = _edge_colour(arr[top:bottom, 0])
    while colour is not None and left < limit_x and _uniform(arr[top:bottom, left], colour):
        left += 1
    colour = _edge_colour(arr[top:bottom, -1])
    while colour is not None and width - right < limit_x and _uniform(arr[top:bottom, right - 1], colour):
        right -= 1
    return left, top, right, bottom


def is_flat(pixels: np.ndarray) -> bool:
    """One colour (within ``BORDER_TOLERANCE``, as a border is): a solid frame, a spacer pixel. Such a
    picture has no border (it is all content) and is neither a grayscale copy nor a colour original."""
    return _flat(pixels[:, :, None] if pixels.ndim == 2 else pixels)


def _flat(arr: np.ndarray) -> bool:
    if _edge_colour(arr[0].astype(np.int16)) is None:  # the top row alone tells most pictures apart, cheaply
        return False
    step = max(1, int((arr.shape[0] * arr.shape[1] / 10_000) ** 0.5))  # ~10,000 pixels are enough
    sample = arr[::step, ::step].reshape(-1, arr.shape[2]).astype(np.int16)
    return _uniform(sample, np.median(sample, axis=0))


def _edge_colour(line: np.ndarray) -> np.ndarray | None:
    colour = np.median(line, axis=0)
    return colour if _uniform(line, colour) else None


def _uniform(line: np.ndarray, colour: np.ndarray) -> bool:
    deviation = np.abs(line - colour).max(axis=-1)
    return percentile_at_most(deviation, 98, BORDER_TOLERANCE)


def percentile_at_most(values: np.ndarray, q: float, limit: float) -> bool:
    """``np.percentile(values, q) <= limit``, exactly, mostly without sorting: how many values are at most
    ``limit`` decides it unless that count falls within a rank of where the percentile lies (then numpy)."""
    n = values.size
    if n:
        at_most = int(np.count_nonzero(values <= limit))
        rank = math.floor(q / 100 * (n - 1))  # numpy interpolates between the values at rank and rank + 1
        if at_most >= min(n, rank + 3):  # both values are at most the limit (a rank of slack for rounding)
            return True
        if at_most <= rank - 1:  # both are over it
            return False
    return bool(np.percentile(values, q) <= limit)


def is_grayscale(image: Image.Image) -> bool:
    """No colour information: a one-channel mode, or RGB whose channels agree (within JPEG noise)."""
    if image.mode in ("1", "L", "LA", "I", "I;16", "F"):
        return True
    return is_grayscale_rgb(np.asarray(image.convert("RGB")))


def is_grayscale_rgb(rgb: np.ndarray) -> bool:
    """``is_grayscale`` of the RGB pixels ``uint8 [H,W,3]`` (a scan has them already)."""
    step = max(1, int((rgb.shape[0] * rgb.shape[1] / 40_000) ** 0.5))  # ~40,000 pixels are enough
    sample = rgb[::step, ::step]
    return percentile_at_most(channel_spread(sample), 99, GRAY_TOLERANCE)


def channel_spread(rgb: np.ndarray) -> np.ndarray:
    """Each pixel's largest channel difference (max - min) of ``uint8 [..., 3]`` RGB: 0 where it is grey."""
    red, green, blue = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return np.maximum(np.maximum(red, green), blue) - np.minimum(np.minimum(red, green), blue)  # no overflow


def dihedral_phashes(image: Image.Image) -> np.ndarray:
    """``uint64 [8]``: the pHash of each of ``VARIANTS`` of ``image`` (variant 0 = ``imagehash.phash``)."""
    gray = image if image.mode == "L" else image.convert("L")
    low = dct_2d(np.asarray(gray.resize((32, 32), Image.Resampling.LANCZOS)))[:8, :8]
    out = np.empty(8, dtype=np.uint64)
    medians: dict[tuple[bool, bool], float] = {}
    for index, (transpose, flip_rows, flip_cols, _) in enumerate(VARIANTS):
        block = low.T if transpose else low
        if flip_rows:
            block = block * _SIGNS[:, None]
        if flip_cols:
            block = block * _SIGNS[None, :]
        # a transposed block holds the values of the untransposed one with rows and columns swapped, so the
        # same median (of the same 64 numbers, bit for bit)
        key = (flip_cols, flip_rows) if transpose else (flip_rows, flip_cols)
        if key not in medians:
            medians[key] = np.median(block)
        out[index] = np.bitwise_or.reduce((block > medians[key]).reshape(-1).astype(np.uint64) * _WEIGHTS)
    return out


def dct_2d(pixels: np.ndarray) -> np.ndarray:
    """``scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)`` (imagehash's pHash), bit for bit."""
    dct = _pocketfft_dct()
    if dct is None:
        import scipy.fftpack

        return scipy.fftpack.dct(scipy.fftpack.dct(pixels, axis=0), axis=1)
    first = np.asarray(pixels, dtype=np.float64)
    in_place = None if np.may_share_memory(first, pixels) else first  # as scipy: a converted copy in place
    return dct(dct(first, 2, (0,), 0, in_place, 1, None), 2, (1,), 0, None, 1, None)


@functools.cache
def _pocketfft_dct():
    """The DCT that ``scipy.fftpack.dct`` calls (scipy's pocketfft extension), loaded from its file without
    importing ``scipy.fft``, whose docstring processing costs a third of a second in each process that
    hashes (the scan's own and its forkserver); None when it is not where scipy keeps it."""
    name = "scipy.fft._pocketfft.pypocketfft"
    if name in sys.modules:
        return sys.modules[name].dct
    try:
        spec = importlib.util.find_spec("scipy")  # where scipy is, without importing it (nor its init)
        if spec is None or not spec.submodule_search_locations:
            return None
        folder = Path(next(iter(spec.submodule_search_locations))) / "fft" / "_pocketfft"
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            if (folder / f"pypocketfft{suffix}").is_file():
                found = importlib.util.spec_from_file_location(name, folder / f"pypocketfft{suffix}")
                module = importlib.util.module_from_spec(found)
                found.loader.exec_module(module)
                dct = module.dct
                dct(np.zeros((2, 2)), 2, (0,), 0, None, 1, None)  # the signature scipy's code calls it with
                return dct
    except Exception:  # noqa: BLE001 - any surprise (another scipy layout or signature): scipy's own path
        pass
    return None


def apply_variant(pixels: np.ndarray, variant: int) -> np.ndarray:
    """The pixel array turned/mirrored as ``VARIANTS[variant]`` says (tests and the sample library)."""
    transpose, flip_rows, flip_cols, _ = VARIANTS[variant]
    out = np.swapaxes(pixels, 0, 1) if transpose else pixels
    if flip_rows:
        out = out[::-1]
    if flip_cols:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


@functools.cache
def compose(v: int, w: int) -> int:
    """The one variant that does variant ``v`` and then ``w`` (``apply_variant`` twice), derived from
    ``apply_variant`` itself on first use (grouping's closure; nothing at import)."""
    probe = np.arange(12).reshape(3, 4)  # no symmetry: each variant makes another array
    both = apply_variant(apply_variant(probe, v), w)
    return next(c for c in range(8) if (look := apply_variant(probe, c)).shape == both.shape
                and bool((look == both).all()))


def pack(hashes: np.ndarray) -> bytes:
    return np.asarray(hashes, dtype="<u8").tobytes()


def unpack(blob: bytes | None) -> np.ndarray | None:
    return None if blob is None else np.frombuffer(blob, dtype="<u8").astype(np.uint64)
