"""Which file was decoded from which: JPEG quantization forensics for two files of one picture.

A JPEG stores each 8x8 block of luminance as DCT coefficients rounded to multiples of its
quantization table. A file made by decoding that JPEG and saving again (a PNG export, a re-save at a
higher quality) keeps those coefficients: on the same 8x8 grid its luminance DCT sits on the JPEG's
lattice, within the new file's own rounding (half its own quantization step, plus a pixel's rounding).
A file that is not made from that JPEG lands anywhere in each quantization cell.

Two findings, each from one pair of files of the same picture on the same grid (same upright size;
the second file is brought into the JPEG's stored orientation first):

- ``decoded from``: file B's coefficients fit JPEG A's lattice far better than chance (fewer than
  ``FIT_SHARE`` of the misses chance predicts): B was made from A's pixels (or is A's pixels).
- ``encoded from``: lossless file B is off JPEG A's lattice (at least ``OFF_SHARE`` of chance's misses),
  and A's coefficients are B's rounded to A's table (``MATCH_SHARE`` of them): A is a JPEG of B's pixels.

Only coefficients that can tell are counted: an AC coefficient (a flat block's DC is a multiple of 8
whatever the file) whose step in A is more than twice the rounding B can add, and that is not near
zero on A's lattice (a smooth picture's small coefficients round to zero in any table). A finding
needs ``MIN_EVIDENCE`` expected misses; anything else (different sizes, unreadable files, a WebP,
too little texture) finds nothing, and the keeper's other rules decide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

#: Rounding a decoded file can add to a DCT coefficient on top of its own quantization: pixel rounding
#: (std 0.29 in DCT units), colour conversion and the decoder's integer IDCT, about three deviations.
NOISE = 1.0
#: Misses below this share of chance's count: the file sits on the JPEG's lattice (decoded from it).
FIT_SHARE = 0.25
#: Misses above this share of chance's count: the file is off the JPEG's lattice.
OFF_SHARE = 0.6
#: Share of coefficients where the JPEG equals the lossless file's, rounded to the JPEG's table.
MATCH_SHARE = 0.85
#: An encoding rounds either way as often: the mean signed move (towards larger magnitudes) stays under this
#: share of the mean move (an edit's moves lean one way: a 10% contrast gain leans fully).
SYMMETRY = 0.25
#: Fewer expected misses than this is too little texture to tell.
MIN_EVIDENCE = 40
#: At most this many 8x8 blocks, spread evenly over the picture, are transformed (the cost is the decode).
MAX_BLOCKS = 8192

#: A channel this close to 0 or 255 may have been clipped by a decoder (a JPEG's rounding moves it a little).
CLIP = 2
#: A pixel whose channels differ by at most this is gray: its luminance clips as its channels do.
GREY = 6


#: The inverse of each EXIF orientation, on numpy planes (upright back to stored).
_TURN = {2: np.fliplr, 3: lambda p: np.rot90(p, 2), 4: np.flipud, 5: np.transpose, 6: lambda p: np.rot90(p, 1),
         7: lambda p: np.rot90(p, 2).T, 8: lambda p: np.rot90(p, -1)}


def _dct_matrix() -> np.ndarray:
    n = np.arange(8)
    c = np.cos((2 * n[None, :] + 1) * n[:, None] * math.pi / 16) * 0.5
    c[0] /= math.sqrt(2)
    return c


_C = _dct_matrix()
#: The DC coefficient of a flat block of 1 (the level shift, in DCT units).
_DC = np.zeros((8, 8), dtype=np.float32)
_DC[0, 0] = 8.0


@dataclass
class Picture:
    """One file, read once: its upright luminance, and for a JPEG its luma table and stored orientation."""

    path: str
    luma: np.ndarray                 # float32, upright (EXIF orientation applied), JPEG's weights
    clipped: np.ndarray              # bool, upright: a colour channel at its end (0 or 255, give or take a JPEG's
    #                                  rounding), where a decoder clipped and the lattice is lost
    coloured_clip: np.ndarray        # the same where the pixel is not gray (luma alone cannot tell the clipping)
    table: np.ndarray | None         # 8x8 luma quantization table (natural order) of a JPEG; None otherwise
    orientation: int                 # EXIF orientation of the stored pixels (1: as stored)
    lossless: bool


def read(path: str, lossless: bool) -> Picture | None:
    """Decode ``path`` for the forensics; None when it cannot be read (then nothing is found)."""
    try:
        with Image.open(path) as im:
            table = None
            if im.format == "JPEG" and im.mode in ("L", "RGB") and getattr(im, "quantization", None):
                table = np.array(im.quantization[min(im.quantization)], dtype=np.float32).reshape(8, 8)
            orientation = im.getexif().get(0x0112, 1)
            orientation = orientation if orientation in _TURN else 1
            upright = ImageOps.exif_transpose(im)
            luma, clipped, coloured = _luma(upright)
    except Exception:  # an unreadable file is data: it finds nothing
        return None
    return Picture(path, luma, clipped, coloured, table, orientation, lossless)


def _luma(im: Image.Image) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Luminance, clipped pixels, and clipped pixels with colour."""
    if im.mode not in ("L", "RGB"):
        im = im.convert("L" if im.mode in ("1", "I;16", "I", "F") else "RGB")
    pixels = np.asarray(im)
    clipped = (pixels <= CLIP) | (pixels >= 255 - CLIP)
    if pixels.ndim == 2:
        return pixels.astype(np.float32), clipped, np.zeros_like(clipped)
    clipped = clipped.any(axis=2)
    grey = (pixels.max(axis=2).astype(np.int16) - pixels.min(axis=2)) <= GREY
    return pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32), clipped, clipped & ~grey


