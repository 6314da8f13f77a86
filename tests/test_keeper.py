"""The keeper rules (photodedup.keeper): the camera original wins, each reason is named, the order is the user's."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from photodedup.duplicate_groups import Member
from photodedup.errors import BadInputError
from photodedup.group import group
from photodedup.keeper import DEFAULT_RULES, choose, expand_rules, human_sizes
from photodedup.scan import scan


def member(file_id, w=4000, h=3000, size=5_000_000, fmt="JPEG", camera="Canon EOS R6", taken="2021-06-01T10:00:00",
           content=None, gray=0, mtime=0, path=None, quality=None, mark=None) -> Member:
    cw, ch = content or (w, h)
    quality = quality or (95 if fmt == "JPEG" else None)
    return Member(file_id, path or f"/p/{file_id}", "perceptual", 1.0, width=w, height=h, size=size, format=fmt,
                  camera=camera, taken_at=taken, content_width=cw, content_height=ch, grayscale=gray, mtime_ns=mtime,
                  jpeg_quality=quality, added_mark=mark)


ORIGINAL = member(1, path="/p/DCIM/IMG_0001.jpg")


@pytest.mark.parametrize("other, reason, note", [
    # a grayscale copy saved at quality 100 is bigger: colour still wins
    (member(2, size=9_000_000, gray=1), "colour (others are grayscale copies)", "a grayscale copy of a colour photo"),
    # a black border adds canvas pixels: the content is what counts
    (member(2, w=4200, h=3200, size=6_000_000, content=(4000, 3000)), "no added border",
     "an added border (content 4000x3000 in a 4200x3200 canvas)"),
    # a PNG export is bigger and as large: the camera format wins
    (member(2, size=20_000_000, fmt="PNG"), "camera format (JPEG) over an export",
     "an export (PNG); the group has the camera format JPEG"),
    # a re-save at quality 100 (camera EXIF copied) is larger but no better
    (member(2, size=9_000_000, quality=100), "not a maximum-quality re-save",
     "a JPEG re-saved at maximum quality (quality-100 tables, which cameras do not write)"),
    (member(2, w=2000, h=1500, size=1_000_000), "highest resolution (4000x3000)",
     "lower resolution (2000x1500 against 4000x3000)"),
    (member(2, size=6_000_000, camera=None, taken=None), "camera EXIF (Canon EOS R6, taken 2021-06-01T10:00:00)",
     "less camera EXIF (none)"),
    (member(2, size=4_000_000), "largest file of its format and resolution (5.0 MB)",
     "a smaller file of the same format and resolution (4.0 MB against 5.0 MB)"),
    (member(2, taken="2022-01-01T00:00:00"), "oldest capture (taken 2021-06-01T10:00:00)",
     "captured later (taken 2022-01-01T00:00:00)"),
    (member(2, mtime=10, path="/a/first-by-path"), "oldest file (modified first)", "modified later"),
])
def test_the_camera_original_wins_and_every_reason_is_named(other, reason, note):
    for members in ([ORIGINAL, other], [other, ORIGINAL]):
        choice = choose(members)
        assert (choice.keeper, choice.reason, choice.notes) == (1, reason, {2: note})


def test_size_decides_only_between_files_of_the_same_format_and_resolution():
    # the WebP is bigger, but the size rule never compares across formats, so the oldest rule decides
    webp = member(2, size=9_000_000, fmt="WEBP", mtime=5)
    choice = choose([member(1, mtime=9), webp], rules="resolution,exif,size,oldest")
    assert choice.keeper == 2 and choice.reason == "oldest file (modified first)"


def test_identical_members_fall_back_to_the_first_path():
    choice = choose([member(2, path="/b"), member(1, path="/a")])
    assert choice.keeper == 1 and choice.reason == "all else equal: first by path"


def test_rules_run_in_the_order_given():
    bigger_gray = member(2, w=6000, h=4000, gray=1)
    assert choose([ORIGINAL, bigger_gray]).keeper == 1
    reordered = choose([ORIGINAL, bigger_gray], rules="resolution,not-derivative,exif,size,oldest")
    assert (reordered.keeper, reordered.reason) == (2, "highest resolution (6000x4000)")


def test_a_reference_folder_always_wins():
    small = member(2, w=640, h=480, size=10, gray=1, path="/archive/IMG_1.jpg")
    choice = choose([ORIGINAL, small], prefer=["/archive"])
    assert (choice.keeper, choice.reason, choice.notes) == (2, "in a reference folder (--prefer)",
                                                            {1: "not in a reference folder (--prefer)"})
    assert choose([ORIGINAL, small], prefer=["/arch"]).keeper == 1  # a prefix of a name is not a folder


def test_unknown_or_repeated_rules_are_clear_errors():
    assert expand_rules(DEFAULT_RULES) == ("raw-pair", "provenance", "colour", "no-mark", "no-border", "camera-format",
                                           "not-resaved", "resolution", "exif", "lossless", "quality", "size",
                                           "oldest")
    with pytest.raises(BadInputError, match="unknown keeper rule 'biggest'"):
        expand_rules("resolution,biggest")
    with pytest.raises(BadInputError, match="keeper rule 'colour' is listed twice"):
        expand_rules("not-derivative,colour")


def test_the_reason_speaks_of_the_keeper_not_of_another_survivor():
    jpeg = member(1, size=3_000_000, path="/b/IMG_1.jpg")
    raw = member(2, size=24_000_000, fmt="DNG", mtime=5, path="/a/IMG_1.dng")  # first by path, survives size
    png = member(3, size=9_000_000, fmt="PNG", camera=None, taken=None)
    choice = choose([png, raw, jpeg])
    assert choice.keeper == 1
    assert choice.reason == "camera format (JPEG) over an export; oldest file (modified first)"
    assert choice.notes == {3: "an export (PNG); the group has the camera format DNG", 2: "modified later"}


def test_a_photo_s_own_dark_edge_is_not_a_border():
    # border trimming finds a few rows of dark edge, differently in each copy: not a resolution difference
    edge = member(1, content=(3952, 2960), mtime=0)
    brighter = member(2, content=(3952, 2968), size=6_000_000, mtime=9)
    choice = choose([edge, brighter])
    assert choice.keeper == 2 and choice.reason.startswith("largest file of its format and resolution")


def test_a_turned_copy_whose_border_trims_a_few_pixels_wider_is_not_higher_resolution():
    # the sample library's IMG_0014: its flat edge trims as a border; the copy turned 90 degrees without a
    # tag trims 8 px more (JPEG noise), 0.3% more "content": the same resolution, so the larger file wins
    original = member(1, content=(3720, 2776), size=1_281_160, mtime=0, path="/p/DCIM/IMG_0014.jpg")
    turned = member(2, w=3000, h=4000, content=(2784, 3720), size=1_072_397, mtime=0, path="/p/Edited/IMG_0014.jpg")
    for members in ([original, turned], [turned, original]):
        choice = choose(members)
        assert (choice.keeper, choice.reason) == (1, "largest file of its format and resolution (1.3 MB)")
        assert choice.notes == {2: "a smaller file of the same format and resolution (1.1 MB against 1.3 MB)"}


def test_a_caption_over_the_photo_s_own_flat_edge_does_not_make_a_copy_higher_resolution():
    # the second set's P0040: its flat left edge trims 96 px; a caption copy covers part of it (trims 32 px)
    original = member(1, w=1600, h=1200, content=(1504, 1200), size=334_953, path="/p/camera/P0040.JPG")
    caption = member(2, w=1600, h=1200, content=(1568, 1200), size=288_448, path="/p/edits/P0040_caption.jpg")
    choice = choose([original, caption])
    assert (choice.keeper, choice.reason) == (1, "largest file of its format and resolution (335.0 KB)")


def test_a_resize_beyond_the_trimming_noise_still_loses_on_resolution():
    smaller = member(2, w=3940, h=2955, size=9_000_000, path="/a/first")  # 3% fewer pixels, a bigger file
    choice = choose([ORIGINAL, smaller])
    assert (choice.keeper, choice.reason) == (1, "highest resolution (4000x3000)")


def test_a_uniform_background_is_not_an_added_border_when_the_other_copy_has_less_photo():
    # a night shot whose black sky trims like a frame, and a 6% crop of it that cut the sky away
    night = member(1, w=1632, h=1224, content=(1520, 1132), size=230_000)
    crop = member(2, w=1438, h=1078, size=156_000)
    assert choose([night, crop]).keeper == 1
    day = member(4, w=1632, h=1224, size=230_000)
    framed = member(3, w=1760, h=1320, content=(1632, 1224), size=400_000)  # a frame added around the photo
    choice = choose([day, framed])  # its content is the whole of the original: the frame was added
    assert (choice.keeper, choice.notes[3]) == (4, "an added border (content 1632x1224 in a 1760x1320 canvas)")


def test_a_frame_around_a_photo_with_its_own_dark_background_is_still_a_frame():
    # the original trims its own dark edge (content 1520x1132); the frame copy trims to the whole original
    night = member(1, w=1632, h=1224, content=(1520, 1132), size=230_000)
    framed = member(2, w=1814, h=1374, content=(1634, 1226), size=401_000)
    choice = choose([night, framed])
    assert (choice.keeper, choice.notes[2]) == (1, "an added border (content 1634x1226 in a 1814x1374 canvas)")


def test_a_lossless_screenshot_wins_over_its_lossy_copies():
    # a phone screenshot (PNG, no camera EXIF) and its JPEG copies: no member shows a camera, so the PNG is
    # not "an export"; the JPEG copies lost detail
    png = member(1, w=1170, h=2532, size=900_000, fmt="PNG", camera=None, taken=None, path="/p/Screenshots/a.png")
    jpeg = member(2, w=1170, h=2532, size=300_000, camera=None, taken=None, quality=70, path="/a/first.jpg")
    webp = member(3, w=1170, h=2532, size=200_000, fmt="WEBP", camera=None, taken=None, path="/a/second.webp")
    for members in ([png, jpeg, webp], [webp, jpeg, png]):
        choice = choose(members)
        assert (choice.keeper, choice.reason) == (1, "lossless (PNG) over a lossy copy")
        assert choice.notes == {2: "a lossy copy (JPEG) of the lossless PNG",
                                3: "a lossy copy (WEBP) of the lossless PNG"}
    # a larger JPEG of it (upscaled) has more pixels: resolution still comes first
    assert choose([png, member(4, w=2340, h=5064, camera=None, taken=None)]).keeper == 4


def test_a_camera_jpeg_still_wins_over_a_png_export_of_it():
    png = member(2, size=20_000_000, fmt="PNG", camera=None, taken=None, path="/a/export.png")
    choice = choose([ORIGINAL, png])
    assert (choice.keeper, choice.reason) == (1, "camera format (JPEG) over an export")
    # without camera EXIF on either side the PNG's bytes tell: a photograph's noise does not compress (1.7 bytes
    # a pixel here), so the PNG is an export of the JPEG; a screenshot compresses to a fraction of a byte a pixel
    stripped = member(1, camera=None, taken=None, path="/p/DCIM/IMG_0001.jpg")
    assert choose([stripped, png]).reason == "camera format (JPEG) over an export"
    screenshot = member(3, size=1_200_000, fmt="PNG", camera=None, taken=None, path="/a/Screenshot.png")
    assert (choose([stripped, screenshot]).keeper, choose([stripped, screenshot]).reason) == (
        3, "lossless (PNG) over a lossy copy")


def test_a_higher_jpeg_quality_wins_over_a_larger_lower_quality_copy():
    # a re-save at quality 70 without chroma subsampling is larger than the quality-92 original
    copy = member(2, size=6_000_000, quality=70, path="/a/first.jpg")
    original = member(1, quality=92)
    for members in ([original, copy], [copy, original]):
        choice = choose(members)
        assert (choice.keeper, choice.reason, choice.notes) == (
            1, "highest JPEG quality (92)", {2: "a lower JPEG quality (70 against 92)"})
    # two encoders' tables at one setting: within the margin, the size decides
    assert choose([original, member(2, size=6_000_000, quality=89)]).keeper == 2


def test_camera_exif_wins_over_a_stripped_copy_of_higher_quality():
    original = member(1, quality=90)
    stripped = member(2, size=7_000_000, quality=98, camera=None, taken=None, path="/a/first.jpg")
    choice = choose([stripped, original])
    assert (choice.keeper, choice.notes) == (1, {2: "less camera EXIF (none)"})


def test_the_clean_picture_wins_over_a_copy_with_an_added_mark():
    # the marked copy kept the camera EXIF, is larger and has more pixels: the mark still decides
    marked = member(2, w=4200, h=3150, size=9_000_000, mark="lower right, 3% of the picture", path="/a/first.jpg")
    for members in ([ORIGINAL, marked], [marked, ORIGINAL]):
        choice = choose(members)
        assert (choice.keeper, choice.reason, choice.notes) == (
            1, "no added watermark or logo", {2: "an added watermark or logo (lower right, 3% of the picture)"})


def test_two_sizes_that_round_alike_are_shown_with_enough_digits_to_differ():
    choice = choose([member(1, size=4_340_000), member(2, size=4_310_000, path="/a/first")])
    assert choice.notes == {2: "a smaller file of the same format and resolution (4.31 MB against 4.34 MB)"}
    assert human_sizes(4_300_001, 4_300_000) == ("4.300001 MB", "4.300000 MB")
    assert human_sizes(5_000_000, 4_000_000) == ("5.0 MB", "4.0 MB") and human_sizes(999, 999) == ("999 B", "999 B")


def test_a_photo_whose_own_margin_trims_is_not_framed_by_a_frame_copy_s_larger_canvas():
    # the sample library's IMG_0026 (seed 3): a page's white top margin trims 32 rows of the original (2.6%, a
    # "border"), 20 of its quality-100 export; a frame copy's canvas has the original's shape and is larger
    original = member(1, w=1632, h=1224, content=(1632, 1192), size=395_874, quality=92, path="/p/DCIM/IMG_0026.jpg")
    export = member(2, w=1632, h=1224, content=(1632, 1204), size=3_374_970, quality=100, camera=None, taken=None,
                    path="/a/Exports/IMG_0026_export.jpg")
    frame = member(3, w=1858, h=1354, content=(1634, 1226), size=617_688, quality=95, path="/a/IMG_0026_frame.jpg")
    choice = choose([original, export, frame])
    assert choice.keeper == 1 and choice.notes[3] == "an added border (content 1634x1226 in a 1858x1354 canvas)"


# -- provenance: which file was made from which (real files through scan and group) -------------------------
def photo(size=(480, 360), seed=0) -> Image.Image:
    """A photograph's look: smooth shapes under fine texture (a camera's noise), saturated nowhere."""
    rng = np.random.default_rng(seed)
    small = rng.uniform(40, 215, (size[1] // 24 + 1, size[0] // 24 + 1, 3)).astype(np.uint8)
    base = np.asarray(Image.fromarray(small).resize(size, Image.Resampling.BICUBIC), dtype=np.float32)
    texture = np.asarray(Image.fromarray(rng.normal(128, 40, (size[1], size[0])).clip(0, 255).astype(np.uint8))
                         .filter(ImageFilter.GaussianBlur(0.8)), dtype=np.float32)[..., None] - 128
    return Image.fromarray((base + texture * 0.6).clip(20, 235).astype(np.uint8))


def screenshot(size=(540, 1170)) -> Image.Image:
    """A chat screenshot: text on white and grey bubbles (a lossless graphic)."""
    image = Image.new("RGB", size, (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for row in range(34):
        y = 12 + row * 34
        draw.rounded_rectangle((12 + 90 * (row % 2), y, 440 + 90 * (row % 2), y + 28), 10,
                               fill=(230, 232, 236) if row % 2 else (40, 120, 240))
        draw.text((24 + 90 * (row % 2), y + 8), f"message {row * 37 % 101} at {8 + row % 12}:{row * 7 % 60:02d} ok",
                  fill=(20, 20, 20) if row % 2 else (255, 255, 255))
    return image


def camera_exif(orientation=1) -> bytes:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Canon", "Canon EOS R6", orientation
    exif.get_ifd(0x8769)[0x9003] = "2021:06:01 10:00:00"
    return exif.tobytes()


def decoded(path) -> Image.Image:
    with Image.open(path) as image:
        return image.convert("RGB")


def keeper_of(tmp_path, names) -> tuple[str, str, dict[str, str]]:
    """Scan and group ``tmp_path/lib``; the one group's keeper name, reason and notes by name."""
    scan([tmp_path / "lib"], catalog=tmp_path / "c.sqlite", workers=1)
    result = group(tmp_path / "c.sqlite")
    [found] = result.groups
    assert sorted(m.path.rsplit("/", 1)[1] for m in found.members) == sorted(names)
    keeper = next(m for m in found.members if m.keeper)
    return (keeper.path.rsplit("/", 1)[1], found.keeper_reason,
            {m.path.rsplit("/", 1)[1]: m.note for m in found.members if not m.keeper})


