"""JPEG quantization forensics (photodedup.provenance): which of two files was made from the other."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps
from test_keeper import photo, screenshot

from photodedup import provenance


def saved(image: Image.Image, fmt: str, **options) -> io.BytesIO:
    out = io.BytesIO()
    image.save(out, fmt, **options)
    out.seek(0)
    return out


def read(data: io.BytesIO, lossless: bool) -> provenance.Picture:
    data.seek(0)
    picture = provenance.read(data, lossless)
    assert picture is not None
    return picture


def test_a_decode_of_a_jpeg_sits_on_its_lattice_and_the_original_not_on_its_copy_s():
    original = saved(photo(), "JPEG", quality=75)
    pixels = Image.open(original).convert("RGB")
    a = read(original, False)
    resave, export = read(saved(pixels, "JPEG", quality=90), False), read(saved(pixels, "PNG"), True)
    gray = read(saved(pixels.convert("L"), "JPEG", quality=92), False)
    assert provenance.decoded_from(resave, a) == provenance.decoded_from(export, a) == 1.0
    assert provenance.decoded_from(gray, a) == 1.0
    found = provenance.fit(export, a)
    assert found.chance >= provenance.MIN_EVIDENCE and found.misses <= provenance.FIT_SHARE * found.chance
    assert provenance.decoded_from(a, resave) is None  # the coarser file says nothing about the finer one
    assert not provenance.encoded_from(a, export)  # the export is on the JPEG's lattice: made from it


@pytest.mark.parametrize("gain", [0.9, 0.95, 1.05, 1.1])
def test_a_decode_with_its_contrast_changed_sits_on_the_lattice_scaled_by_the_gain(gain):
    original = saved(photo(), "JPEG", quality=75)
    edited = read(saved(ImageEnhance.Contrast(Image.open(original).convert("RGB")).enhance(gain), "PNG"), True)
    a = read(original, False)
    assert provenance.decoded_from(edited, a) == pytest.approx(gain, abs=0.005)
    assert not provenance.encoded_from(a, edited)  # rounds back to the JPEG's coefficients, but is its edit


def test_a_jpeg_of_a_lossless_picture_is_its_encoding_in_any_orientation():
    shot = screenshot()
    png = read(saved(shot, "PNG"), True)
    for orientation, turn in ((1, None), (6, Image.Transpose.ROTATE_90), (8, Image.Transpose.ROTATE_270),
                              (3, Image.Transpose.ROTATE_180), (2, Image.Transpose.FLIP_LEFT_RIGHT)):
        exif = Image.Exif()
        exif[0x0112] = orientation
        stored = shot if turn is None else shot.transpose(turn)
        jpeg = read(saved(stored, "JPEG", quality=90, exif=exif.tobytes()), False)
        assert provenance.encoded_from(jpeg, png), orientation
        assert provenance.decoded_from(png, jpeg) is None, orientation
    picture = photo()
    assert provenance.encoded_from(read(saved(picture, "JPEG", quality=85), False), read(saved(picture, "PNG"), True))


def test_siblings_mirrored_copies_and_edits_are_not_made_from_each_other():
    picture = photo()
    # two encodings of one picture: neither is made from the other
    q90, q75 = read(saved(picture, "JPEG", quality=90), False), read(saved(picture, "JPEG", quality=75), False)
    assert provenance.decoded_from(q90, q75) is None and provenance.decoded_from(q75, q90) is None
    # a mirrored copy at a close quality: its lattice is no closer to the original's than chance
    mirrored = read(saved(ImageOps.mirror(picture), "JPEG", quality=90), False)
    assert provenance.decoded_from(read(saved(picture, "JPEG", quality=92), False), mirrored) is None
    # sharpening or smoothing a decode: no lattice, and no encoding either
    original = saved(picture, "JPEG", quality=75)
    a, pixels = read(original, False), Image.open(original).convert("RGB")
    for edit in (ImageFilter.SHARPEN, ImageFilter.SMOOTH):
        edited = read(saved(pixels.filter(edit), "PNG"), True)
        assert provenance.decoded_from(edited, a) is None and not provenance.encoded_from(a, edited)


def test_files_that_cannot_be_compared_find_nothing():
    picture = photo()
    a = read(saved(picture, "JPEG", quality=75), False)
    half = read(saved(picture.resize((240, 180)), "PNG"), True)
    assert provenance.fit(half, a) is None and provenance.decoded_from(half, a) is None
    assert not provenance.encoded_from(a, half)
    png = read(saved(picture, "PNG"), True)
    assert provenance.fit(a, png) is None  # the PNG has no lattice
    assert provenance.read(io.BytesIO(b"not a picture"), True) is None


@pytest.mark.parametrize("brightness, contrast", [(1.1, 0.9), (1.05, 1.15), (1.2, 1.0), (1.0, 0.85)])
def test_a_finer_jpeg_of_a_decode_with_its_tone_changed_sits_on_the_lattice_scaled_by_the_gain(brightness, contrast):
    # the look-alike library's brightness/contrast copy: the quality-75 file decoded, brightened, its contrast
    # changed, saved at quality 90 (its own rounding is finer than the scaled lattice)
    picture = photo()
    original = saved(picture, "JPEG", quality=75)
    a = read(original, False)

    def edited(image: Image.Image) -> Image.Image:
        return ImageEnhance.Contrast(ImageEnhance.Brightness(image).enhance(brightness)).enhance(contrast)

    copy = read(saved(edited(Image.open(original).convert("RGB")), "JPEG", quality=90), False)
    assert provenance.decoded_from(copy, a) == pytest.approx(brightness * contrast, abs=0.01)
    # the same edit of the lossless source, encoded apart: a sibling, made from neither
    sibling = read(saved(edited(picture), "JPEG", quality=90), False)
    assert provenance.decoded_from(sibling, a) is None
    # the edit made first and the quality-75 file from it: the finer file is the source, not a copy
    source = saved(edited(picture), "JPEG", quality=90)
    lower = read(saved(ImageEnhance.Contrast(Image.open(source).convert("RGB")).enhance(1 / contrast), "JPEG",
                       quality=75), False)
    assert provenance.decoded_from(read(source, False), lower) is None


def test_a_re_save_with_a_logo_added_is_a_re_save_not_a_tone_edit():
    # the look-alike library's watermark copy (a logo stamped on the decode, saved at quality 95): a gain a
    # step from 1 can fit as well as 1 (the logo's blocks miss either way); within the search window 1 is said
    from photodedup.sample_library import stamp_logo

    original = saved(photo((1024, 768), seed=3), "JPEG", quality=75)
    copy = read(saved(stamp_logo(Image.open(original).convert("RGB"), 0.6), "JPEG", quality=95), False)
    assert provenance.decoded_from(copy, read(original, False)) == 1.0


def black_and_white(size=(480, 360), seed=0) -> Image.Image:
    """A grey picture whose contrast clips most of it to black or white (the look-alike library's burst-blink
    photo: 90% of its pixels at an end of the range), in RGB."""
    return ImageEnhance.Contrast(photo(size, seed).convert("L")).enhance(5).convert("RGB")


def brightened(image: Image.Image, brightness=1.135, contrast=0.905) -> Image.Image:
    # brightness clips the whites, the contrast cut then moves that clip to 245: a spike below 255
    return ImageEnhance.Contrast(ImageEnhance.Brightness(image).enhance(brightness)).enhance(contrast)


@pytest.mark.parametrize("seed", [0, 1])
def test_a_tone_edit_of_a_mostly_clipped_picture_is_found_as_made_from_it(seed):
    # where the decoder clipped, the JPEG's lattice is lost; the copy still holds the decoded pixels, clipped ones
    # too, times the edit's gain, except where the edit clipped (its spike at 245, left out)
    picture = black_and_white(seed=seed)
    original = saved(picture, "JPEG", quality=75)
    a = read(original, False)
    assert a.clipped.mean() > 0.25
    copy = read(saved(brightened(Image.open(original).convert("RGB")), "JPEG", quality=90), False)
    assert provenance.decoded_from(copy, a) == pytest.approx(1.135 * 0.905, abs=0.01)
    assert provenance.fit(copy, a).held
    assert copy.top.mean() > 0.2 and copy.clipped.mean() < 0.01  # the edit's clip sits at 245, not at 255
    # the same edit of the lossless picture, encoded apart: a sibling, made from neither
    assert provenance.decoded_from(read(saved(brightened(picture), "JPEG", quality=90), False), a) is None
    # the edit made first and the quality-75 file from it (the tone undone): the finer file is the source
    source = saved(brightened(picture), "JPEG", quality=90)
    lower = read(saved(brightened(Image.open(source).convert("RGB"), 1 / 1.135, 1 / 0.905), "JPEG", quality=75), False)
    assert provenance.decoded_from(read(source, False), lower) is None


def test_a_clip_spike_is_found_at_either_end_of_a_channel_and_nowhere_in_a_photo():
    assert not read(saved(photo(), "PNG"), True).top.any() and not read(saved(photo(), "PNG"), True).bottom.any()
    copy = read(saved(brightened(black_and_white()), "PNG"), True)
    assert copy.top.any() and copy.bottom.any()  # the whites clipped at 245, the blacks lifted to 14 (one value)
    dark = read(saved(ImageEnhance.Brightness(black_and_white()).enhance(0.5).point(lambda v: max(0, v - 20)),
                      "PNG"), True)
    assert dark.bottom.mean() > 0.2


def smooth_scene(size=(640, 480), seed=0) -> Image.Image:
    """A very smooth picture (soft colour fields, no camera noise) with a sign and a ball: the only blocks that
    span many levels are the objects' edges (the look-alike set's object-removed_03)."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(40, 215, (size[1] // 96 + 2, size[0] // 96 + 2, 3)).astype(np.uint8)
    image = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    draw.rectangle((380, 120, 520, 230), fill=(250, 250, 240), outline=(0, 0, 0), width=4)
    draw.text((400, 150), "EXIT", fill=(200, 0, 0))
    draw.ellipse((100, 260, 180, 340), fill=(200, 60, 200), outline=(60, 40, 0), width=3)
    return image


