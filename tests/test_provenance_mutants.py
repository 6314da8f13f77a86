"""JPEG forensics' edges (photodedup.provenance), each written against a mutant that tests/test_provenance.py let
through (benchmarks/mutate.py --module provenance; docs/BENCHMARKS.md "Mutation testing, session 8")."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from test_keeper import screenshot

from photodedup import provenance


def _read(image: Image.Image, fmt: str, lossless: bool, **options) -> provenance.Picture:
    data = io.BytesIO()
    image.save(data, fmt, **options)
    data.seek(0)
    picture = provenance.read(data, lossless)
    assert picture is not None
    return picture


@pytest.mark.parametrize(("orientation", "stored"), [
    (4, Image.Transpose.FLIP_TOP_BOTTOM), (5, Image.Transpose.TRANSPOSE), (7, Image.Transpose.TRANSVERSE)])
def test_a_jpeg_stored_flipped_or_transposed_is_the_encoding_of_the_upright_picture(orientation, stored):
    """The EXIF orientations test_provenance.py does not try: the JPEG's blocks are compared on its stored grid,
    so each orientation must turn the upright picture back exactly."""
    shot = screenshot()
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
