"""Blind spots a held-out mutation sample found in photodedup/verify.py (``benchmarks/mutate.py --module
verify --max 15 --seed 3``, then ``--seed 4``): the colour and layout signatures of a thumbnail, the layout
gate reading only the middle two thirds of a layout, the least number of matches, and a tile's correlation at
its limit. Unit level on arrays and thumbnails."""

from __future__ import annotations

import numpy as np
import pytest

from photodedup import verify
from photodedup.verify import Features, Thumbnail, Verdict, VerifySettings
from tests.test_verify_rules import BOX, SIZE, descriptors, jpeg, judge, small_features, spread_points, texture


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



def test_features_and_the_homography_use_the_documented_opencv_settings(monkeypatch):
    # ORB (1.2 scale steps, 6 levels, 15 px patches, FAST threshold 10), the agreement picture's blur (5 x 5,
    # sigma 1), RANSAC reseeded with 0 before every pair, USAC_FAST with a 3 px reprojection limit. Spies:
    # every call goes on to OpenCV.
    import cv2

    gray = np.clip(texture(240, 320, seed=4) * 1.5 - 60, 0, 255).astype(np.uint8)
    calls: dict = {}

    def spy(name, keep):
        real = getattr(cv2, name)

        def call(*args, **kw):
            calls.setdefault(name, []).append((keep(args), kw))
            return real(*args, **kw)
        monkeypatch.setattr(cv2, name, call)

    spy("ORB_create", lambda args: args)
    spy("GaussianBlur", lambda args: args[1:])
    spy("setRNGSeed", lambda args: args)
    spy("findHomography", lambda args: args[2:])
    found = verify.features(gray)
    assert verify.verify(found, found).accepted
    assert calls["ORB_create"] == [((), {"nfeatures": 300, "scaleFactor": 1.2, "nlevels": 6, "edgeThreshold": 15,
                                          "patchSize": 15, "fastThreshold": 10})]
    assert calls["GaussianBlur"] == [(((5, 5), 1.0), {})]
    assert calls["setRNGSeed"] == [((0,), {})]
    assert calls["findHomography"] == [((cv2.USAC_FAST, 3.0), {})]


def test_a_transform_at_the_degeneracy_limits_is_measured():
    # |w| (the projective scale at the centre) and the smaller singular value count from 1e-9 up: below, a
    # degenerate transform; at it, a measure (the ratio of the local scales)
    at = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1e-9]])
    assert verify._anisotropy(at, SIZE) == 1.0
    assert verify._anisotropy(np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1.05e-9]]), SIZE) == 1.0
    assert verify._anisotropy(np.diag([1.0, 1e-9, 1.0]), SIZE) == float("inf")
    assert verify._anisotropy(np.diag([1.0, 1.05e-9, 1.0]), SIZE) == pytest.approx(1 / 1.05e-9)


def test_a_long_thin_picture_still_has_a_small_copy_one_pixel_high():
    assert verify.features(np.full((31, 3100), 128, np.uint8)).small.shape == (1, 64)


def test_a_content_box_is_at_least_a_pixel_and_starts_at_zero_when_unmeasured():
    row = {"width": 3200, "height": 2400, "content_left": 0, "content_top": 0, "content_width": 5,
           "content_height": 4}
    assert verify.content_box(row, 320, 240) == (0, 0, 1, 1)  # 0.5 and 0.4 thumbnail pixels: one
    unmeasured = {"width": 320, "height": 240, "content_left": None, "content_top": None, "content_width": 100,
                  "content_height": 80}  # (--seed 7: at a tenth, an offset of 1 rounded away)
    assert verify.content_box(unmeasured, 320, 240) == (0, 0, 100, 80)


def test_a_layout_of_a_spread_of_exactly_two_has_structure():
    # 100 grey with four 2 x 2 blocks 12 levels off in the middle: a standard deviation of exactly 2 (not
    # flat), and another picture's middle is found nowhere in it, nor its middle in the other
    flat = np.full((24, 24), 100, np.uint8)
    for (row, col), level in zip(((8, 8), (8, 14), (14, 8), (14, 14)), (112, 88, 88, 112), strict=True):
        flat[row:row + 2, col:col + 2] = level
    assert float(flat.astype(np.float32).std()) == 2.0
    other = np.random.default_rng(3).integers(0, 256, (24, 24)).astype(np.uint8)
    assert not verify.layouts_agree(flat, other) and not verify.layouts_agree(other, flat)
    fainter = np.where(flat > 100, 111, np.where(flat < 100, 89, 100)).astype(np.uint8)  # spread under 2: flat
    assert verify.layouts_agree(fainter, other) and verify.layouts_agree(other, fainter)


def test_a_copy_shifted_a_quarter_agrees_in_every_tile_it_covers():
    # (--seed 6) b is a's small picture moved 16 px right (a quarter of its 64), made by slicing; the
    # homography moves a's 640 px content 160 px: the tiles of b's three right columns agree, the left
    # column lies outside a's picture
    picture = texture()
    moved = np.full_like(picture, 100.0)
    moved[:, 16:] = picture[:, :48]
    moved[:, :16] = 255 - picture[:, :16]
    shift = np.array([[1, 0, 160], [0, 1, 0], [0, 0, 1.0]])
    assert verify._agreement(shift, small_features(picture), small_features(moved)) == 1.0
    assert verify._agreement(np.eye(3), small_features(picture), small_features(moved)) < 0.5


def test_features_spread_over_exactly_the_least_share_are_enough():
    # (--seed 7) a 30 x 10 px hull in the 200 x 100 picture: 300 / 20,000 = min_spread (0.015) exactly
    def rectangle(width):
        corners = [[10, 10], [10 + width, 10], [10 + width, 20], [10, 20]]
        inside = np.random.default_rng(4).uniform([11, 11], [9 + width, 19], (36, 2))
        return np.vstack([corners, inside]).astype(np.float32)

    assert judge(np.eye(3), points=rectangle(30)) == Verdict(True, 40, 1.0, 1.0, "")
    assert judge(np.eye(3), points=rectangle(29)) == Verdict(False, 40, 0.0, 0.0,
                                                             "the matching features cover 1% of the picture")


def test_layouts_agree_when_one_s_middle_shrunk_to_four_fifths_lies_in_the_other():
    """A crop seen in the other picture at 0.8 of its scale: the middle two thirds of ``a`` (16 pixels) is
    searched at each of ``LAYOUT_SCALES`` (resized to 16, 14 and 13 pixels), and here only the 13-pixel copy
    lies in ``b``."""
    import cv2

    rng = np.random.default_rng(5)
    a = cv2.resize(rng.integers(0, 256, (6, 6)).astype(np.float32), (24, 24), interpolation=cv2.INTER_CUBIC)
    a = np.clip(a, 0, 255).astype(np.uint8)
    b = rng.integers(0, 256, (24, 24)).astype(np.uint8)
    b[5:18, 5:18] = np.round(cv2.resize(a[4:20, 4:20].astype(np.float32), (13, 13), interpolation=cv2.INTER_AREA))
    assert verify.layouts_agree(a, b)
    shuffled = b.copy()
    shuffled[5:18, 5:18] = rng.permutation(b[5:18, 5:18].reshape(-1)).reshape(13, 13)
    assert not verify.layouts_agree(a, shuffled)
