"""Where two pictures differ (photodedup.difference): the review's map in words, and the added-mark evidence."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

from photodedup.difference import added_mark, difference_map, mark_members
from photodedup.duplicate_groups import Member
from photodedup.keeper import choose
from photodedup.sample_library import source_photos, stamp_logo


def _thumb(image: Image.Image, quality: int = 80) -> Image.Image:
    """As the catalog keeps it: a JPEG thumbnail of at most 320 px."""
    buffer = io.BytesIO()
    copy = image.copy()
    copy.thumbnail((320, 320))
    copy.save(buffer, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _photo() -> Image.Image:
    photo = Image.open(next(p for p in source_photos() if p.stem == "chelsea")).convert("RGB")
    return photo.resize((photo.width * 2, photo.height * 2))


def test_a_re_encode_does_not_differ_and_a_logo_differs_in_one_corner_region():
    photo = _photo()
    same = difference_map(_thumb(photo), _thumb(photo, quality=40))
    assert (same.regions, same.words) == ([], "no visible difference (resampling or compression noise only)")
    logo = difference_map(_thumb(photo), _thumb(stamp_logo(photo)))
    assert logo.words == "differs in one region, 2% of the picture"
    [(x0, y0, x1, y1)] = logo.regions
    assert x0 > 0.6 and y0 > 0.8  # lower right


def test_the_mark_is_found_on_the_copy_that_carries_it_and_not_on_a_change_of_content():
    photo = _photo()
    w, h = photo.size
    moved = photo.copy()  # a piece of the picture moved: content, sharp on both sides
    moved.paste(photo.crop((w // 3, h // 3, w // 3 + w // 8, h // 3 + h // 8)), (w // 2, h // 2))
    boxed = photo.copy()  # a plain white box in a corner, as a cheap watermark tool draws
    ImageDraw.Draw(boxed).rectangle((w - w // 5, h - h // 12, w - 10, h - 10), fill=(255, 255, 255))
    clean = _thumb(photo)
    assert added_mark(clean, _thumb(stamp_logo(photo))) == "b"
    assert added_mark(_thumb(stamp_logo(photo)), clean) == "a"
    assert added_mark(clean, _thumb(boxed)) == "b"
    assert added_mark(clean, _thumb(moved)) is None

    # through the keeper: the marked copy is larger and has the EXIF, the clean one still wins
    pictures = {1: clean, 2: _thumb(stamp_logo(photo))}
    members = [Member(1, "/p/IMG_1.jpg", "perceptual", 1.0, width=w, height=h, size=100, format="JPEG"),
               Member(2, "/a/IMG_1_wm.jpg", "perceptual", 1.0, width=w, height=h, size=200, format="JPEG")]
    mark_members(members, lambda m: pictures[m.file_id])
    assert [m.added_mark for m in members] == [None, "lower right, 2% of the picture"]
    choice = choose(members)
    assert (choice.keeper, choice.notes) == (1, {2: "an added watermark or logo (lower right, 2% of the picture)"})
