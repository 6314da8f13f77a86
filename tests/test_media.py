"""Videos, Live Photos, motion photos and sidecars through the real scan, group, apply and undo (CLI),
kills between the halves of an item included. Every fixture is generated here (PyAV, PIL)."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from photodedup import media
from photodedup.catalog import Catalog
from photodedup.duplicate_groups import current_groups, decisions
from photodedup.moves import file_md5
from photodedup.report import write_report
from tests.helpers import run_cli, write_photo

LIVE_ID = "6F9A2B3C-1111-4A2B-9C3D-0123456789AB"


def write_video(path: Path, *, shade: int = 0, size=(64, 48), frames: int = 10, content_id: str | None = None,
                apple_date: str | None = None, creation: str | None = None) -> Path:
    """A short MPEG-4 video (MOV or MP4 by the suffix) with QuickTime metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", options={"movflags": "use_metadata_tags"}) as out:
        for key, value in (("com.apple.quicktime.content.identifier", content_id),
                           ("com.apple.quicktime.creationdate", apple_date), ("creation_time", creation)):
            if value:
                out.metadata[key] = value
        stream = out.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], "yuv420p"
        for i in range(frames):
            pixels = np.full((size[1], size[0], 3), (shade + i * 20) % 256, np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def apple_exif(content_id: str) -> Image.Exif:
    """EXIF with an Apple MakerNote holding a Live Photo content identifier (tag 0x11)."""
    text = content_id.encode() + b"\x00"
    entries = 1
    data_at = 16 + 12 * entries + 4
    note = (b"Apple iOS\x00" + b"\x00\x01" + b"MM" + entries.to_bytes(2, "big")
            + (0x11).to_bytes(2, "big") + (2).to_bytes(2, "big") + len(text).to_bytes(4, "big")
            + data_at.to_bytes(4, "big") + b"\x00\x00\x00\x00" + text)
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 12"
    exif.get_ifd(0x8769).update({0x9003: "2021:06:01 10:00:00", 0x9291: "250", 0x9011: "+02:00", 0x927C: note})
    return exif


def rows(catalog: Path) -> dict[str, sqlite3.Row]:
    with sqlite3.connect(catalog) as conn:
        conn.row_factory = sqlite3.Row
        return {Path(r["path"]).name if "/b/" not in r["path"] else "b/" + Path(r["path"]).name: r
                for r in conn.execute("SELECT * FROM files")}


def test_videos_are_recorded_and_exact_copies_grouped(tmp_path):
    root = tmp_path / "lib"
    write_video(root / "clip.mov", content_id=LIVE_ID, apple_date="2021-06-01T10:00:00+0200",
                creation="2021-06-01T08:00:00.000000Z")
    shutil.copyfile(root / "clip.mov", root / "copy of clip.mov")
    write_video(root / "other.mp4", shade=128, size=(96, 64), frames=20, creation="2020-02-03T04:05:06.000000Z")
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 40)
    catalog = tmp_path / "c.db"
    scanned = run_cli("scan", root, "--catalog", catalog, "--json")
    assert scanned.returncode == 0, scanned.stderr
    got = rows(catalog)
    assert {n: (r["status"], r["kind"], r["format"], r["width"], r["height"], r["duration"], r["taken_at"])
            for n, r in got.items() if n != "broken.mp4"} == {
        "clip.mov": ("ok", "video", "MOV", 64, 48, 1.0, "2021-06-01T10:00:00+02:00"),
        "copy of clip.mov": ("ok", "video", "MOV", 64, 48, 1.0, "2021-06-01T10:00:00+02:00"),
        "other.mp4": ("ok", "video", "MP4", 96, 64, 2.0, "2020-02-03T04:05:06+00:00")}
    assert got["clip.mov"]["content_id"] == LIVE_ID
    assert (got["broken.mp4"]["status"], got["broken.mp4"]["error_kind"]) == ("error", "corrupt")
    grouped = run_cli("group", "--catalog", catalog, "--json")
    assert grouped.returncode == 0, grouped.stderr
    result = json.loads(grouped.stdout)
    assert [sorted(Path(m["path"]).name for m in g["members"]) for g in result["groups"]] == \
        [["clip.mov", "copy of clip.mov"]]
    assert result["groups"][0]["kind"] == "exact"


