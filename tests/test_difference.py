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


def test_a_sliver_along_an_edge_is_alignment_residue_not_a_mark():
    """Boxes the pixel check reported on the sample library (seed 1): a frame copy of a white-margin picture
    left a sliver 0.008 wide at the content's edge; the studio logo is a block of 2-4%, 0.04 high where a
    crop cut it."""
    from photodedup.difference import legible_mark

    assert not legible_mark((0.015, 0.885, 0.023, 0.946), 0.0005)  # IMG_0029 against its frame copy
    assert not legible_mark((0.9, 0.9, 0.93, 0.93), 0.0009)  # a speck in a corner
    assert legible_mark((0.731, 0.887, 0.972, 0.971), 0.0201)
    assert legible_mark((0.731, 0.887, 0.950, 0.929), 0.0091)  # the logo on a crop
    assert not legible_mark(None, 0.02)


def test_a_white_margin_photo_does_not_carry_a_mark_against_its_frame_copy(tmp_path):
    """Through the scan and grouping: the sample library's IMG_0029 (seed 1), a horse's outline on white, and a
    copy framed in white, whose alignment leaves a sliver along the outline at the bottom left. The original
    carries no mark; the copy with the studio's logo does."""
    import numpy as np
    from PIL import ImageOps

    from photodedup.group import group
    from photodedup.sample_library import _add_sensor_noise, original_photo
    from photodedup.scan import scan

    rng = np.random.default_rng([1, 29])  # as the sample library draws its original 29 at seed 1
    photo = original_photo([str(p) for p in source_photos()], 29, rng)
    photo = _add_sensor_noise(photo.resize((1154, 865), Image.Resampling.BICUBIC), rng)
    root = tmp_path / "lib"
    root.mkdir()
    photo.save(root / "IMG_0029.jpg", quality=92)
    ImageOps.expand(photo, border=(72, 39), fill=(255, 255, 255)).save(root / "IMG_0029_frame.jpg", quality=95)
    stamp_logo(photo).save(root / "IMG_0029_wm.jpg", quality=100)
    scan([root], catalog=tmp_path / "c.sqlite", workers=1)
    groups = group(tmp_path / "c.sqlite", store=False).groups
    assert [len(g.members) for g in groups] == [3]
    marks = {m.path.rsplit("/", 1)[1]: m.added_mark for m in groups[0].members}
    assert marks == {"IMG_0029.jpg": None, "IMG_0029_frame.jpg": None, "IMG_0029_wm.jpg": (
        "an added mark (watermark or logo) bottom right, 4% of the picture, that IMG_0029_frame.jpg lacks")}
