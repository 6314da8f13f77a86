"""Capture times: the priority of sources, sub-seconds and UTC offsets, checked through a real scan
against generated photos with known values, and against ExifTool on real camera and phone files."""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

import pytest
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from photodedup import capture_time, raw
from tests.helpers import REAL_FILES, run_cli, write_photo

REAL = REAL_FILES / "exiftool-t-images"


def _exif(original=None, subsec=None, offset=None, digitized=None, digitized_subsec=None, digitized_offset=None,
          modified=None, gps=None) -> Image.Exif:
    exif = Image.Exif()
    sub = exif.get_ifd(0x8769)
    for tag, value in ((0x9003, original), (0x9291, subsec), (0x9011, offset), (0x9004, digitized),
                       (0x9292, digitized_subsec), (0x9012, digitized_offset)):
        if value is not None:
            sub[tag] = value
    if modified:
        exif[0x0132] = modified
    if gps:
        date, (h, m, s) = gps
        exif.get_ifd(0x8825).update({0x001D: date, 0x0007: (IFDRational(h), IFDRational(m), s)})
    return exif


def _xmp(**values) -> bytes:
    attributes = " ".join(f'{name.replace("_", ":", 1)}="{value}"' for name, value in values.items())
    return (f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
            f'<rdf:Description xmlns:exif="http://ns.adobe.com/exif/1.0/" xmlns:xmp="http://ns.adobe.com/xap/1.0/" '
            f'xmlns:photoshop="http://ns.adobe.com/photoshop/1.0/" {attributes}/></rdf:RDF></x:xmpmeta>').encode()


# Generated photos: (name, exif, xmp, what the scan must record)
CASES = [
    ("original.jpg",
     _exif("2021:06:01 10:00:00", "123", "+02:00", "2021:06:01 10:00:05", modified="2024:01:01 09:00:00"),
     None, "2021-06-01T10:00:00.123+02:00"),
    ("burst-1.jpg", _exif("2021:06:01 10:00:00", "05"), None, "2021-06-01T10:00:00.05"),
    ("burst-2.jpg", _exif("2021:06:01 10:00:00", "55"), None, "2021-06-01T10:00:00.55"),
    ("negative-offset.jpg", _exif("2021:06:01 10:00:00", offset="-0530"), None, "2021-06-01T10:00:00-05:30"),
    ("digitized-only.jpg", _exif(digitized="2019:02:03 04:05:06", digitized_subsec="7", digitized_offset="+09:00"),
     None, "2019-02-03T04:05:06.7+09:00"),
    ("edited-only.jpg", _exif(modified="2024:01:01 09:00:00"), None, None),  # the last edit is not a capture time
    ("blank-original.jpg", _exif("    :  :     :  :  ", digitized="2019:02:03 04:05:06"), None, "2019-02-03T04:05:06"),
    ("xmp-original.jpg", None, _xmp(exif_DateTimeOriginal="2018-07-08T09:10:11.25-04:00",
                                    xmp_CreateDate="2018-07-09T00:00:00"), "2018-07-08T09:10:11.25-04:00"),
    ("xmp-create.jpg", None, _xmp(xmp_CreateDate="2018-07-09T01:02:03Z"), "2018-07-09T01:02:03+00:00"),
    ("xmp-date-only-then-gps.jpg", _exif(gps=("2017:10:03", (14, 58, IFDRational(1465, 100)))),
     _xmp(photoshop_DateCreated="2017-10-03"), "2017-10-03T14:58:14.65+00:00"),
    ("xmp-date-only.jpg", None, _xmp(photoshop_DateCreated="2017-10-03"), "2017-10-03"),
    ("gps-only.jpg", _exif(gps=("2016:09:28", (17, 17, IFDRational(58)))), None, "2016-09-28T17:17:58+00:00"),
]


def _catalog_times(catalog: Path) -> dict[str, str | None]:
    with sqlite3.connect(catalog) as conn:
        return {Path(p).name: t for p, t in conn.execute("SELECT path, taken_at FROM files")}


def test_scan_records_capture_time_by_priority_with_subseconds_and_offset(tmp_path):
    photos = tmp_path / "photos"
    for number, (name, exif, xmp, _) in enumerate(CASES):
        path = write_photo(photos / name, exif=exif, pattern=number)
        if xmp is not None:
            Image.open(path).save(path, "JPEG", exif=exif.tobytes() if exif is not None else b"", xmp=xmp)
    result = run_cli("scan", photos, "--catalog", tmp_path / "cat.db", "-q")
    assert result.returncode == 0, result.stderr
    assert _catalog_times(tmp_path / "cat.db") == {name: expected for name, _, _, expected in CASES}


def test_takeout_time_when_the_photo_has_none(tmp_path):
    assert capture_time.from_sources(None, takeout=None) is None
    (tmp_path / "a.json").write_text(json.dumps({"photoTakenTime": {"timestamp": "1577880000"}}))
    assert capture_time.from_sources(None, takeout=str(tmp_path / "a.json")) == "2020-01-01T12:00:00+00:00"
    # the photo's own time wins over the sidecar's
    assert capture_time.from_sources(_exif("2021:06:01 10:00:00"), takeout=str(tmp_path / "a.json")) == \
        "2021-06-01T10:00:00"