def live_library(tmp_path: Path) -> dict:
    """Folder a/ and its copy b/: an iPhone Live Photo (JPEG + MOV, one content id), its Lightroom
    .xmp, its Apple .aae edits and (in b/ only) a Google Takeout .json; plus a lone JPEG in a/."""
    root = tmp_path / "lib"
    still = write_photo(root / "a" / "IMG_0001.JPG", size=(400, 300), exif=apple_exif(LIVE_ID), pattern=1)
    write_video(root / "a" / "IMG_0001.MOV", content_id=LIVE_ID, apple_date="2021-06-01T10:00:00+0200")
    (root / "a" / "IMG_0001.JPG.xmp").write_text('<x:xmpmeta xmlns:x="adobe:ns:meta/"/>')
    (root / "a" / "IMG_0001.AAE").write_text('<?xml version="1.0"?><plist version="1.0"><dict/></plist>')
    write_photo(root / "a" / "IMG_0002.JPG", size=(300, 300), color=(10, 200, 90), pattern=4)
    shutil.copytree(root / "a", root / "b")
    (root / "b" / "IMG_0002.JPG").unlink()
    (root / "b" / "IMG_0001.JPG.supplemental-metadata.json").write_text(
        json.dumps({"title": "IMG_0001.JPG", "photoTakenTime": {"timestamp": "1622534400"}}))
    catalog = tmp_path / "c.db"
    assert run_cli("scan", root, "--catalog", catalog, "-q").returncode == 0
    grouped = run_cli("group", "--catalog", catalog, "--json")
    assert grouped.returncode == 0, grouped.stderr
    assert still.exists()
    return {"root": root, "catalog": catalog, "trash": tmp_path / "trash", "groups": json.loads(grouped.stdout)}


B_ITEM = ["IMG_0001.AAE", "IMG_0001.JPG", "IMG_0001.JPG.supplemental-metadata.json", "IMG_0001.JPG.xmp",
          "IMG_0001.MOV"]


def test_a_live_photo_and_its_sidecars_are_one_item(tmp_path):
    lib = live_library(tmp_path)
    (group,) = lib["groups"]["groups"]
    assert sorted(Path(m["path"]).parent.name + "/" + Path(m["path"]).name for m in group["members"]) == \
        ["a/IMG_0001.JPG", "b/IMG_0001.JPG"]  # the two MOVs are not a group of their own
    with Catalog(lib["catalog"]) as cat:
        (stored,) = current_groups(cat)
        travel = {Path(m.path).parent.name: sorted((Path(c.path).name, c.evidence) for c in m.companions)
                  for m in stored.members}
        report = write_report([stored], tmp_path / "r.html", catalog=cat).read_text()
    assert report.count("<b>Live Photo + sidecars</b>, kept or trashed together") == 2
    assert "RAW+JPEG" not in report
    assert travel == {
        "a": [("IMG_0001.AAE", "sidecar"), ("IMG_0001.JPG.xmp", "sidecar"), ("IMG_0001.MOV", "live")],
        "b": [("IMG_0001.AAE", "sidecar"), ("IMG_0001.JPG.supplemental-metadata.json", "sidecar"),
              ("IMG_0001.JPG.xmp", "sidecar"), ("IMG_0001.MOV", "live")]}
    got = rows(lib["catalog"])
    assert got["IMG_0001.JPG"]["content_id"] == LIVE_ID == got["IMG_0001.MOV"]["content_id"]
    assert got["IMG_0001.JPG"]["taken_at"] == "2021-06-01T10:00:00.250+02:00"  # its own time, not Takeout's
    assert "IMG_0002.JPG" in got and got["IMG_0002.JPG"]["kind"] == "image"