@pytest.mark.parametrize("seed", [0, 1])
def test_a_tone_edit_of_a_very_smooth_picture_is_found_as_made_from_it(seed):
    # the edit rounds to whole levels: over a smooth block round(1.127 x) moves by 1 a level, so the block's AC
    # scales by 1, not by the gain, and misses the scaled lattice; blocks that span two of the rounding's wraps
    # (16 levels here: the objects' edges) still hold the decoded DCT times the gain
    picture = smooth_scene(seed=seed)
    original = saved(picture, "JPEG", quality=75)
    a = read(original, False)
    copy = read(saved(brightened(Image.open(original).convert("RGB"), 1.15, 0.98), "JPEG", quality=90), False)
    assert provenance.decoded_from(copy, a) == pytest.approx(1.15 * 0.98, abs=0.01)
    assert provenance.fit(copy, a).held
    # a sibling, and the finer source of a quality-75 file, are made from neither
    assert provenance.decoded_from(read(saved(brightened(picture, 1.15, 0.98), "JPEG", quality=90), False), a) is None
    source = saved(brightened(picture, 1.15, 0.98), "JPEG", quality=90)
    lower = read(saved(brightened(Image.open(source).convert("RGB"), 1 / 1.15, 1 / 0.98), "JPEG", quality=75), False)
    assert provenance.decoded_from(read(source, False), lower) is None


