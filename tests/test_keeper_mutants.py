"""Blind spots a held-out mutation sample found in photodedup/keeper.py (``benchmarks/mutate.py --module
keeper --max 15 --seed 3``): a frame's margins at the rounding they may differ by, and members with no
size, a lossless file measured only in height, and which files the provenance rule reads. Unit level on
``choose`` (with real files for provenance)."""

from __future__ import annotations

import os

from photodedup import keeper
from photodedup.duplicate_groups import Member
from photodedup.keeper import choose, is_graphic
from tests.test_keeper import decoded, photo
from tests.test_keeper_rules import keeper_of, member


def test_a_frame_s_margins_may_differ_by_exactly_the_rounding_between_the_axes():
    # the photo trims its own flat edge (bordered itself), and the frame's content has another shape than
    # the photo's canvas: only "one margin all round" can explain the frame's border
    photo = member(1, w=2000, h=1000, content=(1800, 900), path="/z")
    assert keeper.FRAME_ROUNDING == 2
    at_rounding = member(2, w=2200, h=1198, content=(1900, 800), path="/a")  # margins 200 and 198 px
    assert keeper_of(photo, at_rounding, rules="no-border,oldest") == (1, "no added border")
    beyond = member(3, w=2200, h=1197, content=(1900, 800), path="/a")  # 200 and 197: not one margin
    assert keeper_of(photo, beyond, rules="no-border,oldest") == (3, "all else equal: first by path")


def test_members_with_no_size_tie_on_size():
    assert keeper_of(member(1, size=None, path="/b"), member(2, size=None, path="/a"), rules="size") == (
        2, "all else equal: first by path")
    assert keeper_of(member(1, size=None, path="/b"), member(2, size=0, path="/a"), rules="size") == (
        2, "all else equal: first by path")


def test_a_lossless_file_with_a_height_and_no_width_is_no_graphic():
    assert not is_graphic(Member(1, "/p", "exact", 1.0, format="PNG", height=10, size=1))


def test_provenance_reads_only_files_of_one_upright_size_and_different_contents(tmp_path):
    photo((480, 360)).save(tmp_path / "a.jpg", quality=75)
    decoded(tmp_path / "a.jpg").save(tmp_path / "b.jpg", quality=90)  # a re-save of a.jpg's pixels

    def described(name, file_id, quality, w=480, h=360, md5=None):
        stat = (tmp_path / name).stat()
        return Member(file_id, str(tmp_path / name), "perceptual", 1.0, width=w, height=h, size=stat.st_size,
                      format="JPEG", mtime_ns=stat.st_mtime_ns, jpeg_quality=quality, md5=md5 or name)

    original = described("a.jpg", 1, 75)
    choice = choose([original, described("b.jpg", 2, 90)], rules="provenance")
    assert (choice.keeper, choice.reason) == (1, "not made from another file's pixels")
    # described as another upright size (a turned copy), or as the same bytes: not read, nothing found
    for copy in (described("b.jpg", 2, 90, w=360, h=480), described("b.jpg", 2, 90, md5="a.jpg")):
        assert choose([original, copy], rules="provenance").reason == "all else equal: first by path"


# -- session 6 -------------------------------------------------------------------------------------
def test_a_grayscale_copy_loses_by_its_pixels_spread_at_the_documented_edges(tmp_path):
    # the scan flagged b grayscale; its pixels decide: a 99th-percentile channel spread of at most
    # GREY_SPREAD (2) holds no colour at all, and a colour photo's spread of CLEAR_COLOUR_SPREAD (30) is clear
    from PIL import Image

    assert (keeper.GREY_SPREAD, keeper.CLEAR_COLOUR_SPREAD) == (2, 30)

    def png(name, file_id, rgb, gray, stamp=0):
        picture = Image.new("RGB", (512, 512), rgb)
        if stamp:  # a date stamp in colour: the 99th percentile does not see it, SPARSE_COLOUR (0.1%) does
            picture.paste((255, 0, 0), (0, 0, stamp, stamp))
        picture.save(tmp_path / name)
        return Member(file_id, str(tmp_path / name), "perceptual", 1.0, width=512, height=512,
                      size=(tmp_path / name).stat().st_size, format="PNG", grayscale=gray)

    faint = png("z_faint.png", 1, (100, 105, 110), 0)      # spread 10: colour, but not clear
    clear = png("z_clear.png", 2, (100, 115, 130), 0)      # spread 30: exactly clear
    grey = png("a_grey.png", 3, (100, 101, 102), 1)        # spread 2: exactly no colour
    tinted = png("a_tinted.png", 4, (100, 101, 103), 1)    # spread 3: some colour left
    stamped = png("a_stamped.png", 5, (100, 100, 100), 1, stamp=30)   # 0.34% of the pixels: colour
    speck = png("a_speck.png", 6, (100, 100, 100), 1, stamp=15)      # 0.09%: no clear colour
    colour = "colour (others are grayscale copies)"
    assert keeper.SPARSE_COLOUR == 0.1
    assert keeper_of(faint, grey, rules="colour") == (1, colour)
    assert keeper_of(clear, tinted, rules="colour") == (2, colour)
    assert keeper_of(faint, tinted, rules="colour") == (4, "all else equal: first by path")
    assert keeper_of(faint, stamped, rules="colour") == (5, "all else equal: first by path")
    assert keeper_of(faint, speck, rules="colour") == (1, colour)


