"""The keeper's rules (photodedup/keeper.py) at their edges: each threshold admits its value, each rule
decides only what it names, missing measurements count as nothing. Unit level on ``choose`` and the
rule helpers: what ``benchmarks/mutate.py --module keeper`` runs first."""

from __future__ import annotations

import os

import pytest

from photodedup import keeper
from photodedup.duplicate_groups import Member
from photodedup.errors import BadInputError
from photodedup.keeper import (
    bordered,
    choose,
    content_size,
    expand_rules,
    human_size,
    human_sizes,
    in_folders,
    is_graphic,
    reference_folders,
)


def member(file_id, w=4000, h=3000, size=5_000_000, fmt="JPEG", camera="Canon EOS R6", taken="2021-06-01T10:00:00",
           content=None, gray=0, mtime=0, path=None, quality=None, mark=None, companions=()) -> Member:
    cw, ch = content or (w, h)
    return Member(file_id, path or f"/p/{file_id}", "perceptual", 1.0, width=w, height=h, size=size, format=fmt,
                  camera=camera, taken_at=taken, content_width=cw, content_height=ch, grayscale=gray, mtime_ns=mtime,
                  jpeg_quality=quality, added_mark=mark, companions=list(companions))


def keeper_of(*members, rules=keeper.DEFAULT_RULES) -> tuple[int, str]:
    choice = choose(list(members), rules=rules)
    return choice.keeper, choice.reason


def test_the_documented_thresholds():
    assert (keeper.GRAPHIC_MAX_BYTES_PER_PIXEL, keeper.QUALITY_MARGIN, keeper.BORDER_MIN_SHARE,
            keeper.ASPECT_TOLERANCE, keeper.FRAMED_MIN_SHARE, keeper.RESOLUTION_TOLERANCE, keeper.RINGING_PX) == (
        0.5, 5, 0.02, 0.005, 0.9, 0.01, 16)


def test_rule_lists_skip_blanks_and_an_empty_list_is_an_error():
    assert expand_rules(" Resolution, ,oldest,") == ("resolution", "oldest")
    assert expand_rules(["size"]) == ("size",)
    with pytest.raises(BadInputError, match="no keeper rules given"):
        expand_rules(" , ")


def test_reference_folders_are_resolved_deduplicated_and_must_exist(tmp_path):
    (tmp_path / "a").mkdir()
    assert reference_folders([tmp_path / "a", str(tmp_path / "a" / ".")]) == (str(tmp_path / "a"),)
    with pytest.raises(BadInputError, match="no such folder"):
        reference_folders([tmp_path / "missing"])


def test_in_folders_is_the_folder_itself_or_below_it():
    assert in_folders("/archive", ["/archive"])
    assert in_folders("/archive/x.jpg", ["/archive"])
    assert in_folders("/archive/x.jpg", ["/archive" + os.sep])
    assert not in_folders("/archive2/x.jpg", ["/archive"])
    assert not in_folders("/other/x.jpg", ["/archive", "/b"])


def test_a_group_of_one_needs_no_rule_and_ties_name_every_other_member():
    assert choose([member(7)]) == keeper.Choice(7, "", {})
    choice = choose([member(3, path="/c"), member(1, path="/a"), member(2, path="/b")])
    assert (choice.keeper, choice.reason) == (1, "all else equal: first by path")
    assert choice.notes == {2: "equal to the keeper by every rule (the keeper comes first by path)",
                            3: "equal to the keeper by every rule (the keeper comes first by path)"}


def test_a_rule_that_drops_no_one_is_not_named():
    choice = choose([member(1, size=6_000_000), member(2, size=5_000_000)], rules="resolution,size,oldest")
    assert (choice.keeper, choice.reason, choice.notes) == (
        1, "largest file of its format and resolution (6.0 MB)",
        {2: "a smaller file of the same format and resolution (5.0 MB against 6.0 MB)"})