def test_a_quality_75_original_wins_over_its_quality_90_re_save(tmp_path):
    # the re-save is a higher quality, larger, and keeps the camera EXIF: only its DCT tells it was made
    # from the original (it sits on the quality-75 lattice)
    (tmp_path / "lib").mkdir()
    photo().save(tmp_path / "lib/IMG_1.jpg", quality=75, exif=camera_exif())
    decoded(tmp_path / "lib/IMG_1.jpg").save(tmp_path / "lib/IMG_1 copy.jpg", quality=90, exif=camera_exif())
    keeper, reason, notes = keeper_of(tmp_path, ["IMG_1.jpg", "IMG_1 copy.jpg"])
    assert (keeper, reason) == ("IMG_1.jpg", "not made from another file's pixels")
    assert notes == {"IMG_1 copy.jpg": "a re-save of IMG_1.jpg (its DCT fits that file's JPEG quantization)"}


def test_a_quality_75_original_wins_over_its_brightened_quality_90_copy(tmp_path):
    # the look-alike library's brightness/contrast copy: made from the saved quality-75 file, higher quality,
    # camera EXIF kept: its DCT sits on the original's lattice scaled by the tone edit's gain
    (tmp_path / "lib").mkdir()
    photo().save(tmp_path / "lib/IMG_4.jpg", quality=75, exif=camera_exif())
    copy = ImageEnhance.Contrast(ImageEnhance.Brightness(decoded(tmp_path / "lib/IMG_4.jpg")).enhance(1.1)).enhance(1.1)
    copy.save(tmp_path / "lib/IMG_4 edited.jpg", quality=90, exif=camera_exif())
    keeper, reason, notes = keeper_of(tmp_path, ["IMG_4.jpg", "IMG_4 edited.jpg"])
    assert (keeper, reason) == ("IMG_4.jpg", "not made from another file's pixels")
    assert notes == {"IMG_4 edited.jpg": "a re-save of IMG_4.jpg with its contrast changed (its DCT fits that file's "
                                         "JPEG quantization scaled by 1.212)"}