def test_seconds_apart_and_order_accept_the_richer_text():
    assert capture_time.seconds_apart("2021-06-01T10:00:00.25+02:00", "2021-06-01T10:00:00.75+02:00") == 0.5
    assert capture_time.seconds_apart("2021-06-01T10:00:00.25+02:00", "2021-06-01T10:00:01") == 0.75
    assert capture_time.seconds_apart("2021-06-01T10:00:00+02:00", "2021-06-01T09:00:00+01:00") == 0.0
    assert capture_time.seconds_apart(None, "2021-06-01T10:00:00") is None
    ordered = ["2021-06-01", "2021-06-01T10:00:00-05:00", "2021-06-01T10:00:00.05", "2021-06-01T10:00:00.5+02:00",
               "2021-06-01T10:00:01", None]
    assert sorted(reversed(ordered), key=capture_time.sort_key) == ordered


# -- ExifTool as the reference on real files -------------------------------------------------------------------
def _exiftool_time(tags: dict) -> str | None:
    """The capture time ExifTool's tags give, by the documented priority (ExifTool's own names)."""
    def iso(text, subsec=None, offset=None):
        return capture_time.normalise(str(text), subsec=None if subsec is None else str(subsec), offset=offset)

    full, date_only = [], []
    full.append(iso(tags.get("ExifIFD:DateTimeOriginal"), tags.get("ExifIFD:SubSecTimeOriginal"),
                    tags.get("ExifIFD:OffsetTimeOriginal")) if "ExifIFD:DateTimeOriginal" in tags else None)
    full.append(iso(tags.get("ExifIFD:CreateDate"), tags.get("ExifIFD:SubSecTimeDigitized"),
                    tags.get("ExifIFD:OffsetTimeDigitized")) if "ExifIFD:CreateDate" in tags else None)
    for name in ("XMP-exif:DateTimeOriginal", "XMP-photoshop:DateCreated", "XMP-xmp:CreateDate",
                 "XMP-exif:DateTimeDigitized"):
        full.append(iso(tags[name]) if name in tags else None)
    if "IPTC:DateCreated" in tags:
        full.append(iso(f"{tags['IPTC:DateCreated']} {tags['IPTC:TimeCreated']}") if "IPTC:TimeCreated" in tags
                    else iso(tags["IPTC:DateCreated"]))
    for name, utc in (("Keys:CreationDate", False), ("QuickTime:CreateDate", True), ("RIFF:DateTimeOriginal", False),
                      ("Matroska:DateTimeOriginal", False)):  # a video container's time (QuickTime's is UTC)
        if name in tags and not str(tags[name]).startswith("0000"):
            full.append(iso(str(tags[name]) + ("Z" if utc else "")))
    if "Composite:GPSDateTime" in tags:
        full.append(iso(tags["Composite:GPSDateTime"]))
    for value in full:
        (date_only if value and "T" not in value else []).append(value)
        if value and "T" in value:
            return value
    return date_only[0] if date_only else None


#: Where ExifTool 12.57 (Debian 12) reads a value wrongly: (its reading, what the file's bytes say).
EXIFTOOL_DIFFERS = {
    # the AVI's IDIT chunk holds the text "2009/10/27 12:14:34"; ExifTool's RIFF date conversion drops the seconds
    "Pentax.avi": ("2009-10-27T12:14:00", "2009-10-27T12:14:34"),
}


@pytest.mark.skipif(not REAL.is_dir(), reason=f"the real files are not here ({REAL})")
@pytest.mark.skipif(shutil.which("exiftool") is None, reason="exiftool is not installed (libimage-exiftool-perl)")
def test_capture_times_agree_with_exiftool_on_real_files(tmp_path):
    result = run_cli("scan", REAL, "--catalog", tmp_path / "cat.db", "-q")
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(tmp_path / "cat.db") as conn:
        rows = conn.execute("SELECT path, status, taken_at FROM files WHERE kind IS NOT 'sidecar'").fetchall()
    read = [path for path, status, taken in rows if status == "ok" or taken]
    listing = subprocess.run(["exiftool", "-n", "-json", "-G1", "-a", "-time:all", "-SubSec*", "-Offset*",
                              "-GPSDateTime", *read], capture_output=True, text=True, timeout=300, check=False)
    reference = {entry["SourceFile"]: entry for entry in json.loads(listing.stdout)}
    ours = {path: taken for path, _, taken in rows}
    expected = {path: _exiftool_time(reference[path]) for path in read}
    for name, (theirs, bytes_say) in EXIFTOOL_DIFFERS.items():
        path = str(REAL / name)
        if expected[path] == theirs:  # a later ExifTool may read it right: then it is compared as it is
            expected[path] = bytes_say
    with_detail = [p for p, t in expected.items() if t and ("." in t or "+" in t or t.count("-") > 2)]
    assert len(with_detail) >= 8  # sub-seconds or an offset: Apple, Google, Canon, Nikon, MWG, PhotoMechanic...
    assert sum(1 for t in expected.values() if t) >= 35
    assert {p: ours[p] for p in read} == expected


def test_raw_jpeg_pairing_reads_subseconds_and_offsets():
    def row(id_, name, taken, raw_decode=None, fmt="JPEG"):
        return {"id": id_, "path": f"/p/{name}", "status": "ok", "reason": None, "raw_decode": raw_decode,
                "format": fmt, "taken_at": taken}

    rows = [row(1, "IMG_1.CR2", "2021-06-01T10:00:00.50+02:00", "preview", "CR2"),
            row(2, "IMG_1.JPG", "2021-06-01T10:00:00.70"),  # the same shot; this copy lost its offset
            row(3, "IMG_2.CR2", "2021-06-01T10:00:05.10+02:00", "preview", "CR2"),
            row(4, "IMG_2.JPG", "2021-06-01T09:00:06.20+01:00")]  # 1.1 s later: another shot
    assert raw.find_pairs(rows) == [(1, 2)]