def _stored(plane: np.ndarray, orientation: int) -> np.ndarray:
    """An upright plane turned back into a JPEG's stored orientation."""
    if orientation == 1:
        return plane
    return np.ascontiguousarray(_TURN[orientation](plane))


def blocks(luma: np.ndarray, skip: np.ndarray | None = None) -> np.ndarray:
    """DCT coefficients (n, 8, 8) of up to ``MAX_BLOCKS`` whole 8x8 blocks of ``luma``, level-shifted, evenly
    spread over those with texture where ``skip`` (a pixel mask) holds no pixel."""
    return _coefficients(luma, _index(luma, skip))


def _index(luma: np.ndarray, skip: np.ndarray | None) -> np.ndarray:
    """Which 8x8 blocks (row-major numbers) to transform: not flat (a flat block's AC is zero in any file), no
    pixel in ``skip``, at most ``MAX_BLOCKS`` spread evenly."""
    rows, cols = luma.shape[0] // 8, luma.shape[1] // 8
    grid = luma[:rows * 8, :cols * 8].reshape(rows, 8, cols, 8)
    keep = (grid.max(axis=(1, 3)) - grid.min(axis=(1, 3)) > 1).reshape(-1)
    if skip is not None:
        keep &= ~skip[:rows * 8, :cols * 8].reshape(rows, 8, cols, 8).any(axis=(1, 3)).reshape(-1)
    index = np.flatnonzero(keep)
    return index[::max(1, math.ceil(len(index) / MAX_BLOCKS))]


def _coefficients(luma: np.ndarray, index: np.ndarray) -> np.ndarray:
    cols = luma.shape[1] // 8
    r, c = index // cols, index % cols
    offsets = np.arange(8)
    pixels = luma[(r[:, None] * 8 + offsets)[:, :, None], (c[:, None] * 8 + offsets)[:, None, :]] - 128.0
    return (_C @ pixels @ _C.T).astype(np.float32)


def _misses(coefficients: np.ndarray, table: np.ndarray, rounding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Which coefficients can tell (a mask), and how far each is from ``table``'s lattice beyond ``rounding``."""
    tolerance = rounding / 2 + NOISE
    telling = (table > 2 * tolerance) & (np.abs(coefficients) >= table / 2)
    telling[:, 0, 0] = False
    distance = np.abs(coefficients - table * np.round(coefficients / table))
    return telling, distance > tolerance


def fit(b: Picture, a: Picture) -> tuple[float, float] | None:
    """Misses of ``b`` against JPEG ``a``'s lattice, and chance's expected count; None: nothing to compare."""
    pair = _pair(a, b)
    if pair is None:
        return None
    _, coeff_b = pair
    rounding = b.table if b.table is not None else np.ones((8, 8), dtype=np.float32)
    telling, miss = _misses(coeff_b, a.table, rounding)
    chance = np.broadcast_to(1 - 2 * (rounding / 2 + NOISE) / a.table, coeff_b.shape)
    return float(miss[telling].sum()), float(chance[telling].sum())


def _pair(a: Picture, b: Picture) -> tuple[np.ndarray, np.ndarray] | None:
    """Both pictures' sampled blocks on JPEG ``a``'s grid (its stored orientation), where neither is clipped."""
    if a.table is None or a is b or a.luma.shape != b.luma.shape:
        return None
    return _both(a, b, a.clipped | b.clipped)


def _both(a: Picture, b: Picture, skip: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The same blocks of ``a`` and ``b`` (textured in ``b``) on JPEG ``a``'s grid, in its stored orientation."""
    luma_a, luma_b = _stored(a.luma, a.orientation), _stored(b.luma, a.orientation)
    index = _index(luma_b, _stored(skip, a.orientation))
    return _coefficients(luma_a, index), _coefficients(luma_b, index)


def decoded_from(b: Picture, a: Picture) -> bool:
    """Whether ``b`` was made from JPEG ``a``'s pixels: its DCT fits ``a``'s quantization far beyond chance."""
    found = fit(b, a)
    return found is not None and found[1] >= MIN_EVIDENCE and found[0] <= FIT_SHARE * found[1]


def encoded_from(a: Picture, b: Picture) -> bool:
    """Whether JPEG ``a`` was encoded from lossless ``b``'s pixels.

    Where ``b`` is off ``a``'s lattice, the two stories part: a JPEG of ``b`` holds ``b``'s coefficients
    rounded to its table (``sim``: decoded and clipped as a decoder would), a decode of ``a`` holds ``b``'s
    own. ``a`` is an encoding of ``b`` when it agrees with ``sim`` on at least ``MATCH_SHARE`` of those
    coefficients, and ``b``'s distance to the lattice goes either way as often (``SYMMETRY``): an edit of
    ``a`` (contrast, sharpening, a smoothing decoder) moves coefficients one way, and rounds back to them too.
    """
    if not b.lossless or a.table is None or a is b or a.luma.shape != b.luma.shape:
        return False
    coeff_a, coeff_b = _both(a, b, a.coloured_clip | b.coloured_clip)
    table = a.table
    rounded = table * np.round(coeff_b / table)
    sim = _C @ np.clip(_C.T @ rounded @ _C + 128.0, 0, 255) @ _C.T - 128.0 * _DC
    moved = coeff_b - sim
    telling = (np.abs(moved) > 2 * NOISE) & (np.abs(np.abs(coeff_b - rounded) - table / 2) > NOISE)
    telling[:, 0, 0] = False
    if telling.sum() < MIN_EVIDENCE:
        return False
    agree = float((np.abs(coeff_a - sim) <= 2 * NOISE)[telling].mean())
    lean = abs(float((moved * np.sign(sim))[telling].mean())) / float(np.abs(moved[telling]).mean())
    return agree >= MATCH_SHARE and lean <= SYMMETRY