def test_the_note_names_a_winner_that_beats_the_member():
    # three sizes: the smallest is noted against the one that beats it (any winner does: here the keeper)
    choice = choose([member(1, size=3_000_000), member(2, size=2_000_000), member(3, size=1_000_000)],
                    rules="size")
    assert choice.keeper == 1
    assert choice.notes == {2: "a smaller file of the same format and resolution (2.0 MB against 3.0 MB)",
                            3: "a smaller file of the same format and resolution (1.0 MB against 3.0 MB)"}


def test_the_raw_jpeg_pair_wins_over_a_single_file():
    jpeg = member(3, path="/p/IMG_1.jpg")
    jpeg.evidence = "pair"
    pair = member(2, fmt="DNG", path="/p/IMG_1.dng", companions=[jpeg])
    sidecar = member(4, path="/p/IMG_2.xmp")
    sidecar.evidence = "sidecar"
    single = member(1, size=9_000_000, path="/a/IMG_1.jpg", companions=[sidecar])
    choice = choose([single, pair])
    assert (choice.keeper, choice.reason) == (2, "the camera's RAW+JPEG pair")
    assert choice.notes == {1: "a single file; the group has the camera's RAW+JPEG pair"}


def test_a_member_with_no_mark_measured_is_clean_and_a_mark_without_words_is_named_plainly():
    choice = choose([member(1, mark=True, path="/a"), member(2, mark=None)])
    assert (choice.keeper, choice.reason, choice.notes) == (2, "no added watermark or logo",
                                                            {1: "an added watermark or logo"})
    choice = choose([member(1, mark="lower right, 3% of the picture", path="/a"), member(2)])
    assert choice.notes == {1: "an added watermark or logo (lower right, 3% of the picture)"}


def test_a_grayscale_member_loses_only_to_a_colour_one_unmeasured_counts_as_colour():
    assert keeper_of(member(1, gray=1, path="/a"), member(2, gray=None))[0] == 2
    assert keeper_of(member(1, gray=1, path="/a"), member(2, gray=1, size=1))[0] == 1  # both gray: size decides


@pytest.mark.parametrize("size, expected", [
    ((4000, 3000, 4000, 3000), False),
    ((4000, 3000, 3920, 3000), False),   # 80 px is 2.0% of the width: the photo's own edge
    ((4000, 3000, 3919, 3000), True),    # one more is a border
    ((4000, 3000, 4000, 2940), False),   # 60 px of the height: 2.0%
    ((4000, 3000, 4000, 2939), True),
    ((4000, 3000, None, 3000), False),   # not measured
    ((None, 3000, 3000, 2000), False),
    ((4000, None, 3000, 2000), False),
    ((4000, 3000, 3000, None), False),
])
def test_a_border_is_wider_than_two_percent_of_the_canvas(size, expected):
    w, h, cw, ch = size
    m = Member(1, "/p", "exact", 1.0, width=w, height=h, content_width=cw, content_height=ch)
    assert bordered(m) is expected


def test_content_size_is_the_content_inside_a_border_else_the_canvas():
    assert content_size(member(1, w=4200, h=3200, content=(4000, 3000))) == (4000, 3000)
    assert content_size(member(1, w=4000, h=3000, content=(3990, 2990))) == (4000, 3000)
    assert content_size(Member(1, "/p", "exact", 1.0)) == (0, 0)
    assert content_size(Member(1, "/p", "exact", 1.0, width=10)) == (10, 0)
    assert content_size(Member(1, "/p", "exact", 1.0, height=10)) == (0, 10)


def test_a_bordered_copy_loses_to_the_unbordered_one_of_the_same_or_more_content():
    plain = member(1, w=4000, h=3000, path="/z")
    # content 2% more than the plain picture (trimming noise): still explained by it
    framed = member(2, w=4400, h=3300, content=(4039, 3030), path="/a")
    assert keeper_of(plain, framed) == (1, "no added border")
    # content 3% more: the plain one is a crop of it, the bordered one stays
    bigger = member(3, w=4400, h=3300, content=(4060, 3045), path="/a")
    assert keeper_of(plain, bigger, rules="no-border,oldest")[0] == 3