def _decide_keep_a(lib: dict) -> None:
    with Catalog(lib["catalog"]) as cat:
        (g,) = current_groups(cat)
        keep = next(m for m in g.members if "/a/" in m.path)
        decisions.keep_one(cat, g.id, keep.file_id)


def _state(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): file_md5(p) for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("kill", [None, "moved:1", "linked:3", "begun:5"])
def test_apply_moves_the_whole_item_and_undo_brings_it_back(tmp_path, kill):
    lib = live_library(tmp_path)
    before = _state(lib["root"])
    _decide_keep_a(lib)
    args = ("--catalog", str(lib["catalog"]), "--trash-dir", str(lib["trash"]))
    env = {"PHOTODEDUP_TEST_APPLY_COPY": "1"} if kill == "linked:3" else {}
    if kill:
        killed = run_cli("apply", *args, env=env | {"PHOTODEDUP_TEST_APPLY_KILL": kill})
        assert killed.returncode == -9, killed.stderr
        left = sorted(p.name for p in (lib["root"] / "b").iterdir())
        assert 0 < len(left) <= len(B_ITEM)  # killed between the halves of the item
    applied = run_cli("apply", *args, "--json", env=env)
    assert applied.returncode == 0, applied.stderr
    assert not (lib["root"] / "b").exists() or not list((lib["root"] / "b").iterdir())
    trashed = sorted(p.name for p in lib["trash"].rglob("*") if p.is_file() and "/lib/b/" in str(p))
    assert trashed == B_ITEM
    assert all(p.is_file() for p in (lib["root"] / "a").iterdir())
    with Catalog(lib["catalog"]) as cat:
        statuses = {Path(r["path"]).name: r["status"] for r in cat.files(status=None) if "/b/" in r["path"]}
    assert statuses == dict.fromkeys(B_ITEM, "missing")

    if kill:  # and a kill during the undo too
        killed = run_cli("undo", *args, str(lib["root"] / "b" / "IMG_0001.JPG"), env={"PHOTODEDUP_TEST_APPLY_KILL":
                                                                                       "moved:2"})
        assert killed.returncode == -9
    undone = run_cli("undo", *args, str(lib["root"] / "b" / "IMG_0001.JPG"), "--json")  # name the lead only
    assert undone.returncode == 0, undone.stderr
    assert _state(lib["root"]) == before
    with Catalog(lib["catalog"]) as cat:
        assert {r["status"] for r in cat.files(status=None)} == {"ok"}


def test_a_changed_sidecar_keeps_the_whole_item(tmp_path):
    lib = live_library(tmp_path)
    _decide_keep_a(lib)
    (lib["root"] / "b" / "IMG_0001.JPG.xmp").write_text("edited later in Lightroom")
    applied = run_cli("apply", "--catalog", lib["catalog"], "--trash-dir", lib["trash"], "--json")
    assert applied.returncode == 0, applied.stderr
    result = json.loads(applied.stdout)
    assert result["moved"] == []
    assert result["skipped"] == [{"path": str(lib["root"] / "b" / "IMG_0001.JPG"),
                                  "reason": f"its sidecar {lib['root'] / 'b' / 'IMG_0001.JPG.xmp'}: changed since "
                                            "the scan (md5 differs); scan again"}]