def test_a_mostly_clipped_original_wins_over_its_brightened_quality_90_copy(tmp_path):
    # the look-alike library's burst-blink_01: most of the picture is black or white, so the decoder clipped it
    # and the lattice is lost there; the copy holds the decoded pixels times the edit's gain (its own clip, the
    # whites at 245, left out)
    (tmp_path / "lib").mkdir()
    grey = np.asarray(photo((640, 480)).convert("L"), dtype=np.float32)
    Image.fromarray(((grey - 128) * 5 + 128).clip(0, 255).astype(np.uint8)).convert("RGB").save(
        tmp_path / "lib/IMG_5.jpg", quality=75, exif=camera_exif())
    copy = ImageEnhance.Contrast(ImageEnhance.Brightness(decoded(tmp_path / "lib/IMG_5.jpg")).enhance(1.135))
    copy.enhance(0.905).save(tmp_path / "lib/IMG_5 edited.jpg", quality=90, exif=camera_exif())
    keeper, reason, notes = keeper_of(tmp_path, ["IMG_5.jpg", "IMG_5 edited.jpg"])
    assert (keeper, reason) == ("IMG_5.jpg", "not made from another file's pixels")
    assert notes == {"IMG_5 edited.jpg": "a re-save of IMG_5.jpg with its contrast changed (its DCT is that file's "
                                         "decoded DCT scaled by 1.026)"}


