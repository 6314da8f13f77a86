"""JPEG forensics' edges (photodedup.provenance), each written against a mutant that tests/test_provenance.py let
through (benchmarks/mutate.py --module provenance; docs/BENCHMARKS.md "Mutation testing, session 8")."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont
from test_keeper import photo, screenshot

from photodedup import provenance


def _read(image: Image.Image, fmt: str, lossless: bool, **options) -> provenance.Picture:
    data = io.BytesIO()
    image.save(data, fmt, **options)
    data.seek(0)
    picture = provenance.read(data, lossless)
    assert picture is not None
    return picture


@pytest.mark.parametrize(("orientation", "stored"), [
    (2, Image.Transpose.FLIP_LEFT_RIGHT), (4, Image.Transpose.FLIP_TOP_BOTTOM), (5, Image.Transpose.TRANSPOSE),
    (7, Image.Transpose.TRANSVERSE)])
def test_a_jpeg_stored_flipped_or_transposed_is_the_encoding_of_the_upright_picture(orientation, stored):
    """The JPEG's blocks are compared on its stored grid, so each orientation must turn the upright picture back
    exactly: on a picture whose sides are not multiples of 8 (537 x 1165), a flip left uncorrected moves every
    block off the grid (one of 8 x 8 pixels is mirrored block by block, which keeps each coefficient's size)."""
    shot = screenshot()
    shot = shot.crop((0, 0, shot.width - 3, shot.height - 5))
    assert shot.width % 8 and shot.height % 8
    exif = Image.Exif()
    exif[0x0112] = orientation
    jpeg = _read(shot.transpose(stored), "JPEG", False, quality=90, exif=exif.tobytes())
    assert jpeg.orientation == orientation and jpeg.luma.shape == (shot.height, shot.width)
    assert provenance.encoded_from(jpeg, _read(shot, "PNG", True))


def test_a_clipped_pixel_is_coloured_when_its_channels_differ_by_more_than_six():
    """``GREY``: channels within 6 levels are grey (luminance clips as they do); 7 apart, a coloured clip."""
    rows = [[(255, 249, 249)] * 8, [(255, 248, 248)] * 8, [(0, 6, 6)] * 8, [(0, 7, 7)] * 8]
    picture = _read(Image.fromarray(np.array(rows, np.uint8)), "PNG", True)
    assert picture.clipped.all()
    assert picture.coloured_clip[:, 0].tolist() == [False, True, False, True]


@pytest.mark.parametrize("span", [80, 95])
def test_a_jpeg_of_a_bright_picture_whose_highlights_reach_white_is_its_encoding(span):
    """The lossless picture 190 + span/255 of a photo (white where it would pass 255): its JPEG's coefficients
    are the picture's rounded, decoded and clipped at 255 as a decoder does (the level shift of 128 exactly:
    more would clip where no decoder does)."""
    pixels = np.asarray(photo()).astype(np.float32)
    bright = Image.fromarray(np.clip(190 + pixels * span / 255, 0, 255).astype(np.uint8))
    assert (np.asarray(bright) == 255).mean() > 0.01
    assert provenance.encoded_from(_read(bright, "JPEG", False, quality=90), _read(bright, "PNG", True))


@pytest.mark.parametrize("grey", [False, True], ids=["colour", "grey"])
def test_a_quality_75_jpeg_of_a_photo_is_its_encoding(grey):
    """The simulated encoding's level shift is the DC coefficient's alone (``_DC``): anywhere else it would move
    a low frequency of every block off the JPEG's."""
    picture = photo().convert("L").convert("RGB") if grey else photo()
    assert provenance.encoded_from(_read(picture, "JPEG", False, quality=75), _read(picture, "PNG", True))


def _blocks(coefficients: np.ndarray) -> np.ndarray:
    """The luminance plane (8 x 8 blocks in a row of ``len(coefficients[0])``) with these DCT coefficients."""
    blocks = provenance._C.T @ coefficients @ provenance._C + 128.0
    rows, cols = coefficients.shape[:2]
    return blocks.transpose(0, 2, 1, 3).reshape(rows * 8, cols * 8)


def test_a_file_within_exactly_its_rounding_and_the_held_noise_of_a_s_coefficients_holds_a_s_picture():
    """``_held``'s tolerance for a lossless file is half its step plus ``HELD_NOISE`` (2.5), inclusive: a's
    picture with the (4, 4) coefficient of every block moved by exactly 2.5 (a pattern of +-0.3125 levels,
    exact in float32) holds it, with no miss."""
    rng = np.random.default_rng(3)
    coefficients = np.zeros((8, 40, 8, 8))
    for u, v in ((0, 1), (1, 0), (1, 1), (2, 0), (0, 2), (4, 4)):
        coefficients[:, :, u, v] = 16 * rng.choice([-3, -2, -1, 1, 2, 3], (8, 40))
    luma = np.round(_blocks(coefficients) * 64) / 64   # levels in 1/64: the edit below adds exactly
    sign = np.sign(np.cos((2 * np.arange(8) + 1) * np.pi / 4))
    edit = np.tile(0.3125 * np.outer(sign, sign), (8, 40))
    none = np.zeros(luma.shape, bool)
    a = provenance.Picture("a", luma.astype(np.float32), none, none, none, none, np.full((8, 8), 16.0, np.float32),
                           1, False)
    b = provenance.Picture("b", (luma + edit).astype(np.float32), none, none, none, none, None, 1, True)
    moved = provenance._coefficients(b.luma, np.arange(320)) - provenance._coefficients(a.luma, np.arange(320))
    assert np.abs(moved[:, 4, 4]).min() == np.abs(moved[:, 4, 4]).max() == 2.5
    found = provenance._held(b, a, np.ones((8, 8), np.float32))
    assert (found.misses, found.gain, found.same) == (0.0, 1.0, 1.0) and found.on_lattice


def test_a_coefficient_at_exactly_half_the_step_is_one_of_b_s_lattice_points():
    """``_holding`` counts b's coefficients from half the lattice's step (as ``fit`` counts a's): at exactly 8 of
    16 it rounds to the lattice point 0, which is a's coefficient there; a lattice point is a's when a's
    coefficient is within half b's step and twice ``NOISE``."""
    coeff_a, coeff_b = np.zeros((1, 8, 8), np.float32), np.zeros((1, 8, 8), np.float32)
    coeff_b[0, 0, 1] = 8.0                          # half a step: lattice point 0, a's is 0
    coeff_a[0, 0, 2] = coeff_b[0, 0, 2] = 16.0      # on a's own lattice point
    coeff_b[0, 0, 3] = 16.0                         # a lattice point a does not hold
    coeff_b[0, 0, 4], coeff_a[0, 0, 4] = 16.0, 13.0  # 3 away: beyond half b's step and twice the noise (2.5)
    table = np.full((8, 8), 16.0, np.float32)
    found = provenance._holding(provenance.Fit(0.0, 100.0, 1.0), coeff_a, coeff_b, table, np.ones((8, 8), np.float32))
    assert found.same == 2 / 4


@pytest.mark.parametrize(("gain", "found"), [(1.8, 1.8), (2.5, None)])
def test_a_contrast_edit_is_found_up_to_a_gain_of_two(gain, found):
    """A flat JPEG's decode with its contrast raised (nothing clips): the gains tried run from ``MIN_GAIN`` (0.5)
    to its inverse (2), so 1.8 is found as made from it, 2.5 is beyond the edits looked for."""
    pixels = np.asarray(photo()).astype(np.float32)
    data = io.BytesIO()
    Image.fromarray(np.clip(128 + (pixels - 128) * 0.35, 0, 255).astype(np.uint8)).save(data, "JPEG", quality=75)
    data.seek(0)
    jpeg = provenance.read(data, False)
    data.seek(0)
    decoded = np.asarray(Image.open(data).convert("RGB")).astype(np.float32)
    edited = _read(Image.fromarray(np.clip(np.round(128 + (decoded - 128) * gain), 0, 255).astype(np.uint8)), "PNG",
                   True)
    assert not edited.clipped.any()
    assert provenance.decoded_from(edited, jpeg) == (None if found is None else pytest.approx(found, abs=0.01))


def test_values_that_round_to_zero_on_the_lattice_tell_nothing():
    """A position whose values all sit at half the lattice's step (2 of 4: ``np.round`` takes them to 0) has no
    allowed value to predict chance from: no miss is counted there."""
    coefficients = np.zeros((50, 8, 8), np.float32)
    coefficients[:, 0, 1] = 2.0
    table = np.full((8, 8), 255.0, np.float32)
    table[0, 1] = 4.0
    fits = provenance._fits_at(coefficients, table, np.ones((8, 8), np.float32), [1.0])
    assert fits == [provenance.Fit(0.0, 0.0, 1.0)]


def test_steps_within_the_held_tolerance_tell_nothing():
    """Where a's step is at most twice ``_held``'s tolerance (a table of 4: 2.5 covers half of it), every value
    would be held by chance: those positions are not counted, and a file 3 away from a there finds nothing."""
    rng = np.random.default_rng(4)
    coefficients = np.zeros((8, 40, 8, 8))
    coefficients[:, :, 4, 4] = 4 * rng.choice([-3, -2, -1, 1, 2, 3], (8, 40))
    coefficients[:, :, 0, 1] = 16 * rng.choice([-2, -1, 1, 2], (8, 40))   # texture, a's nonzero steps
    luma = np.round(_blocks(coefficients) * 64) / 64
    sign = np.sign(np.cos((2 * np.arange(8) + 1) * np.pi / 4))
    edit = np.tile(0.375 * np.outer(sign, sign), (8, 40))   # (4, 4) moved by exactly 3
    none = np.zeros(luma.shape, bool)
    a = provenance.Picture("a", luma.astype(np.float32), none, none, none, none, np.full((8, 8), 4.0, np.float32), 1,
                           False)
    b = provenance.Picture("b", (luma + edit).astype(np.float32), none, none, none, none, None, 1, True)
    assert provenance._held(b, a, np.ones((8, 8), np.float32)) is None


def _fit_one_gain(coefficients, table, rounding, gain):
    """The lattice fit one gain at a time, written plainly (as provenance did before it took every gain in one
    pass): the reference ``_fits_at`` must equal, sum for sum."""
    lattice = table * gain
    tolerance = rounding / 2 + provenance.NOISE
    misses = chance = 0.0
    for u, v in zip(*np.nonzero(lattice > 2 * tolerance), strict=True):
        if u == v == 0:
            continue
        values = np.abs(coefficients[:, u, v])
        steps = np.round(values[values >= lattice[u, v] / 2] / rounding[u, v]).astype(np.int64)
        if not len(steps):
            continue
        counts = np.bincount(steps).astype(np.float64)
        j = np.arange(len(counts))
        at = j * rounding[u, v]
        forbidden = np.abs(at - lattice[u, v] * np.round(at / lattice[u, v])) > tolerance[u, v]
        allowed = ~forbidden & (at >= lattice[u, v] / 2 - rounding[u, v] / 2)
        if not forbidden.any() or not allowed.any():
            continue
        expected = np.exp(np.interp(j[forbidden], j[allowed], np.log(counts[allowed] + 0.5))) - 0.5
        misses += counts[forbidden].sum()
        chance += np.clip(expected, 0, None).sum()
    return provenance.Fit(float(misses), float(chance), gain)


@pytest.mark.parametrize("rounding_step", [1.0, 3.0])
def test_every_gain_in_one_pass_is_each_gain_alone(rounding_step):
    """``_fits_at`` over a gain search (the file's own gain, its neighbours, gains whose lattices reach no value)
    gives, for each gain, exactly what fitting that gain alone gives: on coefficients of a picture quantized by
    a table (Laplacian texture, a few off-lattice values) and read back with a coarser or a lossless step."""
    rng = np.random.default_rng(11)
    table = np.clip(np.round(rng.uniform(3, 40, (8, 8))), 1, 255).astype(np.float32)
    table[0, 0] = 8
    levels = np.round(rng.laplace(0, 2.5, (600, 8, 8)))
    coefficients = levels * table * 1.07 + rng.normal(0, 0.6, (600, 8, 8))  # brightened by 7%, decoded
    coefficients[::37, 3, 2] += 0.5 * table[3, 2]  # a few values half a step off
    rounding = np.full((8, 8), rounding_step, np.float32)
    coefficients = np.round(coefficients / rounding) * rounding
    gains = [1.0] + [1.07 + provenance.GAIN_STEP * k for k in range(-provenance.GAIN_STEPS, provenance.GAIN_STEPS + 1)]
    gains += [40.0]  # a lattice beyond every value
    found = provenance._fits_at(coefficients.astype(np.float32), table, rounding, gains)
    expected = [_fit_one_gain(coefficients.astype(np.float32), table, rounding, g) for g in gains]
    assert found == expected
    assert min(found, key=lambda f: f.misses).gain != 1.0 and any(f.chance > 0 for f in found)


# -- session 9 (benchmarks/mutate.py --module provenance, held-out seeds 10 and 11) ------------------------------
@pytest.mark.parametrize("orientation", [0, 9])
def test_a_jpeg_with_an_orientation_tag_outside_one_to_eight_is_read_as_stored(orientation):
    """Some writers put 0 (or a value past 8) in the EXIF orientation: no turn is meant (Pillow shows the pixels as
    stored), so the JPEG's grid is its pixels' own; read as a flip, a picture whose sides are not multiples of 8
    would put every block off the grid and its own encoding would not be found."""
    picture = photo((477, 355))
    exif = Image.Exif()
    exif[0x0112] = orientation
    jpeg = _read(picture, "JPEG", False, quality=90, exif=exif.tobytes())
    assert jpeg.orientation == 1
    assert provenance.encoded_from(jpeg, _read(picture, "PNG", True))


def test_a_brightness_offset_moves_only_the_dc_which_tells_nothing_of_the_source():
    """A file made from a's pixels and brightened by 15 levels: every block's mean (its DC, 8 x 15 = 120 more) moves
    and its texture does not. ``_holding`` counts b's AC lattice points alone (as ``fit`` does): both are a's."""
    coeff_a = np.zeros((1, 8, 8), np.float32)
    coeff_a[0, 0, 0], coeff_a[0, 0, 1], coeff_a[0, 1, 0] = 80.0, 16.0, 32.0
    coeff_b = coeff_a.copy()
    coeff_b[0, 0, 0] += 8 * 15
    table = np.full((8, 8), 16.0, np.float32)
    found = provenance._holding(provenance.Fit(0.0, 100.0, 1.0), coeff_a, coeff_b, table, np.ones((8, 8), np.float32))
    assert found.same == 1.0


def _channel_with(spike: int, near: list[int], shape: tuple[int, int] = (100, 200)) -> np.ndarray:
    """A channel spread evenly over the levels 20-119 but for ``spike`` pixels at 255 and ``near[i]`` pixels at
    252 - i (the values 3 to 10 inwards of the top)."""
    values = (20 + np.arange(shape[0] * shape[1]) % 100).astype(np.uint8)
    values[:spike] = 255
    at = spike
    for i, count in enumerate(near):
        values[at:at + count] = 252 - i
        at += count
    return values.reshape(*shape, 1)


@pytest.mark.parametrize(("spike", "near", "shape", "found"), [
    (100, [0] * 8, (100, 200), True),      # 0.5% of the pixels on 255, nothing near: a spike
    (99, [0] * 8, (100, 200), False),      # under 0.5%: too few to be where an edit clipped
    (100, [12, 13] * 4, (100, 200), True),  # 8 times the mean of the values 3-10 inwards (12.5)
    (100, [13] * 8, (100, 200), False),    # under 8 times: the end of a tail, not a clip
    (8, [0] * 8, (40, 40), True),          # a small picture: 8 pixels, nothing near (counted as 1 pixel at least)
])
def test_a_clip_spike_holds_half_a_percent_of_the_pixels_and_eight_times_its_neighbours(spike, near, shape, found):
    """``SPIKE_SHARE`` and ``SPIKE_RATIO`` are inclusive: a tone edit that clipped 0.5% of a picture leaves a spike
    whose pixels (and those within ``CLIP`` of it) ``_held`` may leave out; with nothing near, the neighbours count
    as one pixel, so a spike needs ``SPIKE_RATIO`` pixels."""
    top, bottom = provenance._spikes(_channel_with(spike, near, shape))
    assert not bottom.any()
    assert int(top.sum()) == (spike if found else 0)  # the pixels at 255 (the values near are 3 and more in)


@pytest.mark.parametrize("end", ["top", "bottom"])
def test_a_clip_spike_takes_the_values_within_clip_of_it_at_either_end(end):
    """A JPEG of a clipped picture rounds some clipped pixels up to ``CLIP`` (2) levels inwards: with the spike at 255
    they are the pixels at 253 and 254 (at 0: at 1 and 2), one level further in (252, 3) is the picture."""
    channel = _channel_with(100, [0] * 8)
    channel.reshape(-1)[100:105], channel.reshape(-1)[105:110], channel.reshape(-1)[110:115] = 254, 253, 252
    if end == "bottom":
        channel = 255 - channel
    top, bottom = provenance._spikes(channel)
    found, other = (top, bottom) if end == "top" else (bottom, top)
    assert not other.any()
    assert int(found.sum()) == 110


def test_a_quality_50_jpeg_of_a_screenshot_is_its_encoding():
    """Text on flat bubbles at quality 50: its clipped ringing leaves the JPEG agreeing with the screenshot's
    coefficients rounded (and decoded, clipped) on fewer than all of the telling ones, but on at least
    ``MATCH_SHARE`` (0.9) of them, as an encoding does; a decode or a tone edit agrees on 0.65-0.71."""
    shot = screenshot()
    assert provenance.encoded_from(_read(shot, "JPEG", False, quality=50), _read(shot, "PNG", True))


def test_a_jpeg_of_a_black_and_white_document_is_its_encoding():
    """Black text on a white page: nearly every textured block clips, so the page is not measurably off the JPEG's
    lattice; its blocks differ from the JPEG's pixels by more than a decoder's rounding (``DECODE_RMS``, the RMS of
    the coefficients' differences) in at least ``OFF_SHARE`` of them, which says it is no decode of it."""
    page = Image.new("RGB", (600, 800), (255, 255, 255))
    draw = ImageDraw.Draw(page)
    for row in range(30):
        draw.text((30, 20 + row * 25), f"line {row} of a plain document with words {row * 17 % 97}", fill=(0, 0, 0),
                  font=ImageFont.load_default(size=16))
    assert provenance.encoded_from(_read(page, "JPEG", False, quality=75), _read(page, "PNG", True))