def test_takeout_time_and_motion_photos(tmp_path):
    root = tmp_path / "lib"
    write_photo(root / "no-exif.jpg", pattern=1)
    (root / "no-exif.j.json").write_text(json.dumps({"photoTakenTime": {"timestamp": "1577880000"}}))
    google = write_photo(root / "PXL_1.MP.jpg", pattern=2)
    Image.open(google).save(google, "JPEG", xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description '
                            b'xmlns:GCamera="http://ns.google.com/photos/1.0/camera/" GCamera:MicroVideo="1" '
                            b'GCamera:MicroVideoOffset="1234"/></x:xmpmeta>')
    samsung = write_photo(root / "20210601_100000.jpg", pattern=3)
    video = write_video(tmp_path / "inside.mp4")
    with open(samsung, "ab") as handle:  # Samsung's trailer: the video, then its SEF directory
        handle.write(b"\x00\x00\x30\x0a\x10\x00\x00\x00MotionPhoto_Data" + video.read_bytes()
                     + b"SEFH\x6b\x00\x00\x00\x01\x00\x00\x00" + b"\x00" * 12 + b"\x20\x00\x00\x00SEFT")
    write_photo(root / "plain.jpg", pattern=4)
    (root / "notes.json").write_text("{}")  # beside no photo of that name: not recorded
    catalog = tmp_path / "c.db"
    assert run_cli("scan", root, "--catalog", catalog, "-q").returncode == 0
    got = rows(catalog)
    assert {n: (r["kind"], r["motion"], r["taken_at"]) for n, r in got.items()} == {
        "no-exif.jpg": ("image", None, "2020-01-01T12:00:00+00:00"),
        "no-exif.j.json": ("sidecar", None, None),
        "PXL_1.MP.jpg": ("image", "google", None),
        "20210601_100000.jpg": ("image", "samsung", None),
        "plain.jpg": ("image", None, None)}
    shutil.copyfile(google, root / "copy of PXL_1.MP.jpg")
    assert run_cli("scan", root, "--catalog", catalog, "-q").returncode == 0
    grouped = run_cli("group", "--catalog", catalog, "--evidence", "exact", "--json", "--html", tmp_path / "r.html")
    assert grouped.returncode == 0, grouped.stderr
    (group,) = json.loads(grouped.stdout)["groups"]
    assert sorted((Path(m["path"]).name, m.get("motion")) for m in group["members"]) == [
        ("PXL_1.MP.jpg", "google"), ("copy of PXL_1.MP.jpg", "google")]
    assert (tmp_path / "r.html").read_text().count("JPEG, motion photo (google: a video inside)") == 2


@pytest.mark.parametrize(("sidecar", "owner"), [
    ("IMG_1.xmp", "IMG_1.CR2"), ("IMG_1.jpg.xmp", "IMG_1.jpg"), ("img_1.XMP", "IMG_1.CR2"), ("IMG_1.AAE", "IMG_1.CR2"),
    ("IMG_1.jpg.json", "IMG_1.jpg"), ("IMG_1.j.json", "IMG_1.jpg"),
    ("IMG_1.jpg.supplemental-metadata.json", "IMG_1.jpg"),
    ("IMG_1.jpg.supplemental-me.json", "IMG_1.jpg"), ("IMG_1.jpg(1).json", "IMG_1(1).jpg"),
    ("IMG_1.jpg.supplemental-metadata(1).json", "IMG_1(1).jpg"), ("IMG_1.json", None), ("metadata.json", None),
    ("IMG_3.xmp", None), ("IMG_2.mov.xmp", "IMG_2.mov"),
    ("a_very_long_file_name_from_a_phone_gallery_2021.json", "a_very_long_file_name_from_a_phone_gallery_2021_06.jpg"),
])
def test_which_photo_a_sidecar_describes(sidecar, owner):
    names = ["IMG_1.jpg", "IMG_1.CR2", "IMG_1(1).jpg", "IMG_2.mov", "metadata_photo.jpg",
             "a_very_long_file_name_from_a_phone_gallery_2021_06.jpg"]
    assert media.sidecar_owner(sidecar, names) == owner