def test_a_very_smooth_original_wins_over_its_brightened_quality_90_copy(tmp_path):
    # the untuned look-alike set's object-removed_03: soft colour fields, where the edit's rounding to whole
    # levels keeps a smooth block's AC unscaled; the blocks across the objects' edges tell
    from test_provenance import smooth_scene

    (tmp_path / "lib").mkdir()
    smooth_scene().save(tmp_path / "lib/IMG_6.jpg", quality=75, exif=camera_exif())
    copy = ImageEnhance.Contrast(ImageEnhance.Brightness(decoded(tmp_path / "lib/IMG_6.jpg")).enhance(1.15))
    copy.enhance(0.98).save(tmp_path / "lib/IMG_6 edited.jpg", quality=90, exif=camera_exif())
    keeper, reason, notes = keeper_of(tmp_path, ["IMG_6.jpg", "IMG_6 edited.jpg"])
    assert (keeper, reason) == ("IMG_6.jpg", "not made from another file's pixels")
    assert notes == {"IMG_6 edited.jpg": "a re-save of IMG_6.jpg with its contrast changed (its DCT is that file's "
                                         "decoded DCT scaled by 1.133)"}


def test_a_png_chart_wins_over_its_jpeg_crop_whose_ringing_trims_as_more_content(tmp_path):
    # a chart on a white page (content 851x560) and a JPEG of it with 2% of the page cut from each side: the
    # JPEG's ringing around the bars trims as content (863x563, 2% more), yet it holds no more picture
    (tmp_path / "lib").mkdir()
    chart = Image.new("RGB", (1000, 700), (255, 255, 255))
    draw = ImageDraw.Draw(chart)
    for bar, height in enumerate((320, 540, 150, 410, 260, 480)):
        draw.rectangle((80 + bar * 150, 640 - height, 180 + bar * 150, 640), fill=(60, 120, 200))
        draw.text((100 + bar * 150, 650), f"Q{bar + 1}", fill=(0, 0, 0))
    draw.line((60, 640, 960, 640), fill=(0, 0, 0), width=3)
    chart.save(tmp_path / "lib/chart.png")
    chart.crop((20, 14, 980, 686)).save(tmp_path / "lib/chart_cropped.jpg", quality=75)
    keeper, reason, notes = keeper_of(tmp_path, ["chart.png", "chart_cropped.jpg"])
    assert (keeper, reason, notes) == ("chart.png", "lossless (PNG) over a lossy copy",
                                       {"chart_cropped.jpg": "a lossy copy (JPEG) of the lossless PNG"})