def test_a_frame_s_content_may_hold_exactly_nine_tenths_to_one_and_two_hundredths_of_the_canvas():
    # the photo trims its own flat background (bordered itself); the frame copy's margins differ between the
    # axes (no "one margin all round"), so only its content's share of the photo's canvas explains its border:
    # 570 x 576 = 328,320 = 0.9 x 600 x 608, and 605 x 612 = 370,260 = 1.02 x 600 x 605 (same shape to 0.5%)
    photo = member(1, w=600, h=608, content=(500, 508), path="/z")
    at_least = member(2, w=670, h=596, content=(570, 576), path="/a")
    assert keeper_of(photo, at_least, rules="no-border") == (1, "no added border")
    photo = member(1, w=600, h=605, content=(500, 505), path="/z")
    at_most = member(2, w=705, h=622, content=(605, 612), path="/a")
    assert keeper_of(photo, at_most, rules="no-border") == (1, "no added border")


def test_a_lossy_copy_s_ringing_counts_only_on_its_trimmed_sides():
    # a JPEG with a border above and below only (content 1000 x 700 of 1000 x 800) against a PNG of
    # 1000 x 655: without RINGING_PX on its two trimmed sides the JPEG has 1000 x 668 = 668,000 pixels, more
    # than 655,000 x 1.01 = 661,550; its untrimmed width keeps its 16 px
    lossless = member(1, w=1000, h=655, fmt="PNG", path="/a")
    assert keeper_of(lossless, member(2, w=1000, h=800, content=(1000, 700), path="/z"), rules="resolution") == (
        2, "highest resolution (1000x700)")
    # the same turned: a border left and right only
    lossless = member(1, w=655, h=1000, fmt="PNG", path="/a")
    assert keeper_of(lossless, member(2, w=800, h=1000, content=(700, 1000), path="/z"), rules="resolution") == (
        2, "highest resolution (700x1000)")


def test_notes_name_an_unknown_format_and_size():
    choice = choose([member(1, fmt=None, path="/a"), member(2, path="/z")], rules="camera-format")
    assert choice.notes == {1: "an export (unknown format); the group has the camera format JPEG"}
    choice = choose([member(1, fmt=None, path="/a"), member(2, fmt="PNG", path="/z")], rules="lossless")
    assert choice.notes == {1: "a lossy copy (unknown format) of the lossless PNG"}
    choice = choose([member(1, size=None, path="/a"), member(2, size=5, path="/z")], rules="size")
    assert choice.notes == {1: "a smaller file of the same format and resolution (0 B against 5 B)"}


def test_a_file_of_unknown_modification_time_counts_as_modified_at_the_epoch():
    assert keeper_of(member(1, mtime=0, path="/z"), member(2, mtime=None, path="/a"), rules="oldest") == (
        2, "all else equal: first by path")
    assert keeper_of(member(1, mtime=1, path="/a"), member(2, mtime=None, path="/z"), rules="oldest") == (
        2, "oldest file (modified first)")