def test_a_frame_is_explained_only_by_a_canvas_of_its_content_s_shape_and_size():
    photo = member(1, w=2000, h=1000, content=(1800, 900), path="/z")  # its own flat edge trims as a border
    # content exactly 90% of the photo's canvas, its shape: a frame around it (margins unequal, so the
    # share decides, not a margin all round)
    at_90 = member(2, w=2100, h=1060, content=(1898, 949), path="/a")
    assert 1898 * 949 >= 0.9 * 2000 * 1000
    assert keeper_of(photo, at_90, rules="no-border,oldest") == (1, "no added border")
    below_90 = member(3, w=2100, h=1060, content=(1896, 948), path="/a")
    assert 1896 * 948 < 0.9 * 2000 * 1000
    assert keeper_of(photo, below_90, rules="no-border,oldest")[1] == "all else equal: first by path"
    # content exactly 2% over the canvas: still the frame; beyond: not
    at_102 = member(4, w=2300, h=1200, content=(2020, 1010), path="/a")
    assert 2020 * 1010 == 2000 * 1000 * 1.0201
    assert keeper_of(photo, at_102, rules="no-border,oldest")[1] == "all else equal: first by path"
    at_101 = member(5, w=2300, h=1200, content=(2010, 1005), path="/a")
    assert keeper_of(photo, at_101, rules="no-border,oldest") == (1, "no added border")
    # another shape (0.6% off the photo's aspect): not a frame around it
    other_shape = member(6, w=2300, h=1200, content=(2012, 1000), path="/a")
    assert keeper_of(photo, other_shape, rules="no-border,oldest")[1] == "all else equal: first by path"


def test_two_same_canvas_copies_do_not_explain_each_other_s_border():
    a = member(1, w=2000, h=1000, content=(1800, 900), path="/a")
    b = member(2, w=2000, h=1000, content=(1900, 950), path="/b")
    assert keeper_of(a, b, rules="no-border,oldest")[1] == "all else equal: first by path"
    # every member bordered and framed by another: nobody is dropped
    assert len(keeper._without_added_borders([a, b])) == 2


def test_a_lone_graphic_export_keeps_its_jpeg_copy_from_winning_on_format():
    screenshot = member(1, fmt="PNG", size=1_000_000, camera=None, quality=None, path="/b")  # 0.08 B/px
    jpeg = member(2, size=900_000, camera=None, quality=90, path="/a")
    assert keeper_of(screenshot, jpeg) == (1, "lossless (PNG) over a lossy copy")
    # a camera among them: the JPEG is the original after all
    with_camera = member(2, size=900_000, quality=90, path="/a")
    assert keeper_of(screenshot, with_camera) == (2, "camera format (JPEG) over an export")
    # an export that is not a graphic (a photograph's noise): the JPEG wins
    photo_png = member(1, fmt="PNG", size=30_000_000, camera=None, quality=None, path="/b")
    assert keeper_of(photo_png, jpeg) == (2, "camera format (JPEG) over an export")


@pytest.mark.parametrize("size, expected", [(5_999_999, True), (6_000_000, False), (0, True)])
def test_a_graphic_is_a_lossless_file_under_half_a_byte_a_pixel(size, expected):
    assert is_graphic(member(1, fmt="PNG", size=size)) is expected


def test_an_unmeasured_or_lossy_file_is_no_graphic():
    assert not is_graphic(member(1, fmt="JPEG", size=10))
    assert not is_graphic(Member(1, "/p", "exact", 1.0, format="PNG", size=10))
    assert not is_graphic(Member(1, "/p", "exact", 1.0, format="PNG", width=10, size=None, height=None))


def test_a_maximum_quality_resave_loses_to_any_file():
    assert keeper_of(member(1, quality=100, path="/a"), member(2, quality=None)) == (2, "not a maximum-quality re-save")


@pytest.mark.parametrize("qualities, keeper_id", [((90, 85), 1), ((90, 86), None), ((85, 90), 2)])
def test_quality_decides_from_a_margin_of_five(qualities, keeper_id):
    a = member(1, quality=qualities[0], path="/a")
    b = member(2, quality=qualities[1], path="/b")
    choice = choose([a, b], rules="quality")
    if keeper_id is None:
        assert (choice.keeper, choice.reason) == (1, "all else equal: first by path")
    else:
        assert choice.keeper == keeper_id and choice.reason.startswith("highest JPEG quality")