def test_a_png_screenshot_wins_over_its_jpeg_copy_that_carries_camera_exif(tmp_path):
    # a copy turned 90 degrees in its pixels with an EXIF tag that turns it back, and camera EXIF (an app wrote
    # it): the JPEG's DCT is the PNG's rounded to its own table
    (tmp_path / "lib").mkdir()
    shot = screenshot()
    shot.save(tmp_path / "lib/Screenshot.png")
    shot.transpose(Image.Transpose.ROTATE_90).save(tmp_path / "lib/Screenshot.jpg", quality=90,
                                                   exif=camera_exif(orientation=6))
    keeper, reason, notes = keeper_of(tmp_path, ["Screenshot.png", "Screenshot.jpg"])
    assert (keeper, reason) == ("Screenshot.png", "not made from another file's pixels")
    assert notes == {"Screenshot.jpg": "a JPEG of Screenshot.png's pixels (its DCT is that file's, rounded to its "
                                       "own quantization)"}


def test_a_camera_jpeg_wins_over_a_png_exported_from_it(tmp_path):
    (tmp_path / "lib").mkdir()
    photo().save(tmp_path / "lib/IMG_2.jpg", quality=85, exif=camera_exif())
    decoded(tmp_path / "lib/IMG_2.jpg").save(tmp_path / "lib/IMG_2.png")
    keeper, reason, notes = keeper_of(tmp_path, ["IMG_2.jpg", "IMG_2.png"])
    assert (keeper, reason) == ("IMG_2.jpg", "not made from another file's pixels")
    assert notes == {"IMG_2.png": "a re-save of IMG_2.jpg (its DCT fits that file's JPEG quantization)"}


