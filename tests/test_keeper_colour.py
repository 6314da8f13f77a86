"""The keeper rule ``colour``: a colour photo over its grayscale copy, and only over a real one.

Through the real path: files written with PIL, the real scan, grouping and keeper."""

import numpy as np
import pytest
from PIL import Image, ImageEnhance

from photodedup.catalog import open_catalog
from photodedup.group import group
from photodedup.sample_library import source_photos
from photodedup.scan import scan


def _source(name: str, size=(640, 480)) -> Image.Image:
    photo = Image.open(next(p for p in source_photos() if p.name == name)).convert("RGB")
    return photo.resize(size, Image.Resampling.BICUBIC)


def _camera_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Canon", "EOS R6"
    exif.get_ifd(0x8769)[0x9003] = "2023:07:14 18:30:05"
    return exif.tobytes()


def _grouped(root, tmp_path) -> tuple[dict[str, int | None], dict]:
    catalog = tmp_path / "c.sqlite"
    scan([root], catalog=catalog, workers=1)
    with open_catalog(catalog) as cat:
        flags = {row["path"].rsplit("/", 1)[1]: row["grayscale"] for row in cat.files("ok")}
    groups = group(catalog, store=False).groups
    assert len(groups) == 1, [g.paths for g in groups]
    keeper = next(m for m in groups[0].members if m.keeper)
    return flags, {"keeper": keeper.path.rsplit("/", 1)[1], "reason": groups[0].keeper_reason,
                   "notes": {m.path.rsplit("/", 1)[1]: m.note for m in groups[0].members}}


def test_a_camera_jpeg_whose_faint_colour_its_chroma_flattened_is_not_a_grayscale_copy_of_its_png(tmp_path):
    """A grey subject with the sensor's colour noise: the camera's 4:2:0 JPEG keeps too little of that colour
    for the scan to call it colour, a smaller export of the same picture as PNG keeps it. The JPEG is the
    original; a one-channel black-and-white copy is still a grayscale copy."""
    grey = np.asarray(_source("camera.png"), dtype=np.int16)
    noise = np.random.default_rng(0).integers(-7, 8, size=grey.shape, dtype=np.int16)
    photo = Image.fromarray(np.clip(grey + noise, 0, 255).astype(np.uint8))
    root = tmp_path / "lib"
    root.mkdir()
    photo.save(root / "IMG_1.jpg", quality=92, exif=_camera_exif())
    photo.resize((560, 420), Image.Resampling.LANCZOS).save(root / "IMG_1.png", compress_level=1)  # an export
    photo.convert("L").save(root / "IMG_1_bw.jpg", quality=100, exif=_camera_exif())

    flags, chosen = _grouped(root, tmp_path)
    assert flags == {"IMG_1.jpg": 1, "IMG_1.png": 0, "IMG_1_bw.jpg": 1}  # the scan's flags (unchanged)
    assert chosen["keeper"] == "IMG_1.jpg", chosen
    assert chosen["notes"]["IMG_1_bw.jpg"] == "a grayscale copy of a colour photo"
    assert chosen["notes"]["IMG_1.png"] == "an export (PNG); the group has the camera format JPEG"


def test_a_clearly_colour_photo_wins_over_an_almost_grey_copy_with_more_pixels_and_exif(tmp_path):
    """A copy with its colour turned down to 3% keeps a trace of it (not grey by its pixels), but next to a
    photo in clear colour it is a grayscale copy, whatever its resolution and EXIF."""
    photo = _source("astronaut.png")
    root = tmp_path / "lib"
    root.mkdir()
    photo.save(root / "IMG_2.jpg", quality=92)
    faded = ImageEnhance.Color(photo).enhance(0.03).resize((960, 720), Image.Resampling.BICUBIC)
    faded.save(root / "IMG_2_bw.jpg", quality=95, exif=_camera_exif())

    flags, chosen = _grouped(root, tmp_path)
    assert flags == {"IMG_2.jpg": 0, "IMG_2_bw.jpg": 1}
    assert (chosen["keeper"], chosen["reason"]) == ("IMG_2.jpg", "colour (others are grayscale copies)")


@pytest.mark.parametrize("broken", [False, True])
def test_a_grey_copy_with_no_colour_loses_to_a_faint_colour_photo(tmp_path, broken):
    """An RGB black-and-white copy (channels equal) loses to a photo whose colour is faint but there, and when
    a file cannot be read the scan's flags decide alone, as before."""
    from photodedup import keeper
    from photodedup.duplicate_groups import Member

    tinted = np.asarray(_source("camera.png"), dtype=np.int16) + np.array([6, 0, -6], dtype=np.int16)
    root = tmp_path / "lib"
    root.mkdir()
    Image.fromarray(np.clip(tinted, 0, 255).astype(np.uint8)).save(root / "a.png")
    Image.fromarray(np.clip(tinted, 0, 255).astype(np.uint8)).convert("L").convert("RGB").save(root / "b.png")
    if broken:
        (root / "a.png").write_bytes(b"not a picture")
    members = [Member(1, str(root / "a.png"), "", 1.0, width=640, height=480, size=9, format="PNG", grayscale=0),
               Member(2, str(root / "b.png"), "", 1.0, width=960, height=720, size=9, format="PNG", grayscale=1)]
    choice = keeper.choose(members)
    assert (choice.keeper, choice.reason) == (1, "colour (others are grayscale copies)")



def test_a_grey_form_with_a_little_blue_ink_is_no_grayscale_copy_of_its_framed_jpeg(tmp_path):
    """A form in grey print with blue ink over under 1% of it: the scan reads the channel spread at the 99th
    percentile and can flag it grey while its JPEG copy in a white frame, the ink spread wider by 4:2:0
    chroma, is flagged colour (the untuned real-photo set: the original was moved). The PNG holds clear
    colour, so it is no grayscale copy, and the rules after ``colour`` keep it (no added border)."""
    from datetime import datetime

    from PIL import ImageOps

    from photodedup import keeper
    from photodedup.duplicate_groups import Member
    from photodedup.sample_library.lookalikes import Maker, form

    page = form(Maker(_source("coffee.png"), np.random.default_rng([7, 1]), datetime(2024, 1, 1)), 1)
    page.save(tmp_path / "form.png")
    framed = ImageOps.expand(page, border=42, fill=(255, 255, 255))
    framed.save(tmp_path / "form_framed.jpg", quality=92)
    ink = np.asarray(page, dtype=np.int16)
    spread = ink.max(axis=2) - ink.min(axis=2)
    assert 0 < (spread >= 30).mean() < 0.01   # the premise: clear colour, in under 1% of the pixels
    members = [Member(1, str(tmp_path / "form_framed.jpg"), "", 1.0, width=framed.width, height=framed.height,
                      content_width=page.width, content_height=page.height, size=9, format="JPEG", grayscale=0),
               Member(2, str(tmp_path / "form.png"), "", 1.0, width=page.width, height=page.height,
                      content_width=page.width, content_height=page.height, size=9, format="PNG", grayscale=1)]
    choice = keeper.choose(members)
    assert (choice.keeper, choice.reason) == (2, "no added border")
