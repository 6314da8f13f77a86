"""The pixel check's edges (photodedup.confirm), each written against a mutant that the module's other tests let
through (benchmarks/mutate.py --module confirm; docs/BENCHMARKS.md "Mutation testing, session 8")."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageOps

from photodedup import confirm, hashing, verify
from photodedup.sample_library import source_photos
from tests.helpers import drawn_picture


def _thumb(image: Image.Image) -> np.ndarray:
    """What the scan stores: at most 320 px, JPEG quality 80, decoded."""
    image = image.convert("RGB").copy()
    image.thumbnail((320, 320), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=80)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def _thumbnail(image: Image.Image) -> verify.Thumbnail:
    """The scan's stored thumbnail with the content box it measured (``confirm_pairs`` reads these)."""
    left, top, right, bottom = hashing.trim_box(np.asarray(image))
    box = {"width": image.width, "height": image.height, "content_left": left, "content_top": top,
           "content_width": right - left, "content_height": bottom - top}
    buffer = io.BytesIO()
    Image.fromarray(_thumb(image)).save(buffer, "PNG")
    return verify.Thumbnail(buffer.getvalue(), box)


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    coffee = next(p for p in source_photos() if p.stem == "coffee")
    return Image.open(coffee).convert("RGB").resize((1200, 800), Image.Resampling.BICUBIC)


def _narrow(image: Image.Image) -> Image.Image:
    """The right 62% of the picture: narrower than the crop search's windows (``_CROP_SHARES``, 70% and up)."""
    return image.crop((int(image.width * 0.38), 0, image.width, image.height))


def test_a_copy_keeping_62_percent_of_the_width_is_aligned_by_its_features(photo):
    """Neither the rescale (another shape) nor the crop search (its windows start at 70%) places it: ORB's
    homography does, and the 38% the copy lacks is photo, not a flat caption band."""
    result = confirm.confirm(_thumb(photo), _thumb(_narrow(photo)))
    assert result.verdict == confirm.DUPLICATE, result.reason
    assert result.how.startswith("homography ("), result.how


def test_a_mirrored_narrow_copy_is_a_duplicate_by_the_retry_that_only_features_align(photo):
    """Proposed as is, the mirrored retry finds it by ORB's features alone (no rescale, no crop window):
    one estimate found is enough to go on."""
    thumbs = {0: _thumbnail(photo), 1: _thumbnail(ImageOps.mirror(_narrow(photo)))}
    (result,) = confirm.confirm_pairs([(0, 1)], [0], thumbs.get, workers=1)
    assert (result.verdict, result.variant) == (confirm.DUPLICATE, 1), result.reason
    assert result.how.startswith("homography ("), result.how


def test_highlights_stopped_at_250_count_as_clipped(photo):
    """A brightened copy whose encoder stops at 250 (``_CLIP_HIGH``): those pixels may hide any brighter
    value, so they cost nothing."""
    a = _thumb(photo)
    b = np.clip(a.astype(np.float32) * 1.6 + 20, 0, 250).astype(np.uint8)
    assert (b == 250).mean() > 0.1
    assert confirm.confirm(a, b).verdict == confirm.DUPLICATE


@pytest.mark.parametrize(("spread", "expected"), [(3.8, confirm.DIFFERENT), (4.2, confirm.DUPLICATE)])
def test_a_picture_under_four_levels_of_spread_is_flat_and_its_colour_is_its_content(spread, expected):
    """A gentle ramp brightened by 45 levels: with a luminance spread of 4.2 a tone edit (an offset up to
    ``max_offset``); under ``flat_std`` (4) a flat field, whose shift may be at most ``flat_shift`` (10)."""
    ramp = 100 + np.linspace(0, spread * np.sqrt(12), 320)[None, :].repeat(240, axis=0)
    a = np.repeat(ramp[:, :, None], 3, axis=2)
    assert abs(a.round().std() - spread) < 0.05
    assert confirm.confirm(a.round().astype(np.uint8), (a + 45).round().astype(np.uint8)).verdict == expected


@pytest.mark.parametrize(("tint", "magnitude"), [(5, 3.0), (7, 4.0), (9, 5.0)])
def test_a_grey_copy_with_a_faint_tint_is_grey_up_to_half_the_scan_s_tolerance(tint, magnitude):
    """A colour drawing and its greyscale copy tinted red (chroma magnitude up to ``GRAY_TOLERANCE / 2`` = 5
    at its 99th percentile): the copy counts as grey, its chroma is not compared, a duplicate."""
    drawing = drawn_picture(4).resize((320, 240), Image.Resampling.BILINEAR)
    grey = np.asarray(drawing.convert("L")).astype(np.int16)
    tinted = np.clip(np.stack([grey + tint, grey - 1, grey - 1], axis=-1), 0, 255).astype(np.uint8)
    luma = tinted @ np.array([0.299, 0.587, 0.114])
    chroma = np.maximum(np.abs((tinted[..., 2] - luma) * 0.564), np.abs((tinted[..., 0] - luma) * 0.713))
    assert round(float(np.percentile(chroma, 99)), 2) == magnitude
    assert confirm.confirm(np.asarray(drawing), tinted).verdict == confirm.DUPLICATE