def test_a_camera_jpeg_wins_over_a_contrast_edit_of_the_picture_it_was_saved_from(tmp_path):
    # the second set's P0012 (no EXIF anywhere): the PNG edit was made from the picture before the camera saved
    # it, so neither file is made from the other; the JPEG's zeros agree with the edit's small values rounded to
    # its table, its nonzero coefficients do not (they are the edit's divided by the gain)
    from test_provenance import tone_edited

    (tmp_path / "lib").mkdir()
    picture = photo((640, 480), seed=2)
    picture.save(tmp_path / "lib/P0012.JPG", quality=90)
    tone_edited(picture, 1.3).save(tmp_path / "lib/P0012_contrast.png")
    keeper, reason, notes = keeper_of(tmp_path, ["P0012.JPG", "P0012_contrast.png"])
    assert (keeper, reason, notes) == ("P0012.JPG", "camera format (JPEG) over an export",
                                       {"P0012_contrast.png": "an export (PNG); the group has the camera format JPEG"})


def test_provenance_does_not_apply_to_files_of_different_sizes(tmp_path):
    # a quality-90 re-save of a half-size copy: not on one grid, the rule finds nothing and quality decides
    (tmp_path / "lib").mkdir()
    photo((960, 720)).save(tmp_path / "lib/IMG_3.jpg", quality=75, exif=camera_exif())
    decoded(tmp_path / "lib/IMG_3.jpg").resize((480, 360), Image.Resampling.LANCZOS).save(
        tmp_path / "lib/small.jpg", quality=90, exif=camera_exif())
    keeper, reason, notes = keeper_of(tmp_path, ["IMG_3.jpg", "small.jpg"])
    assert (keeper, reason, notes) == ("IMG_3.jpg", "highest resolution (960x720)",
                                       {"small.jpg": "lower resolution (480x360 against 960x720)"})
    # and the same pair by metadata alone (same size, files that cannot be read): nothing is found either
    a = member(1, w=480, h=360, quality=75, path=str(tmp_path / "gone-1.jpg"))
    b = member(2, w=480, h=360, quality=90, path=str(tmp_path / "gone-2.jpg"))
    assert choose([a, b]).reason == "highest JPEG quality (90)"


