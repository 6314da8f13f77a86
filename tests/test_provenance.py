"""JPEG quantization forensics (photodedup.provenance): which of two files was made from the other."""

from __future__ import annotations

import io

from PIL import Image, ImageEnhance
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


def test_a_decode_of_a_jpeg_sits_on_its_lattice_and_the_original_does_not_sit_on_its_copy_s():
    original = saved(photo(), "JPEG", quality=75)
    pixels = Image.open(original).convert("RGB")
    a = read(original, False)
    resave, export = read(saved(pixels, "JPEG", quality=90), False), read(saved(pixels, "PNG"), True)
    assert provenance.decoded_from(resave, a) and provenance.decoded_from(export, a)
    assert not provenance.decoded_from(a, resave)  # the coarser file says nothing about the finer one
    assert not provenance.encoded_from(a, export)  # the export is on the JPEG's lattice: made from it
    misses, chance = provenance.fit(export, a)
    assert chance >= provenance.MIN_EVIDENCE and misses <= provenance.FIT_SHARE * chance


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
        assert not provenance.decoded_from(png, jpeg), orientation


def test_two_encodings_of_one_picture_and_an_edit_are_not_made_from_each_other():
    picture = photo()
    q95, q75 = read(saved(picture, "JPEG", quality=95), False), read(saved(picture, "JPEG", quality=75), False)
    assert not provenance.decoded_from(q95, q75) and not provenance.decoded_from(q75, q95)
    # a contrast edit of a decode rounds back to the JPEG's coefficients, but every move leans one way
    original = saved(picture, "JPEG", quality=75)
    edit = read(saved(ImageEnhance.Contrast(Image.open(original).convert("RGB")).enhance(1.1), "PNG"), True)
    a = read(original, False)
    assert not provenance.encoded_from(a, edit) and not provenance.decoded_from(edit, a)
    # different sizes, and a file that is not a JPEG on the other side, find nothing
    half = read(saved(picture.resize((240, 180)), "PNG"), True)
    assert provenance.fit(half, a) is None and not provenance.encoded_from(a, half)
    assert provenance.read(io.BytesIO(b"not a picture"), True) is None