def test_a_margin_all_round_is_a_frame_only_when_its_content_fits_the_photo():
    # one margin of 100 px all round the photo's 1000 x 1000 canvas, but content 100 px wider (or taller)
    # than the photo, more than BORDER_MIN_SHARE: picture the photo lacks, no frame around it; both stay
    photo = member(1, w=1000, h=1000, path="/z")
    wider = member(2, w=1200, h=1200, content=(1100, 1000), path="/a")
    assert keeper_of(photo, wider, rules="no-border") == (2, "all else equal: first by path")
    taller = member(2, w=1200, h=1200, content=(1000, 1100), path="/a")
    assert keeper_of(photo, taller, rules="no-border") == (2, "all else equal: first by path")
    fits = member(2, w=1200, h=1200, content=(1020, 1020), path="/a")  # at 1 + BORDER_MIN_SHARE: a frame
    assert keeper_of(member(1, w=1000, h=1000, content=(900, 900), path="/z"), fits, rules="no-border") == (
        1, "no added border")


def test_the_frame_rules_at_their_upper_edges():
    # a photo without a border explains a bordered copy whose content is at most 1 + BORDER_MIN_SHARE of its
    # own (1020 x 1000 = 1.02 x 1000 x 1000; margins 200 and 100 px: no margin all round; shape 2% off)
    photo = member(1, w=1000, h=1000, path="/z")
    assert keeper_of(photo, member(2, w=1200, h=1100, content=(1020, 1000), path="/a"), rules="no-border") == (
        1, "no added border")
    # content beyond 1.02 of a bordered photo's canvas: 611 x 618 = 377,598 > 370,260 = 1.02 x 600 x 605
    photo = member(1, w=600, h=605, content=(500, 505), path="/z")
    beyond = member(2, w=711, h=628, content=(611, 618), path="/a")
    assert keeper_of(photo, beyond, rules="no-border") == (2, "all else equal: first by path")


def test_a_lossless_file_with_a_width_and_no_height_is_no_graphic():
    assert not is_graphic(Member(1, "/p", "exact", 1.0, format="PNG", width=10, size=1))


def test_provenance_reads_a_file_again_when_its_size_or_modification_time_changed(tmp_path):
    # (--seed 7) the findings are cached by path, size and modification time: b.jpg, first a re-save of
    # a.jpg, then another picture of the same byte size (a new time), then of another size (the same time)
    photo((480, 360)).save(tmp_path / "z_a.jpg", quality=75)
    b = tmp_path / "b.jpg"

    def write(picture, size=None, mtime_ns=None):
        picture.save(b, quality=90)
        if size is not None:
            assert b.stat().st_size <= size
            with open(b, "ab") as out:
                out.write(b"\0" * (size - b.stat().st_size))  # after the JPEG's end: not read
        if mtime_ns is not None:
            os.utime(b, ns=(mtime_ns, mtime_ns))

    def keeper():
        members = [Member(n, str(tmp_path / name), "perceptual", 1.0, width=480, height=360, format="JPEG",
                          size=(tmp_path / name).stat().st_size, mtime_ns=(tmp_path / name).stat().st_mtime_ns,
                          jpeg_quality=quality, md5=name)
                   for n, name, quality in ((1, "z_a.jpg", 75), (2, "b.jpg", 90))]
        return keeper_of(*members, rules="provenance")

    write(decoded(tmp_path / "z_a.jpg"), size=120_000, mtime_ns=10**18)
    assert keeper() == (1, "not made from another file's pixels")
    write(photo((480, 360), seed=1), size=120_000, mtime_ns=2 * 10**18)  # same size, a new time
    assert keeper() == (2, "all else equal: first by path")
    write(decoded(tmp_path / "z_a.jpg"), size=121_000, mtime_ns=2 * 10**18)  # another size, the same time
    assert keeper() == (1, "not made from another file's pixels")


def test_a_copy_exactly_one_percent_larger_is_the_same_resolution():
    """``RESOLUTION_TOLERANCE`` is inclusive: 1010 x 1000 against 1000 x 1000 (1% more pixels, exactly) is the
    same resolution, and the larger file is kept; 1011 x 1000 is higher resolution."""
    assert keeper_of(member(1, w=1010, h=1000, size=400_000), member(2, w=1000, h=1000, size=500_000)) == \
        (2, "largest file of its format and resolution (500.0 KB)")
    assert keeper_of(member(1, w=1011, h=1000, size=400_000), member(2, w=1000, h=1000, size=500_000)) == \
        (1, "highest resolution (1011x1000)")
