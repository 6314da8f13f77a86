"""Which file was made from which: JPEG quantization forensics for two files of one picture.

A JPEG stores each 8x8 block of luminance as DCT coefficients rounded to multiples of its quantization
table (its *lattice*). A file made by decoding that JPEG and saving it again (a PNG export, a re-save at a
higher quality, a grayscale copy) keeps those coefficients: on the JPEG's 8x8 grid its luminance DCT sits
on the lattice, within its own rounding (half its own quantization step, and a decode's noise). A file
not made from that JPEG lands anywhere in each quantization cell. The test is one-way: a coarser file
(a lower-quality re-save) says nothing about the finer one, and the keeper's ``quality`` rule decides.

Two findings, each from one pair of files of one upright size (the second file is brought into the
JPEG's stored orientation first, so a copy stored turned with an EXIF tag is on the same grid):

- ``decoded_from(b, a)``: b's coefficients miss JPEG a's lattice at most ``FIT_SHARE`` as often as
  chance predicts from b's own values (``_fits_at``), and its lattice points are a's own coefficients
  (``MATCH_SHARE``): b was made from a's pixels. A contrast or brightness change (luminance AC scaled by
  one gain) is tried too: the lattice scaled by the gain between the two files, for a lossless b and for a
  JPEG b (a finer re-save of the edit: its own rounding, half its step, is the tolerance, as unscaled).
- ``encoded_from(a, b)``: lossless b is not a decode of JPEG a, a's coefficients are b's rounded to a's
  table (``MATCH_SHARE`` of those where the two stories part and b's value rounds to a nonzero one), and b
  is not a's coefficients amplified (``MAX_GAIN``): a is a JPEG of b's pixels (the JPEG copy of a screenshot).

Blocks where a colour channel clips are left out or simulated (a decoder clips, and the lattice is lost
there). Where that leaves too little (a picture mostly black or white), ``decoded_from`` also accepts a file
that holds a's *decoded* coefficients times one gain, clipped blocks included (``_held``): leaving out only
where the copy's own edit clipped (a spike at the end of a channel's range, ``_spikes``).

Anything that cannot tell (different sizes, an unreadable file, a WebP, too little texture:
``MIN_EVIDENCE``, ``MIN_BLOCKS``) finds nothing, and the keeper's other rules decide.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

#: Rounding a decoded file can add to a DCT coefficient on top of its own quantization: pixel rounding
#: (std 0.29 in DCT units), colour conversion and the decoder's integer IDCT, about three deviations.
NOISE = 1.0
#: Two decodes compared with each other (``_held``): each brings its own rounding (as ``_holding``'s tolerance),
#: and over a flat area a tone edit's rounding is one error for the whole area, not noise that averages out
#: (measured on a black-and-white picture's lossless edit: up to 2.5 at the lowest frequencies, 1% over 1.5).
HELD_NOISE = 2 * NOISE
#: A tone edit with gain g rounds to whole levels, and its rounding error wraps every 1 / |g - 1| levels: a block
#: spanning at least this many wraps sees that error vary like noise (a very smooth picture's blocks do not).
WRAPS = 2
#: Misses below this share of chance's count: the file sits on the JPEG's lattice (decoded from it).
FIT_SHARE = 0.05
#: A lossless file is not a decode of a JPEG when, where nothing clips, its misses reach ``OFF_LATTICE`` of
#: chance's count (an encoding's: 0.9-1.1), or when at least ``OFF_SHARE`` of its textured blocks differs from
#: the JPEG's pixels by more than ``DECODE_RMS`` (a decode differs by its rounding: RMS 0.3-0.6 in luminance).
OFF_LATTICE = 0.6
OFF_SHARE = 0.3
DECODE_RMS = 1.5
#: Fewer textured blocks than this is too little picture to tell.
MIN_BLOCKS = 16
#: Share of coefficients where the JPEG equals the other file's, rounded to the JPEG's table.
MATCH_SHARE = 0.9
#: The lossless file's coefficients against the JPEG's, as one gain (least squares, where they part): an
#: encoding's is below 1 (coefficients crowd towards zero inside each quantization cell: 0.73-0.99 measured),
#: a contrast gain or sharpening of a decode is above (1.02 for a 2% contrast gain).
MAX_GAIN = 1.01
#: A decode whose contrast was changed has its luminance AC scaled by one gain: gains from ``MIN_GAIN`` to its
#: inverse are tried, from the least-squares gain between the two files' coefficients and ``GAIN_STEPS`` steps of
#: ``GAIN_STEP`` either side (a coefficient of 200 must land within a rounding: 0.0005 x 200 = 0.1).
MIN_GAIN = 0.5
GAIN_STEP = 0.0005
GAIN_STEPS = 20
#: Fewer expected misses than this is too little texture to tell.
MIN_EVIDENCE = 40
#: At most this many 8x8 blocks, spread evenly over the picture, are transformed (the cost is the decode).
MAX_BLOCKS = 8192

#: A channel this close to 0 or 255 may have been clipped by a decoder (a JPEG's rounding moves it a little).
CLIP = 2
#: A pixel whose channels differ by at most this is gray: its luminance clips as its channels do.
GREY = 6
#: A tone edit clips where it pushes a channel past 0 or 255, and a later step (a contrast cut) can move that
#: clip to any value: every clipped pixel then sits on one value at the end of the channel's range, a spike.
#: A spike holds at least ``SPIKE_SHARE`` of the pixels and ``SPIKE_RATIO`` times the mean of the values 3-10
#: inwards, and fewer pixels lie outwards of it (more than ``CLIP`` away: a JPEG's ringing) than on it.
SPIKE_SHARE = 0.005
SPIKE_RATIO = 8


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
    top: np.ndarray                  # bool, upright: a channel at (or beyond) a spike at the top of its range,
    bottom: np.ndarray               # or at the bottom (``SPIKE_SHARE``): where a tone edit may have clipped
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
            luma, clipped, coloured, top, bottom = _luma(upright)
    except Exception:  # an unreadable file is data: it finds nothing
        return None
    return Picture(path, luma, clipped, coloured, top, bottom, table, orientation, lossless)


def _luma(im: Image.Image) -> tuple[np.ndarray, ...]:
    """Luminance, clipped pixels, clipped pixels with colour, and pixels at a spike at the top and the bottom of
    a channel's range (``_spikes``)."""
    if im.mode not in ("L", "RGB"):
        im = im.convert("L" if im.mode in ("1", "I;16", "I", "F") else "RGB")
    pixels = np.asarray(im)
    planes = pixels[:, :, None] if pixels.ndim == 2 else pixels
    top, bottom = _spikes(planes)
    clipped = ((planes <= CLIP) | (planes >= 255 - CLIP)).any(axis=2)
    if pixels.ndim == 2:
        return pixels.astype(np.float32), clipped, np.zeros_like(clipped), top, bottom
    grey = (pixels.max(axis=2).astype(np.int16) - pixels.min(axis=2)) <= GREY
    luma = pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return luma, clipped, clipped & ~grey, top, bottom


