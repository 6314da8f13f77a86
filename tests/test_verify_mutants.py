"""Blind spots a held-out mutation sample found in photodedup/verify.py (``benchmarks/mutate.py --module
verify --max 15 --seed 3``, then ``--seed 4``): the colour and layout signatures of a thumbnail, the layout
gate reading only the middle two thirds of a layout, the least number of matches, and a tile's correlation at
its limit. Unit level on arrays and thumbnails."""

from __future__ import annotations

import numpy as np

from photodedup import verify
from photodedup.verify import Features, Thumbnail, Verdict, VerifySettings
from tests.test_verify_rules import BOX, SIZE, descriptors, jpeg, small_features, spread_points


def test_signatures_are_a_unit_colour_histogram_and_24_pixel_layouts_of_the_content_and_the_whole():
    colour, layouts = verify.signatures(Thumbnail(jpeg(), BOX))
    assert colour.shape == (64,) and colour.dtype == np.float32
    assert abs(float(colour @ colour) - 1.0) < 1e-5  # a unit vector: two signatures' product is their overlap
    # a grey picture's colours lie on the grey diagonal of the 4 x 4 x 4 bins only (bins 0, 21, 42, 63)
    assert set(np.flatnonzero(colour).tolist()) <= {0, 21, 42, 63} and colour[[21, 42]].sum() > 0
    assert layouts.shape == (2, verify.LAYOUT_SIDE, verify.LAYOUT_SIDE) == (2, 24, 24) and layouts.dtype == np.uint8
    assert not np.array_equal(layouts[0], layouts[1])  # the content (inside BOX) is not the whole thumbnail
    assert verify.signatures(Thumbnail(b"not a jpeg", BOX)) is None
    assert verify.signatures(None) is None


def test_layouts_agree_on_their_middle_two_thirds_whatever_lies_around_it():
    rng = np.random.default_rng(8)
    a = rng.integers(0, 256, (24, 24)).astype(np.uint8)
    b = rng.integers(0, 256, (24, 24)).astype(np.uint8)  # another picture everywhere...
    b[4:20, 4:20] = a[4:20, 4:20]  # ...but the middle two thirds (24 // 6 = 4 pixels in from each side)
    assert verify.layouts_agree(a, b) and verify.layouts_agree(b, a)
    c = b.copy()
    c[4:20, 4] = rng.integers(0, 256, 16)  # one column of the middle changed as well: not the same middle
    c[4:20, 19] = rng.integers(0, 256, 16)
    c[4, 4:20] = rng.integers(0, 256, 16)
    c[19, 4:20] = rng.integers(0, 256, 16)
    assert not verify.layouts_agree(a, c)


def test_exactly_the_least_number_of_matches_and_inliers_verifies():
    # 20 features, each matched once (MIN_INLIERS = 20): enough to look for a homography, and enough inliers
    points, found = spread_points(20), descriptors(20)
    a, b = Features(points, found, SIZE), Features(points.copy(), found.copy(), SIZE)
    assert VerifySettings().min_inliers == 20
    assert verify.verify(a, b) == Verdict(True, 20, 1.0, 1.0, "")


def test_a_tile_correlating_exactly_at_the_limit_agrees():
    # columns of 4 values a period, centred: x = 2 * (2, 1, -2, -1), y = 2 * (1, 2, -1, -2); in every tile
    # (12 x 16 pixels, 4 periods a row) x.y / (|x| |y|) = 8 / 10, the float 0.8 (TILE_NCC) exactly
    columns = np.arange(64) % 4
    x = np.tile(100 + 2 * np.array([2, 1, -2, -1], np.float32)[columns], (48, 1))
    y = np.tile(100 + 2 * np.array([1, 2, -1, -2], np.float32)[columns], (48, 1))
    assert verify.TILE_NCC == 0.8
    assert verify._agreement(np.eye(3), small_features(x), small_features(y)) == 1.0


# -- session 6 -------------------------------------------------------------------------------------
def test_the_colour_signature_bins_each_channel_in_its_own_quarter():
    # left half RGB (224, 32, 96), right half (32, 160, 224): in OpenCV's BGR order the bins are
    # (96 // 64 * 4 + 32 // 64) * 4 + 224 // 64 = 19 and (224 // 64 * 4 + 160 // 64) * 4 + 32 // 64 = 56
    import io

    from PIL import Image

    picture = np.zeros((240, 320, 3), np.uint8)
    picture[:, :160], picture[:, 160:] = (224, 32, 96), (32, 160, 224)
    buf = io.BytesIO()
    Image.fromarray(picture).save(buf, "JPEG", quality=95)
    whole = {"width": 320, "height": 240, "content_left": 0, "content_top": 0, "content_width": 320,
             "content_height": 240}
    colour, _ = verify.signatures(Thumbnail(buf.getvalue(), whole))
    assert set(np.flatnonzero(colour > 0.1).tolist()) == {19, 56}
    assert np.allclose(colour[[19, 56]], np.sqrt(0.5), atol=0.05)
