"""The pixel check's alignment (photodedup.confirm): a crop and a bordered copy land within half a pixel of
where they belong, and the mirrored retry still finds a mirrored crop the proposal did not name, so a
cheaper alignment cannot quietly move a verdict."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from photodedup import confirm, hashing, verify
from photodedup.sample_library import source_photos
from tests.helpers import drawn_picture

SIDE = 320


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    coffee = next(p for p in source_photos() if p.stem == "coffee")
    return Image.open(coffee).convert("RGB").resize((1200, 800), Image.Resampling.BICUBIC)


def _thumbnail(image: Image.Image) -> verify.Thumbnail:
    """What the scan stores: the file at most 320 px, JPEG quality 80, with the content box it measured
    on the file (borders trimmed as ``hashing.trim_box`` finds them)."""
    left, top, right, bottom = hashing.trim_box(np.asarray(image))
    small = image.copy()
    small.thumbnail((SIDE, SIDE), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    small.save(buffer, "JPEG", quality=80)
    box = {"width": image.width, "height": image.height, "content_left": left, "content_top": top,
           "content_width": right - left, "content_height": bottom - top}
    return verify.Thumbnail(buffer.getvalue(), box)


def _pixels(image: Image.Image) -> np.ndarray:
    return confirm._prepared(_thumbnail(image).rgb(), confirm.ConfirmSettings())


def _error(found: np.ndarray, a: np.ndarray, b: np.ndarray, a_box: tuple, b_box: tuple, size: tuple) -> float:
    """The largest distance (pixels of ``b``) between where ``found`` puts points of ``a`` and where they
    belong: ``a`` shows ``a_box`` and ``b`` shows ``b_box`` of an original of ``size`` (pixel centres),
    measured over the corners of the part both show, inset by 5%."""
    def to_original(p, shape, box):   # pixel centres of a picture showing ``box`` at ``shape``
        sx, sy = (box[2] - box[0]) / shape[1], (box[3] - box[1]) / shape[0]
        return np.stack([(p[0] + 0.5) * sx - 0.5 + box[0], (p[1] + 0.5) * sy - 0.5 + box[1]])

    def from_original(q, shape, box):
        sx, sy = shape[1] / (box[2] - box[0]), shape[0] / (box[3] - box[1])
        return np.stack([(q[0] - box[0] + 0.5) * sx - 0.5, (q[1] - box[1] + 0.5) * sy - 0.5])

    both = (max(a_box[0], b_box[0]), max(a_box[1], b_box[1]), min(a_box[2], b_box[2]), min(a_box[3], b_box[3]))
    dx, dy = 0.05 * (both[2] - both[0]), 0.05 * (both[3] - both[1])
    xs, ys = [both[0] + dx, both[2] - dx], [both[1] + dy, both[3] - dy]
    points = np.array([[x for x in xs for _ in ys], [y for _ in xs for y in ys]])   # on the original
    in_a = from_original(points, a.shape, a_box)
    mapped = found @ np.vstack([in_a, np.ones(in_a.shape[1])])
    where = mapped[:2] / mapped[2]
    return float(np.abs(where - from_original(points, b.shape, b_box)).max())


@pytest.mark.parametrize("case", ["cropped 10% at a corner", "cropped 10% each side", "bordered",
                                  "drawn, cropped 8% at a corner"])
def test_a_crop_and_a_bordered_copy_are_aligned_within_half_a_pixel(photo, case):
    """The alignment the verdict is judged on (``_align``, the way ``confirm`` calls it) maps the original
    onto its copy within half a pixel (about a tenth refined, about one unrefined), over the corners of the
    part both show."""
    original = drawn_picture(4) if case.startswith("drawn") else photo
    w, h = original.size
    if case == "bordered":   # a white mount of 60 px: the scan trims it, the rest is a rescale
        copy, box = ImageOps.expand(original.resize((900, 600), Image.Resampling.LANCZOS), 60, (255, 255, 255)), \
            (0, 0, w, h)
    else:
        box = {"cropped 10% at a corner": (0, 0, int(w * 0.9), int(h * 0.9)),
               "cropped 10% each side": (int(w * 0.05), int(h * 0.05), int(w * 0.95), int(h * 0.95)),
               "drawn, cropped 8% at a corner": (128, 96, w, h)}[case]
        copy = original.crop(box)
    a, b = _pixels(original), _pixels(copy)
    found, how = confirm._align(a, b, None)
    assert _error(found, a, b, (0, 0, w, h), box, (w, h)) < 0.5, how
    assert confirm.confirm(a, b).verdict == confirm.DUPLICATE


@pytest.mark.parametrize("drawn", [False, True], ids=["photo", "drawn picture"])
def test_a_mirrored_crop_proposed_as_is_is_a_duplicate_by_the_mirrored_retry(photo, drawn):
    """Local features propose a mirrored copy as it is (variant 0); the pixel check's retry turns it, and
    a copy both mirrored and cropped by 10% (no rescale fits: the features or the crop search must find
    it) is a duplicate, mirrored."""
    original = drawn_picture(4) if drawn else photo
    w, h = original.size
    copy = ImageOps.mirror(original).crop((int(w * 0.1), 0, w, int(h * 0.9)))
    thumbs = {0: _thumbnail(original), 1: _thumbnail(copy)}
    (result,) = confirm.confirm_pairs([(0, 1)], [0], thumbs.get, workers=1)
    assert (result.verdict, result.variant) == (confirm.DUPLICATE, 1), result.reason


def test_a_different_picture_proposed_as_is_stays_different_after_the_retries(photo):
    """The retries count only as a duplicate: another picture, turned or not, is still different."""
    other = next(p for p in source_photos() if p.stem != "coffee")
    thumbs = {0: _thumbnail(photo), 1: _thumbnail(Image.open(other).convert("RGB").resize((1200, 800)))}
    (result,) = confirm.confirm_pairs([(0, 1)], [0], thumbs.get, workers=1)
    assert (result.verdict, result.variant) == (confirm.DIFFERENT, 0)