def test_quality_needs_both_qualities_and_the_same_resolution():
    assert keeper_of(member(1, quality=None, path="/a"), member(2, quality=95), rules="quality")[0] == 1
    assert keeper_of(member(1, quality=70, path="/a"), member(2, w=2000, h=1500, quality=95), rules="quality")[0] == 1


def test_resolution_counts_one_percent_as_noise_and_a_turned_canvas_as_equal():
    base = member(1, w=1000, h=1000, path="/b")
    assert keeper_of(base, member(2, w=1004, h=1005, path="/a"), rules="resolution")[1] == (
        "all else equal: first by path")  # 1.009x: noise
    assert keeper_of(base, member(2, w=1006, h=1005, path="/a"), rules="resolution") == (
        2, "highest resolution (1006x1005)")  # 1.011x
    turned = member(2, w=3000, h=4000, path="/a")
    assert keeper_of(member(1, path="/b"), turned, rules="resolution")[1] == "all else equal: first by path"
    # one side unknown: no canvas to compare, the content decides
    unknown = Member(2, "/a", "exact", 1.0, width=None, height=1000)
    assert keeper_of(base, unknown, rules="resolution") == (1, "highest resolution (1000x1000)")
    assert keeper_of(unknown, base, rules="resolution")[0] == 1


def test_a_lossy_copy_s_trimmed_content_counts_without_its_ringing_against_a_lossless_file():
    # a chart on white (content 600x400 in 700x500) and a JPEG crop of its margin whose ringing trims 632x432:
    # as large, lossless wins; 633 wide is more than the ringing
    png = member(1, w=700, h=500, content=(600, 400), size=50_000, fmt="PNG", camera=None, taken=None, path="/b")
    crop = member(2, w=672, h=480, content=(632, 432), camera=None, taken=None, quality=90, path="/a")
    assert keeper_of(png, crop) == (1, "lossless (PNG) over a lossy copy")
    wider = member(2, w=672, h=480, content=(640, 432), camera=None, taken=None, quality=90, path="/a")
    assert keeper_of(png, wider) == (2, "highest resolution (640x432)")
    # an axis the copy did not trim has no ringing to take off (its canvas is its content there)
    untrimmed = member(2, w=632, h=480, content=(632, 432), camera=None, taken=None, quality=90, path="/a")
    assert keeper_of(png, untrimmed) == (2, "highest resolution (632x432)")
    # between two lossy files, or with no border, the content counts as measured
    jpeg = member(1, w=700, h=500, content=(600, 400), camera=None, taken=None, quality=90, path="/b")
    assert keeper_of(jpeg, crop) == (2, "highest resolution (632x432)")
    assert keeper_of(member(1, w=600, h=400, size=50_000, fmt="PNG", camera=None, taken=None, path="/b"),
                     member(2, w=632, h=432, camera=None, taken=None, quality=90, path="/a")) == (
        2, "highest resolution (632x432)")


def test_lossless_wins_only_over_a_lossy_copy_of_the_same_resolution():
    png = member(1, fmt="PNG", camera=None, path="/b")
    assert keeper_of(png, member(2, path="/a"), rules="lossless") == (1, "lossless (PNG) over a lossy copy")
    assert keeper_of(png, member(2, fmt="BMP", path="/a"), rules="lossless")[0] == 2  # both lossless: a tie
    assert keeper_of(png, member(2, w=8000, h=6000, path="/a"), rules="lossless")[0] == 2
    choice = choose([png, member(2, fmt=None, path="/a")], rules="lossless")
    assert choice.notes == {2: "a lossy copy (unknown format) of the lossless PNG"}


def test_size_compares_only_the_same_format_in_any_case_and_missing_sizes_as_zero():
    assert keeper_of(member(1, fmt="jpeg", size=1, path="/a"), member(2, fmt="JPEG", size=2), rules="size")[0] == 2
    assert keeper_of(member(1, fmt=None, size=1, path="/a"), member(2, fmt=None, size=2), rules="size")[0] == 2
    assert keeper_of(member(1, size=None, path="/b"), member(2, size=1, path="/a"), rules="size")[0] == 2
    assert keeper_of(member(1, size=7, path="/a"), member(2, size=7), rules="size")[1] == (
        "all else equal: first by path")
    choice = choose([member(1, size=None, path="/b"), member(2, size=1, path="/a")], rules="size")
    assert choice.notes == {1: "a smaller file of the same format and resolution (0 B against 1 B)"}


