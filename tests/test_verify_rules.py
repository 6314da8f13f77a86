"""The verified evidence's geometry and judgement (photodedup/verify.py) on hand-made features and
homographies: every refusal with its reason and measures, each threshold admitting its value, the
coverage and stretch measures against independent computations. Unit level, no library: what
``benchmarks/mutate.py --module verify`` runs first (tests/test_matching.py runs it on real edits)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from photodedup import verify
from photodedup.verify import Features, Thumbnail, Verdict, VerifySettings

SIZE = (200, 100)  # content width, height


def texture(height=48, width=64, seed=0) -> np.ndarray:
    return cv2.GaussianBlur(np.random.default_rng(seed).uniform(0, 255, (height, width)).astype(np.float32),
                            (5, 5), 1.0)


def spread_points(n=40, size=SIZE, seed=1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.uniform(0.05, 0.95, (n, 2)) * np.array(size)).astype(np.float32)


def descriptors(n=40, seed=2) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 32), dtype=np.uint8)


def judge(h, a_size=SIZE, b_size=SIZE, points=None, small_a=None, small_b=None, params=VerifySettings()) -> Verdict:
    src = spread_points(size=a_size) if points is None else points
    dst = cv2.perspectiveTransform(src.reshape(-1, 1, 2).astype(np.float64), np.asarray(h, np.float64))
    dst = dst.reshape(-1, 2).astype(np.float32)
    a = Features(src, descriptors(len(src)), a_size, small_a)
    b = Features(dst, descriptors(len(src)), b_size, small_b)
    keep = np.ones(len(src), bool)
    return verify._judge(np.asarray(h, np.float64), src, dst, keep, len(src), a, b, params)


def test_the_documented_settings():
    assert VerifySettings() == VerifySettings(min_inliers=20, min_coverage=0.8, min_other=0.6, max_anisotropy=1.15,
                                              features=300, ratio=0.8, min_agreement=0.5, min_spread=0.015)
    assert (verify.ORB_EDGE, verify.MIN_FEATURE_SIDE, verify.AGREE_WIDTH) == (15, 31, 64)
    assert (verify.TILE_NCC, verify.FLAT_STD) == (0.8, 2.0)


# -- measures --------------------------------------------------------------------------------------
def numeric_anisotropy(h: np.ndarray, size) -> float:
    """The same measure by finite differences of the mapping at the centre (an independent oracle)."""
    def f(p):
        x = h @ np.array([p[0], p[1], 1.0])
        return x[:2] / x[2]
    centre, eps = np.array(size, float) / 2, 1e-4
    steps = (np.array([eps, 0]), np.array([0, eps]))
    jac = np.column_stack([(f(centre + d) - f(centre - d)) / (2 * eps) for d in steps])
    s = np.linalg.svd(jac, compute_uv=False)
    return s[0] / s[1]


@pytest.mark.parametrize("h", [
    np.eye(3),
    np.diag([2.0, 1.0, 1.0]),
    np.array([[1.1, 0.2, 5.0], [-0.1, 0.9, 3.0], [0.0005, -0.0003, 1.0]]),
    np.array([[0.7, -0.4, 10.0], [0.3, 1.2, -4.0], [-0.0008, 0.0011, 1.1]]),
])
def test_anisotropy_is_the_ratio_of_the_local_scales_at_the_centre(h):
    assert verify._anisotropy(h, (300, 120)) == pytest.approx(numeric_anisotropy(h, (300, 120)), rel=1e-5)


def test_anisotropy_of_a_degenerate_transform_is_infinite():
    assert verify._anisotropy(np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0.0]]), SIZE) == float("inf")
    assert verify._anisotropy(np.array([[1, 0, 0], [1, 0, 0], [0, 0, 1.0]]), SIZE) == float("inf")


@pytest.mark.parametrize("h, share", [
    (np.eye(3), 1.0),
    (np.array([[1, 0, 50], [0, 1, 0], [0, 0, 1.0]]), 0.75),     # shifted a quarter right
    (np.array([[1, 0, -50], [0, 1, 25], [0, 0, 1.0]]), 0.5625),  # left and down
    (np.diag([0.5, 0.5, 1.0]), 0.25),
    (np.array([[1, 0, 500], [0, 1, 0], [0, 0, 1.0]]), 0.0),      # entirely outside
])
def test_coverage_is_the_share_of_the_destination_the_mapped_source_covers(h, share):
    assert verify._covered(h, SIZE, SIZE) == pytest.approx(share, abs=1e-9)


def test_coverage_of_a_folded_or_infinite_mapping_is_none():
    folded = np.array([[1, 0, 0], [0, 1, 0], [-0.01, 0, 1.0]])  # the right side maps through infinity
    assert verify._covered(folded, SIZE, SIZE) is None
    assert verify._covered(np.array([[1, 0, 0], [0, 1, 0], [0, 0, 0.0]]), SIZE, SIZE) is None


def test_clipping_and_areas():
    square = [[-10.0, -10.0], [10.0, -10.0], [10.0, 10.0], [-10.0, 10.0]]
    assert verify._area(verify._clip(square, 100, 100)) == pytest.approx(100.0)
    assert verify._clip([[200.0, 200.0], [300.0, 200.0], [300.0, 300.0]], 100, 100) == []
    triangle = [[0.0, 0.0], [4.0, 0.0], [0.0, 3.0]]
    assert verify._area(triangle) == 6.0
    assert verify._area(triangle[:2]) == 0.0
    assert verify._clip(triangle, 10, 10) == triangle


def test_hull_share_is_the_hull_s_area_over_the_picture():
    corners = np.array([[0, 0], [100, 0], [100, 50], [0, 50], [50, 25]], np.float32)
    assert verify._hull_share(corners, SIZE) == 0.25
    assert verify._hull_share(corners[:2], SIZE) == 0.0


# -- the tiles' agreement ----------------------------------------------------------------------------
def small_features(small: np.ndarray) -> Features:
    return Features(np.zeros((0, 2), np.float32), np.zeros((0, 32), np.uint8), (640, 480), small)


def test_identical_pictures_agree_in_every_tile_and_an_inverted_one_in_none():
    picture = texture()
    same = verify._agreement(np.eye(3), small_features(picture), small_features(picture.copy()))
    assert same == 1.0
    inverted = verify._agreement(np.eye(3), small_features(picture), small_features(255 - picture))
    assert inverted == 0.0
    assert verify._agreement(np.eye(3), small_features(picture), small_features(None)) is None


def test_tiles_flat_in_both_are_not_judged_and_four_judged_tiles_are_enough():
    flat = np.full((48, 64), 100.0, np.float32)
    assert verify._agreement(np.eye(3), small_features(flat), small_features(flat.copy())) is None
    top = flat.copy()
    top[:12] = texture()[:12]  # the four tiles of the top row hold texture, the other twelve are flat
    assert verify._agreement(np.eye(3), small_features(top), small_features(top.copy())) == 1.0
    three = flat.copy()
    three[:12, :48] = texture()[:12, :48]  # three textured tiles: too few to judge
    assert verify._agreement(np.eye(3), small_features(three), small_features(three.copy())) is None


def test_a_tile_flat_in_one_picture_only_is_judged_and_disagrees():
    picture = texture()
    half = picture.copy()
    half[24:] = 100.0  # the lower eight tiles went flat in b
    assert verify._agreement(np.eye(3), small_features(picture), small_features(half)) == 0.5


def test_a_spread_of_exactly_the_flat_limit_is_texture():
    checker = (100 + 2 * np.where(np.indices((48, 64)).sum(axis=0) % 2, 1, -1)).astype(np.float32)
    assert verify._agreement(np.eye(3), small_features(checker), small_features(checker.copy())) == 1.0


def test_tiles_mostly_outside_the_overlap_are_not_judged():
    picture = texture()
    shift = np.array([[1, 0, 160], [0, 1, 0], [0, 0, 1.0]])  # a quarter of 640 px: the left column is uncovered
    b = cv2.warpPerspective(picture, verify._to_small(small_features(picture)) @ shift
                            @ np.linalg.inv(verify._to_small(small_features(picture))), (64, 48))
    b[:, :16] = 255 - picture[:, :16]  # whatever lies outside a's picture does not count
    assert verify._agreement(shift, small_features(picture), small_features(b)) == 1.0


# -- the judgement ---------------------------------------------------------------------------------
def test_a_plain_copy_is_accepted_with_its_measures():
    picture = texture()
    verdict = judge(np.eye(3), small_a=picture, small_b=picture.copy())
    assert verdict == Verdict(True, 40, 1.0, 1.0, "")
    assert not verdict.refutes


def test_coverage_is_rounded_to_four_digits():
    shifted = np.array([[1, 0, 200 / 6], [0, 1, 0], [0, 0, 1.0]])  # covers 5/6 of each
    assert judge(shifted, points=spread_points() * np.float32(0.8)) == Verdict(True, 40, 0.8333, 0.8333, "")


def test_features_in_one_small_patch_refute_the_pair():
    patch = spread_points() * np.float32(0.1)  # 1% of the picture
    verdict = judge(np.eye(3), points=patch)
    assert verdict == Verdict(False, 40, 0.0, 0.0, "the matching features cover 1% of the picture")
    assert verdict.refutes


def test_a_stretch_beyond_the_limit_is_refused_and_the_limit_itself_admitted():
    assert judge(np.diag([1.3, 1.0, 1.0]), b_size=(260, 100)) == Verdict(False, 40, 0.0, 0.0, "stretched 1.30x")
    assert judge(np.diag([1.15, 1.0, 1.0]), b_size=(230, 100)).accepted


def test_a_crop_must_cover_most_of_the_larger_picture_too():
    # a lies in the top-left quarter of b: all of a is in b, a quarter of b is a
    verdict = judge(np.eye(3), a_size=(100, 50), b_size=SIZE)
    assert verdict == Verdict(False, 40, 1.0, 0.25, "covers 100% of the smaller and 25% of the larger picture")
    # at exactly the limits (0.8 of one, 0.6 of the other) it is accepted
    assert judge(np.eye(3), a_size=(120, 100), b_size=SIZE, params=VerifySettings(min_other=0.6)).accepted
    assert judge(np.eye(3), a_size=(160, 100), b_size=SIZE, params=VerifySettings(min_coverage=1.0,
                                                                                   min_other=0.8)).accepted
    partial = np.array([[1, 0, 50], [0, 1, 0], [0, 0, 1.0]])  # each covers 75% of the other
    assert judge(partial) == Verdict(False, 40, 0.75, 0.75, "covers 75% of the smaller and 75% of the larger picture")
    assert judge(partial, params=VerifySettings(min_coverage=0.75, min_other=0.75)).accepted


def test_a_folded_geometry_is_implausible():
    folded = np.array([[1, 0, 0], [0, 1, 0], [0.006, 0, 1.0]])
    assert judge(folded, params=VerifySettings(max_anisotropy=100)) == Verdict(False, 40, 0.0, 0.0,
                                                                               "implausible geometry")


def test_pictures_that_do_not_agree_once_aligned_are_refused():
    picture = texture()
    verdict = judge(np.eye(3), small_a=picture, small_b=255 - picture)
    assert verdict == Verdict(False, 40, 1.0, 1.0, "the aligned pictures agree in 0% of their tiles")
    assert judge(np.eye(3), small_a=picture, small_b=255 - picture, params=VerifySettings(min_agreement=0)).accepted


# -- from features -----------------------------------------------------------------------------------
def test_too_few_features_say_nothing_against_the_pair():
    few = Features(spread_points(19), descriptors(19), SIZE)
    verdict = verify.verify(few, Features(spread_points(40), descriptors(40), SIZE))
    assert verdict == Verdict(False, 0, 0.0, 0.0, verify.TOO_FEW_FEATURES) and not verdict.refutes
    assert verify.verify(Features(spread_points(40), descriptors(40), SIZE), few).reason == verify.TOO_FEW_FEATURES


def test_unrelated_descriptors_are_too_few_matches_and_unrelated_points_too_few_inliers():
    a = Features(spread_points(), descriptors(seed=2), SIZE)
    verdict = verify.verify(a, Features(spread_points(), descriptors(seed=3), SIZE))
    assert verdict.reason == "too few matches" and (verdict.accepted, verdict.coverage, verdict.other) == (False, 0, 0)
    scattered = Features(spread_points(seed=9), descriptors(seed=2), SIZE)  # the same descriptors, other places
    verdict = verify.verify(a, scattered)
    assert verdict.reason == "too few inliers" and verdict.inliers < 20
    assert (verdict.accepted, verdict.coverage, verdict.other) == (False, 0.0, 0.0)


def test_the_same_features_verify_as_a_copy():
    picture = texture()
    a = Features(spread_points(), descriptors(), SIZE, picture)
    assert verify.verify(a, Features(spread_points(), descriptors(), SIZE, picture.copy())) == Verdict(
        True, 40, 1.0, 1.0, "")
    assert verify.verify(a, a, VerifySettings(min_inliers=41)).reason == verify.TOO_FEW_FEATURES


def test_features_of_a_tiny_or_flat_picture_are_none():
    tiny = verify.features(np.zeros((30, 500), np.uint8))
    assert (tiny.points.shape, tiny.descriptors.shape, tiny.size, tiny.small) == ((0, 2), (0, 32), (500, 30), None)
    flat = verify.features(np.full((100, 160), 128, np.uint8))
    assert (flat.points.shape, flat.descriptors.shape, flat.size, flat.small.shape) == ((0, 2), (0, 32), (160, 100),
                                                                                        (40, 64))


def test_features_of_a_photo_are_at_most_the_setting_and_its_small_copy_is_64_wide():
    gray = np.clip(texture(240, 320, seed=4) * 1.5 - 60, 0, 255).astype(np.uint8)
    found = verify.features(gray, VerifySettings(features=50))
    assert 20 <= len(found.points) <= 50 and found.descriptors.shape == (len(found.points), 32)
    assert found.small.shape == (48, 64) and found.size == (320, 240)


# -- thumbnails and many pairs ----------------------------------------------------------------------
def jpeg(width=320, height=240) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.clip(texture(height, width), 0, 255).astype(np.uint8)).convert("RGB").save(buf, "JPEG")
    return buf.getvalue()


BOX = {"width": 3200, "height": 2400, "content_left": 320, "content_top": 240, "content_width": 1600,
       "content_height": 1200}


def test_the_thumbnail_is_cut_to_the_content_box_at_its_own_scale():
    thumb = Thumbnail.of(jpeg(), BOX | {"other": 1})
    assert thumb.box == BOX
    assert thumb.gray().shape == (120, 160)
    assert thumb.rgb().shape == (120, 160, 3)
    whole = Thumbnail(jpeg(), BOX | {"content_width": None})
    assert whole.gray().shape == (240, 320)
    assert Thumbnail(b"not a jpeg", BOX).gray() is None and Thumbnail(b"not a jpeg", BOX).rgb() is None
    edge = Thumbnail(jpeg(), BOX | {"content_left": None, "content_top": None, "content_width": 1})
    assert edge.gray().shape == (120, 1)  # at least one pixel wide


def test_verify_pairs_gives_a_verdict_per_pair_in_order_and_none_for_an_unknown_file():
    thumbs = {1: Thumbnail(jpeg(), BOX), 2: Thumbnail(jpeg(), BOX), 3: None, 4: Thumbnail(b"broken", BOX)}
    verdicts = verify.verify_pairs([(1, 2), (1, 3), (3, 1), (4, 2)], thumbs.get)
    assert verdicts[1:] == [None, None, None]
    assert verdicts[0].accepted and (verdicts[0].coverage, verdicts[0].other) == (1.0, 1.0)
    assert verify.verify_pairs([], thumbs.get) == []


def test_a_mirrored_copy_is_found_only_when_asked():
    picture = np.clip(texture(240, 320, seed=6) * 1.5 - 60, 0, 255).astype(np.uint8)
    def encoded(array):
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, "JPEG", quality=95)
        return buf.getvalue()
    box = {"width": 320, "height": 240, "content_left": 0, "content_top": 0, "content_width": 320,
           "content_height": 240}
    thumbs = {1: Thumbnail(encoded(picture), box), 2: Thumbnail(encoded(picture[:, ::-1].copy()), box)}
    plain, = verify.verify_pairs([(1, 2)], thumbs.get)
    mirrored, = verify.verify_pairs([(1, 2)], thumbs.get, mirrored=True)
    assert not plain.accepted and mirrored.accepted


def test_a_low_contrast_picture_still_has_features():
    # blocks 11 grey levels apart: a faint scan or a foggy shot must still be comparable (FAST threshold 10)
    blocks = np.random.default_rng(0).integers(0, 2, (12, 16))
    faint = (100 + 11 * np.kron(blocks, np.ones((20, 20)))).astype(np.uint8)
    assert len(verify.features(faint).points) >= 50


def _library(count: int) -> dict[int, Thumbnail | None]:
    """``count`` files: pictures 0..count-3 pairwise different but for 1 (a crop of 0), a missing and a broken one."""
    box = {"width": 320, "height": 240, "content_left": 0, "content_top": 0, "content_width": 320,
           "content_height": 240}

    def encoded(array):
        buf = io.BytesIO()
        Image.fromarray(array).save(buf, "JPEG", quality=90)
        return buf.getvalue()

    pictures = [np.clip(texture(240, 320, seed=seed) * 1.5 - 60, 0, 255).astype(np.uint8)
                for seed in range(count - 2)]
    pictures[1] = cv2.resize(pictures[0][12:228, 16:304], (320, 240))
    thumbs: dict[int, Thumbnail | None] = {k: Thumbnail(encoded(p), box) for k, p in enumerate(pictures)}
    thumbs[count - 2], thumbs[count - 1] = None, Thumbnail(b"broken", box)
    return thumbs


def test_many_pairs_compute_each_file_s_features_once_and_give_the_verdicts_of_one_chunk(monkeypatch, tmp_path):
    # Split into chunks, a file's pairs fall into several: its features are computed once (stored), and every
    # chunk reads them, giving the verdicts computing them in one chunk gives.
    thumbs = _library(8)
    pairs = [(a, b) for a in range(8) for b in range(8) if a != b]
    made = []
    features = verify.features
    monkeypatch.setattr(verify, "features", lambda gray, params=VerifySettings(): made.append(gray.shape) or
                        features(gray, params))
    settings = VerifySettings()
    places = verify._stored_features(([(k, k) for k in thumbs], thumbs, (settings, tmp_path)))
    assert len(made) == 6 and places[6:] == [None, None]
    where = dict(zip(thumbs, places, strict=True))
    chunked = [v for chunk in (pairs[:20], pairs[20:40], pairs[40:]) for v in
               verify._verify_stored_chunk((chunk, {k: where[k] for p in chunk for k in p}, settings))]
    assert len(made) == 6  # read, never computed again
    assert chunked == verify._verify_chunk((pairs, thumbs, (settings, False)))
    assert chunked[pairs.index((0, 1))].accepted and chunked[pairs.index((1, 0))].accepted
    assert sum(v is not None and v.accepted for v in chunked) == 2
    assert sum(v is None for v in chunked) == len(pairs) - 30


def test_verify_pairs_in_worker_processes_gives_the_verdicts_of_one_process_and_leaves_no_files(monkeypatch, tmp_path):
    thumbs = _library(24)
    pairs = [(a, b) for a in range(24) for b in range(24) if a != b][:verify.INLINE_PAIRS + 10]
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    together = verify.verify_pairs(pairs, thumbs.get, workers=1)
    assert verify.verify_pairs(pairs, thumbs.get, workers=2) == together
    assert together[pairs.index((0, 1))].accepted and sum(v is not None and v.accepted for v in together) == 2
    # the stored features went with the stage (multiprocessing keeps a folder of its own there)
    assert [f.name for f in tmp_path.iterdir() if not f.name.startswith("pymp-")] == []


def test_a_full_temporary_folder_gives_the_same_verdicts_with_features_per_chunk(monkeypatch, tmpfs, caplog):
    thumbs = _library(24)
    pairs = [(a, b) for a in range(24) for b in range(24) if a != b][:verify.INLINE_PAIRS + 10]
    together = verify.verify_pairs(pairs, thumbs.get, workers=1)
    full = tmpfs("64k")  # room for the pool's socket, not for 24 files' features (about 12 KB each)
    monkeypatch.setenv("TMPDIR", str(full))
    monkeypatch.setattr("tempfile.tempdir", None)
    with caplog.at_level("WARNING", logger="photodedup.verify"):
        assert verify.verify_pairs(pairs, thumbs.get, workers=2) == together
    assert "could not be stored" in caplog.text and "No space left on device" in caplog.text
    assert [f.name for f in full.iterdir() if not f.name.startswith("pymp-")] == []


def test_colour_signatures_of_many_files_come_from_the_workers_as_from_one_process():
    from photodedup import grouping

    thumbs = _library(24)
    count = verify.INLINE_PAIRS + 10  # enough files for the worker processes
    colours, layouts = grouping.colour_signatures(range(count), lambda k: thumbs.get(k % 24))
    for k in range(count):
        one = verify.signatures(thumbs.get(k % 24))
        if one is None:  # the missing and the broken file: zeros
            assert k % 24 >= 22 and not colours[k].any() and not layouts[k].any()
        else:
            assert np.array_equal(colours[k], one[0]) and np.array_equal(layouts[k], one[1])
    assert colours[:22].any(axis=1).all()


def test_the_matches_are_opencv_s_brute_force_knn_matches_that_pass_the_ratio_test():
    # homography() reads batchDistance's two nearest; BFMatcher.knnMatch (what it replaced) must agree, pair by pair
    picture = np.clip(texture(240, 320, seed=11) * 1.5 - 60, 0, 255).astype(np.uint8)
    a = verify.features(picture)
    b = verify.features(cv2.resize(picture[20:220, 30:300], (320, 240)))
    ratio = VerifySettings().ratio
    knn = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(a.descriptors, b.descriptors, k=2)
    good = [m[0] for m in knn if len(m) == 2 and m[0].distance < ratio * m[1].distance]
    _, src, dst, _ = verify.homography(a, b)
    assert len(good) >= 20
    assert np.array_equal(src, a.points[[m.queryIdx for m in good]])
    assert np.array_equal(dst, b.points[[m.trainIdx for m in good]])
    one = Features(b.points[:1], b.descriptors[:1], b.size)  # one descriptor: no second neighbour, no match
    assert verify.homography(a, one, VerifySettings(min_inliers=1)).reason == "too few matches"