def test_a_lossless_picture_wins_over_a_smaller_jpeg():
    # a meme or a screenshot full of photos (over 0.5 bytes a pixel) as PNG, and a cropped or halved JPEG copy
    # without EXIF: that JPEG cannot be the PNG's source (an export adds no pixels), so it is not "the camera
    # format"; resolution decides
    png = member(1, w=1024, h=768, size=970_000, fmt="PNG", camera=None, taken=None, path="/p/meme.png")
    cropped = member(2, w=974, h=731, size=120_000, camera=None, taken=None, quality=90, path="/a/meme_cropped.jpg")
    choice = choose([cropped, png])
    assert (choice.keeper, choice.reason, choice.notes) == (
        1, "highest resolution (1024x768)", {2: "lower resolution (974x731 against 1024x768)"})
    # nor can a smaller JPEG that carries camera EXIF (copied to a crop); a JPEG as large as the PNG still wins
    assert choose([member(2, w=974, h=731, quality=90), png]).keeper == 1
    assert choose([member(2, w=1024, h=768, camera=None, taken=None), png]).keeper == 2


def test_a_frame_in_the_picture_s_own_colour_loses_to_the_picture():
    # a screenshot whose flat bars trim as a "border" (content 540x1048), and a copy framed by 27 px all round in
    # the bars' colour: its trim stops inside the screenshot's bars (content 542x1148, more than the screenshot's)
    shot = member(1, w=540, h=1170, content=(540, 1048), size=57_000, fmt="PNG", camera=None, taken=None,
                  path="/p/shot.png")
    framed = member(2, w=594, h=1224, content=(542, 1148), size=68_000, camera=None, taken=None, quality=92,
                    path="/a/shot_bordered.jpg")
    choice = choose([framed, shot])
    assert (choice.keeper, choice.reason, choice.notes) == (
        1, "no added border", {2: "an added border (content 542x1148 in a 594x1224 canvas)"})
    # a margin wider on one axis than the other is not one border all round: resolution decides as before
    letterbox = member(2, w=540, h=1290, content=(540, 1100), camera=None, taken=None, quality=92, path="/a/lb.jpg")
    assert choose([letterbox, shot]).reason == "highest resolution (540x1100)"


@pytest.mark.parametrize("brightness, contrast, gain", [(1.0, 1.3, "1.302"), (1.05, 0.9, "0.943")])
def test_a_real_camera_jpeg_wins_over_a_brightness_contrast_png_made_from_it(tmp_path, brightness, contrast, gain):
    # a Nikon D70's JPEG (ExifTool's test image: real quantization tables, camera EXIF) and a PNG edit of it
    from helpers import REAL_FILES

    source = REAL_FILES / "exiftool-t-images" / "NikonD70.jpg"
    if not source.is_file():
        pytest.skip(f"no real files at {REAL_FILES}")
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib/DSC_0001.JPG").write_bytes(source.read_bytes())
    edited = ImageEnhance.Contrast(ImageEnhance.Brightness(decoded(source)).enhance(brightness)).enhance(contrast)
    edited.save(tmp_path / "lib/DSC_0001 edited.png")
    keeper, reason, notes = keeper_of(tmp_path, ["DSC_0001.JPG", "DSC_0001 edited.png"])
    assert (keeper, reason) == ("DSC_0001.JPG", "not made from another file's pixels")
    assert notes == {"DSC_0001 edited.png": "a re-save of DSC_0001.JPG with its contrast changed (its DCT fits that "
                                            f"file's JPEG quantization scaled by {gain})"}