def tone_edited(image: Image.Image, contrast: float) -> Image.Image:
    """The second set's contrast edit: contrast raised, saturation lowered (luminance AC scales by ``contrast``)."""
    return ImageEnhance.Color(ImageEnhance.Contrast(image).enhance(contrast)).enhance(0.7)


@pytest.mark.parametrize("contrast", [1.3, 1.2])
@pytest.mark.parametrize("seed", [0, 1])
def test_a_tone_edit_of_the_camera_jpeg_s_source_is_neither_its_source_nor_its_copy(seed, contrast):
    # the second set's P0012: the camera JPEG and a PNG with its contrast changed, both made from the picture the
    # camera saw. Where the JPEG rounds a coefficient to zero the edit's value rounds to zero too (most of them),
    # so agreeing there says nothing; at the nonzero lattice points the edit's values are the gain times larger
    picture = photo(seed=seed)
    camera = read(saved(picture, "JPEG", quality=90), False)
    edit = read(saved(tone_edited(picture, contrast), "PNG"), True)
    assert not provenance.encoded_from(camera, edit)
    assert provenance.decoded_from(edit, camera) is None
    # the same edit made from the camera JPEG's pixels is its copy, found on the lattice scaled by the gain
    decode = Image.open(saved(picture, "JPEG", quality=90)).convert("RGB")
    made = read(saved(tone_edited(decode, contrast), "PNG"), True)
    assert provenance.decoded_from(made, camera) == pytest.approx(contrast, abs=0.01)
    # and a JPEG encoded from the edit is still its encoding
    assert provenance.encoded_from(read(saved(tone_edited(picture, contrast), "JPEG", quality=90), False), edit)