@pytest.mark.parametrize("other", [{"camera": "Pixel 8"}, {"taken_at": "2024-05-01T10:00:01"},
                                   {"camera": "Pixel 8", "taken_at": None}, {}])
def test_a_scene_needs_a_camera_and_a_capture_time_on_both_files(other):
    burst = confirm.Confirmation(confirm.DIFFERENT, "differs in one region, 2% of the picture", aligned=True)
    camera = {"camera": "Pixel 8", "taken_at": "2024-05-01T10:00:00"}
    assert confirm.classify(burst, camera, other) == confirm.DIFFERENT
    assert confirm.classify(burst, other, camera) == confirm.DIFFERENT


@pytest.mark.parametrize(("sigma", "found"), [(130, True), (160, False)])
def test_the_crop_search_takes_a_window_that_correlates_at_0_8(photo, sigma, found):
    """A crop of 80% at the corner under heavy noise: its 96-pixel copy correlates with the picture's window
    at about 0.84 (sigma 130) or 0.78 (sigma 160); from 0.8 the search places it, at the right place."""
    a = np.asarray(photo.resize((320, 213), Image.Resampling.BILINEAR)).astype(np.float32)
    crop = np.asarray(photo.crop((0, 0, 960, 640)).resize((256, 171), Image.Resampling.BILINEAR)).astype(np.float32)
    noise = np.random.default_rng(0).normal(0, 1, crop.shape[:2])[:, :, None].repeat(3, axis=2)
    h = confirm._crop_search(a, np.clip(crop + sigma * noise, 0, 255))
    assert (h is not None) == found
    if found:  # a's pixels land on the crop's at the same scale, its corner at the crop's corner
        assert np.allclose(h[:2, :2], np.eye(2), atol=0.03) and np.abs(h[:2, 2]).max() < 3, h


@pytest.mark.parametrize(("rows", "verdict"), [(5, confirm.DUPLICATE), (6, confirm.DIFFERENT)])
def test_a_caption_band_of_3_percent_of_the_picture_counts(photo, rows, verdict):
    """A white band with text strokes added on top of a 320 x 200 picture: 6 rows are 3% of it, a caption
    (a different picture); 5 rows are under it, a copy that shows a little more."""
    a = np.asarray(photo.resize((320, 200 - rows), Image.Resampling.BILINEAR))
    band = np.full((rows, 320, 3), 255, np.uint8)
    band[1:rows - 1, 10:300:6] = 0
    result = confirm.confirm(a, np.concatenate([band, a]))
    assert result.verdict == verdict, result.reason
    if verdict == confirm.DIFFERENT:
        assert result.reason.startswith("the second picture adds a caption band (3% of it"), result.reason


@pytest.mark.parametrize("change", ["moved", "removed"])
def test_the_difference_map_is_the_same_whichever_picture_comes_first(photo, change):
    """Each pixel's difference is measured both ways (outside the other's values, and by the ink each holds
    within one pixel, blurred alike): for two grey pictures of one size, one tone, a ball moved or removed,
    the map is the same either way round, to the level."""
    grey = photo.convert("L").resize((320, 213), Image.Resampling.BICUBIC)

    def ball(x: int | None) -> np.ndarray:
        image = grey.copy()
        if x is not None:
            ImageDraw.Draw(image).ellipse((x, 100, x + 26, 126), fill=230)
        return np.asarray(image.convert("RGB"))

    a, b = (ball(128), ball(192)) if change == "moved" else (ball(None), ball(128))
    forth, back = confirm.heat(a, b), confirm.heat(b, a)
    assert (forth > 0).sum() > 300
    assert np.array_equal(forth, back)


def test_a_duplicate_as_proposed_is_not_turned_again():
    """The mirrored retries run only for a pair proposed as it is that is not a duplicate: a resized copy of a
    mirror-symmetric picture (its mirror is a duplicate too) stays variant 0."""
    half = drawn_picture(5).crop((0, 0, 800, 1200))
    symmetric = Image.new("RGB", (1600, 1200))
    symmetric.paste(half, (0, 0))
    symmetric.paste(ImageOps.mirror(half), (800, 0))
    thumbs = {0: _thumbnail(symmetric), 1: _thumbnail(symmetric.resize((1200, 900), Image.Resampling.LANCZOS))}
    (result,) = confirm.confirm_pairs([(0, 1)], [0], thumbs.get, workers=1)
    assert (result.verdict, result.variant) == (confirm.DUPLICATE, 0), result.reason


@pytest.mark.parametrize(("level", "clipped"), [(4, 1.0), (5, 1.0), (6, 0.0), (249, 0.0), (250, 1.0), (251, 1.0)])
def test_a_shot_s_clipped_share_counts_levels_from_250_and_up_to_5(level, clipped):
    half = np.full((10, 20, 3), 128, np.uint8)
    half[:, :10] = level
    assert confirm.shot_quality(half)["clipped"] == clipped / 2