def test_live_photo_pairs_follow_the_content_identifier(tmp_path):
    """HEIC stills: the same stem pairs unless the identifiers differ; one identifier ties two names."""
    from pillow_heif import register_heif_opener

    register_heif_opener()
    root = tmp_path / "lib"
    other = "0B1C2D3E-2222-4A2B-9C3D-0123456789AB"
    for number, (still_id, video_name, video_id) in enumerate([
            (LIVE_ID, "IMG_0003.MOV", LIVE_ID),       # a Live Photo
            (LIVE_ID, "IMG_0004.MOV", other.replace("0B", "0C")),  # same stem, two shots (the counter wrapped)
            (other, "IMG_E0005.MOV", other)], 3):     # another name, one identifier
        write_photo(root / f"IMG_{number:04d}.HEIC", fmt="HEIF", exif=apple_exif(still_id), pattern=number)
        write_video(root / video_name, shade=number * 40, content_id=video_id)
    catalog = tmp_path / "c.db"
    assert run_cli("scan", root, "--catalog", catalog, "-q").returncode == 0
    with Catalog(catalog) as cat:
        names = {r["id"]: Path(r["path"]).name for r in cat.files(status=None)}
        assert sorted((names[lead], names[f], kind) for f, lead, kind in cat.companions()) == [
            ("IMG_0003.HEIC", "IMG_0003.MOV", "live"), ("IMG_0005.HEIC", "IMG_E0005.MOV", "live")]
        assert {names[r["id"]]: r["content_id"] for r in cat.files() if r["format"] == "HEIF"} == {
            "IMG_0003.HEIC": LIVE_ID, "IMG_0004.HEIC": LIVE_ID, "IMG_0005.HEIC": other}


def test_a_live_photo_whose_still_has_a_hard_link_keeps_its_video(tmp_path):
    """Found by benchmarks/chaos.py: the still's hard link (first by path) stood for the file in grouping, the
    video lost its lead and became a member of its own, grouped with its exact copy, and apply trashed the
    video alone, leaving the Live Photo's still without it."""
    root = tmp_path / "lib"
    still = write_photo(root / "p.jpg", size=(400, 300), pattern=1)
    write_video(root / "p.mov", shade=40)
    (root / "a").mkdir()
    os.link(still, root / "a" / "p_link.jpg")  # first by path: it stands for the file p.jpg in grouping
    (root / "copy").mkdir()
    shutil.copyfile(still, root / "copy" / "p.jpg")
    shutil.copyfile(root / "p.mov", root / "copy" / "p.mov")
    catalog, trash = tmp_path / "c.db", tmp_path / "trash"
    assert run_cli("scan", root, "--catalog", catalog, "-q").returncode == 0
    grouped = run_cli("group", "--catalog", catalog, "--json")
    assert grouped.returncode == 0, grouped.stderr
    (group,) = json.loads(grouped.stdout)["groups"]
    assert sorted((m["path"], [c["path"] for c in m["companions"]]) for m in group["members"]) == [
        (str(root / "a" / "p_link.jpg"), [str(root / "p.mov")]),
        (str(root / "copy" / "p.jpg"), [str(root / "copy" / "p.mov")])]
    with Catalog(catalog) as cat:
        decisions.accept_suggestions(cat, [g.id for g in current_groups(cat)])
    applied = run_cli("apply", "--catalog", catalog, "--trash-dir", trash, "--json")
    assert applied.returncode == 0, applied.stderr
    assert sorted(p.name for p in root.iterdir() if p.is_file()) == ["p.jpg", "p.mov"]


def test_a_scan_between_a_kill_and_the_next_apply_keeps_the_item_together(tmp_path):
    """Found by benchmarks/chaos.py: apply was killed after the still's move was journaled, before the catalog
    heard of it; a scan then found the still gone (missing, not "in the trash") and its video and sidecars
    lost their lead, so the next apply, catching the catalog up, left them in the library without it."""
    lib = live_library(tmp_path)
    _decide_keep_a(lib)
    args = ("--catalog", str(lib["catalog"]), "--trash-dir", str(lib["trash"]))
    killed = run_cli("apply", *args, env={"PHOTODEDUP_TEST_APPLY_KILL": "journaled:2"})
    assert killed.returncode == -9, killed.stderr
    assert sorted(p.name for p in (lib["root"] / "b").iterdir()) == B_ITEM[2:]  # the .AAE, then the still moved
    assert run_cli("scan", lib["root"], *args[:2], "-q").returncode == 0
    applied = run_cli("apply", *args, "--json")
    assert applied.returncode == 0, applied.stderr
    assert list((lib["root"] / "b").iterdir()) == []
    undone = run_cli("undo", *args, str(lib["root"] / "b"), "--json")
    assert undone.returncode == 0, undone.stderr
    assert sorted(p.name for p in (lib["root"] / "b").iterdir()) == B_ITEM