def _spikes(planes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pixels with a channel at or outwards of a spike (``SPIKE_SHARE``) at the top of its range (within
    ``CLIP`` of it), and at the bottom."""
    top = np.zeros(planes.shape[:2], dtype=bool)
    bottom = np.zeros_like(top)
    for channel in np.moveaxis(planes, 2, 0):
        counts = np.bincount(channel.reshape(-1), minlength=256).astype(np.float64)
        for mask, step in ((top, -1), (bottom, 1)):
            ordered = counts[::-1] if step < 0 else counts  # from the end of the range inwards
            for k in range(245):
                beyond = ordered[:max(0, k - CLIP)].sum()
                if beyond * SPIKE_RATIO > channel.size:
                    break  # too much lies outwards for any spike to be the end of the range
                spike = ordered[k]
                near = ordered[k + 3:k + 11].mean()
                if spike >= SPIKE_SHARE * channel.size and spike >= SPIKE_RATIO * max(1.0, near) and beyond <= spike:
                    mask |= channel >= 255 - k - CLIP if step < 0 else channel <= k + CLIP
                    break
    return top, bottom


def _stored(plane: np.ndarray, orientation: int) -> np.ndarray:
    """An upright plane turned back into a JPEG's stored orientation."""
    if orientation == 1:
        return plane
    return np.ascontiguousarray(_TURN[orientation](plane))


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


def _gather(plane: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The 8x8 blocks (n, 8, 8) numbered ``index`` (row-major) of ``plane``."""
    cols = plane.shape[1] // 8
    r, c = index // cols, index % cols
    offsets = np.arange(8)
    return plane[(r[:, None] * 8 + offsets)[:, :, None], (c[:, None] * 8 + offsets)[:, None, :]]


def _coefficients(luma: np.ndarray, index: np.ndarray) -> np.ndarray:
    """The level-shifted DCT of those blocks, in a JPEG's units."""
    return (_C @ (_gather(luma, index) - 128.0) @ _C.T).astype(np.float32)


@dataclass(frozen=True)
class Fit:
    """``b`` against JPEG ``a``'s lattice scaled by ``gain``: its misses, and chance's expected count."""

    misses: float
    chance: float
    gain: float
    same: float = 0.0   # share of b's lattice points that are a's own coefficients there (x gain)
    held: bool = False  # found by ``_held`` (a's decoded coefficients, clipping and all), not by the lattice

    @property
    def on_lattice(self) -> bool:
        return self.chance >= MIN_EVIDENCE and self.misses <= FIT_SHARE * self.chance and self.same >= MATCH_SHARE


def fit(b: Picture, a: Picture) -> Fit | None:
    """``b`` against JPEG ``a``'s lattice, as is or scaled by the gain between their coefficients (a decode
    with its contrast changed: luminance AC scales by the gain); the better fit. Where that does not fit (the
    lattice lost to clipping), ``b`` against ``a``'s decoded coefficients (``_held``) when those hold. None:
    nothing to compare."""
    pair = _pair(a, b)
    if pair is None:
        return None
    coeff_a, coeff_b = pair
    rounding = b.table if b.table is not None else np.ones((8, 8), dtype=np.float32)
    gains = [1.0]
    lattice = np.abs(coeff_a) >= a.table / 2
    lattice[:, 0, 0] = False
    if lattice.sum() >= MIN_EVIDENCE:
        gain = float((coeff_a * coeff_b)[lattice].sum() / (coeff_a * coeff_a)[lattice].sum())
        if MIN_GAIN <= gain <= 1 / MIN_GAIN and abs(gain - 1) > GAIN_STEP:
            gains += [gain + GAIN_STEP * k for k in range(-GAIN_STEPS, GAIN_STEPS + 1)]
    found = _fits_at(coeff_b, a.table, rounding, gains)
    best = _holding(min(found, key=_score), coeff_a, coeff_b, a.table, rounding)
    if abs(best.gain - 1) <= GAIN_STEP * GAIN_STEPS:  # within the search's own window, 1 (no edit) when it fits
        unscaled = _holding(found[0], coeff_a, coeff_b, a.table, rounding)
        if unscaled.on_lattice:
            return unscaled
    if not best.on_lattice:
        held = _held(b, a, rounding)
        if held is not None and held.on_lattice:
            return held
    return best


def _score(found: Fit) -> tuple[bool, float]:
    """The better fit sorts first: enough evidence, then the fewest misses for chance's count."""
    return found.chance < MIN_EVIDENCE, found.misses / found.chance if found.chance else 1.0


def _held(b: Picture, a: Picture, rounding: np.ndarray) -> Fit | None:
    """``b`` against ``a``'s own decoded coefficients (times a gain), also where ``a``'s decoder clipped.

    A file made from ``a``'s pixels holds them as they were decoded, clipped ones included: its coefficients
    are ``a``'s times the edit's gain, within its own rounding (half its step, and a decode's noise); where
    a JPEG's lattice is lost to clipping (a picture most of whose pixels are black or white) this still holds.
    A file not made from ``a`` differs from it by ``a``'s quantization error, spread over ``a``'s step: chance
    puts it within the tolerance at the tolerance's share of that step. Only ``a``'s nonzero coefficients tell.
    Where ``b``'s tone edit clipped (a spike at the end of a channel's range: ``Picture.top``, ``bottom``) the
    gain does not hold; those pixels are left out, the top, the bottom or both (the best of the four counts).
    """
    tolerance = rounding / 2 + HELD_NOISE
    options = [np.zeros_like(b.clipped)] + [mask for mask in (b.top, b.bottom) if mask.any()]
    if len(options) == 3:
        options.append(b.top | b.bottom)
    found: list[tuple[tuple[bool, float], float, Fit]] = []  # score, distance from the least-squares gain, fit
    luma_a, luma_b = _stored(a.luma, a.orientation), _stored(b.luma, a.orientation)
    for leave in options:
        index = _index(luma_b, _stored(b.clipped | leave, a.orientation))
        blocks = _gather(luma_a, index)
        span = (blocks.max(axis=(1, 2)) - blocks.min(axis=(1, 2)))[:, None, None]
        coeff_a, coeff_b = (_C @ (blocks - 128.0) @ _C.T).astype(np.float32), _coefficients(luma_b, index)
        telling = np.round(coeff_a / a.table) != 0
        telling[:, 0, 0] = False
        if telling.sum() < MIN_EVIDENCE:
            continue
        gain = float((coeff_a * coeff_b)[telling].sum() / (coeff_a * coeff_a)[telling].sum())
        if not MIN_GAIN <= gain <= 1 / MIN_GAIN:
            continue
        # only the telling coefficients count: each gain below reads them alone, in the blocks' order (a few
        # percent of the blocks' 64 each: the same values, sums and verdicts as over whole blocks, far sooner)
        _, u, v = np.nonzero(telling)
        tell_a, tell_b = coeff_a[telling], coeff_b[telling]
        tell_span, tell_tolerance = np.broadcast_to(span, telling.shape)[telling], tolerance[u, v]
        for g in {1.0, *(gain + GAIN_STEP * k for k in range(-GAIN_STEPS, GAIN_STEPS + 1))}:
            close = np.minimum(1.0, tolerance / (g * a.table / 2))[u, v]
            # the edit rounds to whole levels: over a block spanning fewer than ``WRAPS`` of its steps (1 / |g - 1|
            # levels: where round(g x) moves by 2 instead of 1) the block's AC scales by 1, not g: it cannot tell
            counted = (close < 1) & ((g == 1.0) | (tell_span * abs(g - 1) >= WRAPS))
            if not counted.any():
                continue
            held = np.abs(tell_b[counted] - g * tell_a[counted]) <= tell_tolerance[counted]
            chance = float((1 - close)[counted].sum())
            fit = Fit(float((~held).sum()), chance, g, float(held.mean()), held=True)
            found.append((_score(fit), abs(g - gain), fit))
    if not found:
        return None
    best = min(found, key=lambda f: f[:2])[2]
    if best.on_lattice and abs(best.gain - 1) <= GAIN_STEP * GAIN_STEPS:  # as ``fit``: 1 (no edit) when it holds
        return next((f for _, _, f in sorted(found, key=lambda f: f[:2]) if f.gain == 1.0 and f.on_lattice), best)
    return best


def _holding(found: Fit, coeff_a: np.ndarray, coeff_b: np.ndarray, table: np.ndarray, rounding: np.ndarray) -> Fit:
    """``found`` with its ``same``: made from a, b holds a's picture on a's grid, so its lattice points are a's
    coefficients (a mirrored copy or a sibling made from one earlier JPEG can sit on a lattice with the same
    table)."""
    lattice = table * found.gain
    telling = np.abs(coeff_b) >= lattice / 2
    telling[:, 0, 0] = False
    same = np.abs(lattice * np.round(coeff_b / lattice) - found.gain * coeff_a) <= rounding / 2 + 2 * NOISE
    return Fit(found.misses, found.chance, found.gain, float(same[telling].mean()) if telling.any() else 0.0)


def _fits_at(coefficients: np.ndarray, table: np.ndarray, rounding: np.ndarray, gains: list[float]) -> list[Fit]:
    """Misses of ``coefficients`` (a file quantized with ``rounding``: 1 when lossless) against ``table`` x
    each of ``gains``, and chance's count, position by position.

    The file's own values are multiples of its step (``j x rounding``). Made from the JPEG, it holds only
    the *allowed* ones, within half its step (and a decode's noise) of the lattice; the others are misses.
    Chance's count of misses is what the allowed values' counts predict for the forbidden ones
    (log-linear between neighbours: coefficients thin out smoothly away from zero). Positions where every
    value is allowed (a step barely finer than the lattice's) cannot tell; neither can a coefficient that
    rounds to zero on the lattice.

    A position's magnitudes are sorted and rounded to steps once for every gain: a gain's values are those
    from its lattice's half step on (a suffix), and its counts of each step come from where each step starts
    and ends in the sorted steps (what ``np.bincount`` of that suffix gives). Each gain adds its positions in
    the same order, with the same operations, as one gain at a time did: the same sums.
    """
    lattices = np.stack([table * gain for gain in gains])  # float32, as one gain's ``table * gain`` is
    tolerance = rounding / 2 + NOISE
    telling = lattices > 2 * tolerance
    misses, chance = [0.0] * len(gains), [0.0] * len(gains)
    for u, v in zip(*np.nonzero(telling.any(axis=0)), strict=True):
        if u == v == 0:
            continue
        rows = np.flatnonzero(telling[:, u, v])
        # each gain's lattice step, in float64 as numpy 1's ``lattice[u, v] / 2`` computed it one gain at a time
        step = lattices[rows, u, v].astype(np.float64)[:, None]
        values = np.sort(np.abs(coefficients[:, u, v]))
        first = np.searchsorted(values, step[:, 0] / 2, side="left")
        rows, step, first = rows[first < len(values)], step[first < len(values)], first[first < len(values)]
        if not len(rows):
            continue
        steps = np.round(values / rounding[u, v]).astype(np.int64)  # sorted, as the magnitudes are
        j = np.arange(steps[-1] + 1)
        starts, ends = np.searchsorted(steps, j, side="left"), np.searchsorted(steps, j, side="right")
        counts = np.maximum(0, ends - np.maximum(starts, first[:, None])).astype(np.float64)
        at = j * rounding[u, v]
        forbidden = np.abs(at - step * np.round(at / step)) > tolerance[u, v]
        allowed = ~forbidden & (at >= step / 2 - rounding[u, v] / 2)
        for row in np.flatnonzero(forbidden.any(axis=1) & allowed.any(axis=1)):
            bad, good, count = forbidden[row], allowed[row], counts[row]
            expected = np.exp(np.interp(j[bad], j[good], np.log(count[good] + 0.5))) - 0.5
            misses[rows[row]] += count[bad].sum()
            chance[rows[row]] += np.clip(expected, 0, None).sum()
    return [Fit(float(m), float(c), gain) for m, c, gain in zip(misses, chance, gains, strict=True)]


def _pair(a: Picture, b: Picture) -> tuple[np.ndarray, np.ndarray] | None:
    """Both pictures' sampled blocks on JPEG ``a``'s grid (its stored orientation), where neither is clipped."""
    if a.table is None or a is b or a.luma.shape != b.luma.shape:
        return None
    return _both(a, b, a.clipped | b.clipped)


def _both(a: Picture, b: Picture, skip: np.ndarray | None,
          flag: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
    """The same blocks of ``a`` and ``b`` (textured in ``b``, no pixel in ``skip``) on JPEG ``a``'s grid, in its
    stored orientation; with ``flag`` (a pixel mask), also which of those blocks hold a flagged pixel."""
    luma_a, luma_b = _stored(a.luma, a.orientation), _stored(b.luma, a.orientation)
    index = _index(luma_b, None if skip is None else _stored(skip, a.orientation))
    both = _coefficients(luma_a, index), _coefficients(luma_b, index)
    if flag is None:
        return both
    return (*both, _gather(_stored(flag, a.orientation), index).any(axis=(1, 2)))


def decoded_from(b: Picture, a: Picture) -> float | None:
    """Whether ``b`` was made from JPEG ``a``'s pixels: its DCT fits ``a``'s quantization (as is, or scaled by
    a contrast change) far beyond chance. The gain (1.0: none) when it was; None when not."""
    found = fit(b, a)
    return found.gain if found is not None and found.on_lattice else None


def encoded_from(a: Picture, b: Picture) -> bool:
    """Whether JPEG ``a`` was encoded from lossless ``b``'s pixels.

    ``b`` must not be a decode of ``a``: off its lattice where nothing clips (``OFF_LATTICE``), or in at
    least ``OFF_SHARE`` of the textured blocks different from ``a``'s pixels by more than a decoder's
    rounding (``DECODE_RMS``; on a white page nearly every block clips). Where ``b`` is off the lattice, the
    two stories part: a JPEG of ``b`` holds ``b``'s coefficients rounded to its table (``sim``: decoded and
    clipped as a decoder would, so a white page's clipped ringing counts), a decode of ``a`` holds ``b``'s
    own. ``a`` is an encoding of ``b`` when it agrees with ``sim`` on at least ``MATCH_SHARE`` of those
    coefficients that round to a nonzero lattice point (a zero is what any picture's small values round to: a
    camera JPEG and a tone edit of the picture it was saved from, neither made from the other, agree on 0.96
    of all of them and on 0.65-0.71 of the nonzero ones; an encoding on 0.95-1.00 of those), and ``b`` is not
    ``a``'s coefficients amplified (``MAX_GAIN``, measured where nothing clips, when enough does not): a
    contrast gain or sharpening of a decode of ``a`` also rounds back to ``a``'s coefficients. (A darker or
    flatter decode is found by ``decoded_from``'s gain.)
    """
    if not b.lossless or a.table is None or a is b or a.luma.shape != b.luma.shape:
        return False
    found = fit(b, a)
    if found is None or found.on_lattice:
        return False
    coeff_a, coeff_b, coloured = _both(a, b, None, a.coloured_clip | b.coloured_clip)
    if len(coeff_a) < MIN_BLOCKS:
        return False
    differs = np.sqrt(((coeff_a - coeff_b) ** 2).sum(axis=(1, 2))) / 8 > DECODE_RMS
    off_lattice = found.chance >= MIN_EVIDENCE and found.misses >= OFF_LATTICE * found.chance
    if not off_lattice and differs.mean() < OFF_SHARE:
        return False
    # a colour channel's clipping is not luminance's: the rest of the test runs where no coloured pixel clips
    coeff_a, coeff_b = coeff_a[~coloured], coeff_b[~coloured]
    table = a.table
    rounded = table * np.round(coeff_b / table)
    decoded = _C.T @ rounded @ _C + 128.0
    sim = _C @ np.clip(decoded, 0, 255) @ _C.T - 128.0 * _DC
    moved = coeff_b - sim
    # a coefficient ``b`` rounds to zero tells nothing: any picture's small values round to zero too (a tone
    # edit of ``a``'s source, or an unrelated picture, agrees there 0.90-0.98 of the time); only a nonzero
    # lattice point says which value ``a`` rounded
    telling = ((np.abs(moved) > 2 * NOISE) & (np.abs(np.abs(coeff_b - rounded) - table / 2) > NOISE)
               & (rounded != 0))
    telling[:, 0, 0] = False
    if telling.sum() < MIN_EVIDENCE:
        return False
    agree = float((np.abs(coeff_a - sim) <= 2 * NOISE)[telling].mean())
    clean = telling & ((decoded.min(axis=(1, 2)) >= 0) & (decoded.max(axis=(1, 2)) <= 255))[:, None, None]
    gain = float((coeff_b * sim)[clean].sum() / (sim * sim)[clean].sum()) if clean.sum() >= MIN_EVIDENCE else 0.0
    return agree >= MATCH_SHARE and gain <= MAX_GAIN