# -- session 9 (benchmarks/mutate.py --module confirm, held-out seeds 10 and 11) ---------------------------------
def test_a_ball_repainted_in_another_colour_of_the_same_brightness_differs(photo):
    """A red ball and a green one of the same luminance (87.8 levels): only the chroma tells them apart, and on
    a pair where nothing clips every chroma difference counts (clipped pixels' colour is left out only where
    the tone fit pushed them past the range)."""
    def ball(colour: tuple[int, int, int]) -> np.ndarray:
        image = photo.copy()
        ImageDraw.Draw(image).ellipse((700, 300, 796, 396), fill=colour)
        return _thumb(image)

    red, green = (200, 40, 40), (40, 121, 40)
    assert abs(np.dot(red, [0.299, 0.587, 0.114]) - np.dot(green, [0.299, 0.587, 0.114])) < 0.5
    result = confirm.confirm(ball(red), ball(green))
    assert (result.verdict, result.regions) == (confirm.DIFFERENT, 1), result.reason


@pytest.mark.parametrize(("offset", "pushed"), [(3.0, False), (3.5, True)])
def test_a_tone_shift_of_three_levels_pushes_nothing_past_either_end(offset, pushed):
    """A re-encode moves levels by up to 3 (``_clipped``'s margin, at both ends, both ways): a shift of 3 pushes no
    pixel past the range, so a picture's 255s and 0s keep their values; from 3.5 levels on, the picture the
    shift brightened has its 255s open upwards (the darkened one its 0s downwards)."""
    rgb = np.full((2, 2, 3), 128, np.uint8)
    rgb[0, 0], rgb[1, 1] = 255, 0
    high, low = np.array([[True, False], [False, False]]), np.array([[False, False], [False, True]])
    for towards, shift, expected in (("b", offset, high), ("b", -offset, low), ("a", -offset, high),
                                     ("a", offset, low)):
        found = confirm._clipped(rgb, 1.0, shift, towards=towards)
        masks = [m for m in found if m is not None]
        if pushed:
            assert len(masks) == 1 and np.array_equal(masks[0], expected), (towards, shift, found)
        else:
            assert found == (None, None), (towards, shift)


@pytest.mark.parametrize(("level", "verdict"), [(44, confirm.DUPLICATE), (50, confirm.DIFFERENT)])
def test_a_pair_noisier_than_the_cap_still_shows_a_patch_50_levels_off(level, verdict):
    """Grass resampled with a jitter of up to 0.85 pixel: every value stays within its neighbours' (no residual),
    but the plain difference's spread puts the pair's noise floor at about 71 levels. The floor counts up to
    ``max_noise`` (48) only: a flat grey sign repainted 50 levels lighter still differs; 44 levels is under it."""
    grass = next(p for p in source_photos() if p.stem == "grass")
    a = np.asarray(Image.open(grass).convert("RGB").resize((320, 240), Image.Resampling.BILINEAR)).astype(np.float32)
    a[100:140, 140:180] = 120
    rng = np.random.default_rng(0)
    ys, xs = np.mgrid[0:240, 0:320].astype(np.float32)
    jitter = rng.uniform(-0.85, 0.85, (2, 240, 320)).astype(np.float32)
    b = cv2.remap(a, xs + jitter[0], ys + jitter[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    b[104:136, 144:176] += level
    result = confirm.confirm(a.round().astype(np.uint8), np.clip(b, 0, 255).round().astype(np.uint8))
    assert result.noise > 60 and result.how == "rescaled", (result.noise, result.how)
    assert result.verdict == verdict, result.reason


@pytest.mark.parametrize("turn", [0, 1, 2, 3], ids=["right", "bottom", "left", "top"])
@pytest.mark.parametrize(("inwards", "verdict"), [(2, confirm.DUPLICATE), (3, confirm.DIFFERENT)])
def test_a_scratch_three_pixels_in_from_an_edge_differs_and_two_pixels_in_is_the_rim(photo, turn, inwards, verdict):
    """A one-pixel line across the whole picture, ``inwards`` pixels from one edge, in a copy of the same size:
    resampling spoils only the outer two pixels of the rim (left out on every side), so a scratch on the
    second one costs nothing and one on the third is a difference."""
    a = np.asarray(photo.resize((320, 213), Image.Resampling.BILINEAR))
    b = a.copy()
    side = np.rot90(b, turn)  # a view: the edge to scratch is its right one
    side[:, -inwards] = 0 if side[:, -inwards].mean() > 128 else 255
    result = confirm.confirm(a, b)
    assert (result.verdict, result.how) == (verdict, "rescaled"), result.reason


def test_a_copy_stretched_8_percent_wider_is_aligned_by_its_features_not_a_stretched_crop_window(photo):
    """The rescale needs one aspect (within 3%) and the crop search's windows keep it: only ORB's homography
    holds the stretch. ECC refines each candidate by a plausible correction only (stretching it by at most 5%),
    so the crop window is not bent into the stretched copy and the features' alignment is the one judged."""
    stretched = photo.resize((round(photo.width * 1.08), photo.height), Image.Resampling.BICUBIC)
    result = confirm.confirm(_thumb(photo), _thumb(stretched))
    assert result.verdict == confirm.DUPLICATE, result.reason
    assert result.how.startswith("homography ("), result.how