def test_oldest_reads_capture_time_then_modification_time_missing_as_first():
    # an unknown modification time is no earlier than zero
    assert keeper_of(member(1, mtime=None, path="/b"), member(2, mtime=0, path="/a"), rules="oldest")[1] == (
        "all else equal: first by path")
    assert keeper_of(member(1, mtime=5, path="/a"), member(2, mtime=4), rules="oldest") == (
        2, "oldest file (modified first)")
    # the same capture time, modified later: the reason is the file's age, not a capture
    assert keeper_of(member(1, mtime=5, path="/a"), member(2, mtime=4), rules="oldest")[1] == (
        "oldest file (modified first)")
    choice = choose([member(1, taken=None, path="/a"), member(2, mtime=9)], rules="oldest")
    assert (choice.keeper, choice.reason, choice.notes) == (
        2, "oldest capture (taken 2021-06-01T10:00:00)", {1: "no capture time"})
    no_times = choose([member(1, taken=None, mtime=9, path="/a"), member(2, taken=None, mtime=1)], rules="oldest")
    assert (no_times.keeper, no_times.reason, no_times.notes) == (
        2, "oldest file (modified first)", {1: "modified later"})


def test_exif_words_and_the_exif_rule():
    only_time = member(2, camera=None, path="/a")
    choice = choose([member(1, path="/b"), only_time], rules="exif")
    assert (choice.keeper, choice.reason, choice.notes) == (
        1, "camera EXIF (Canon EOS R6, taken 2021-06-01T10:00:00)", {2: "less camera EXIF (taken 2021-06-01T10:00:00)"})


@pytest.mark.parametrize("size, shown", [(0, "0 B"), (999, "999 B"), (1000, "1.0 KB"), (999_999, "1000.0 KB"),
                                         (1_000_000, "1.0 MB"), (2_500_000_000, "2.5 GB"),
                                         (7_000_000_000_000, "7000.0 GB")])
def test_human_size(size, shown):
    assert human_size(size) == shown


def test_human_sizes_show_enough_digits_to_differ():
    assert human_sizes(4_310_000, 4_340_000) == ("4.31 MB", "4.34 MB")
    assert human_sizes(4_300_000, 4_300_000) == ("4.3 MB", "4.3 MB")
    assert human_sizes(1_000_001, 1_000_002) == ("1.000001 MB", "1.000002 MB")


def test_a_frame_s_content_may_be_exactly_90_to_102_percent_of_the_photo_s_canvas():
    # the photos trim their own flat edge (bordered themselves), so only the frame rule can explain the frame
    low = member(1, w=100, h=57, content=(90, 50), path="/z")
    assert keeper_of(low, member(2, w=105, h=60, content=(95, 54), path="/a"),  # 95*54 = 0.9 * 100*57
                     rules="no-border,oldest") == (1, "no added border")
    high = member(1, w=101, h=100, content=(95, 94), path="/z")
    assert keeper_of(high, member(2, w=110, h=109, content=(102, 101), path="/a"),  # 102*101 = 1.02 * 101*100
                     rules="no-border,oldest") == (1, "no added border")


def test_a_copy_on_the_same_canvas_never_explains_a_border():
    edge = member(1, w=2000, h=1000, content=(1940, 970), path="/a")  # its own flat edge trims 3%
    plain = member(2, w=2000, h=1000, path="/b")
    assert keeper_of(edge, plain, rules="no-border,oldest")[1] == "all else equal: first by path"


def test_a_file_modified_at_the_epoch_is_older_than_one_a_nanosecond_later():
    assert keeper_of(member(1, mtime=1, path="/a"), member(2, mtime=0, path="/b"), rules="oldest") == (
        2, "oldest file (modified first)")
