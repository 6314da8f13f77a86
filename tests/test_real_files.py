"""Real files nobody here made (ExifTool's test images from dozens of camera and phone makers, in
``shared/real-files`` beside the clone): every stage finishes on them, and what they hold is read."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import REAL_FILES, run_cli

from photodedup import jxl
from photodedup.catalog import Catalog

EXIFTOOL_IMAGES = REAL_FILES / "exiftool-t-images"
pytestmark = pytest.mark.skipif(not EXIFTOOL_IMAGES.is_dir(), reason=f"no real files at {REAL_FILES}")

#: ``exiftool -n -Make -Model -SubSecDateTimeOriginal`` of the RAWs whose pixels LibRaw cannot decode (the
#: test images hold no sensor data): the camera and the capture time still come from their metadata.
RAW_METADATA = {
    "CanonRaw.cr2": ("CR2", "Canon EOS 350D DIGITAL", "2005-08-03T18:59:18"),
    "CanonRaw.cr3": ("CR3", "Canon EOS M50", "2018-02-21T12:08:56.21+00:00"),  # with SubSec and OffsetTime
    "FujiFilm.raf": ("RAF", "FUJIFILM FinePix S5Pro", "2007-05-22T13:58:30"),
    "Minolta.mrw": ("MRW", "Konica Minolta Camera, Inc. DiMAGE A2", "2004-11-18T23:14:58"),
    "Nikon.nef": ("NEF", "NIKON D70", "2004-06-09T16:02:35.00"),
    "PhaseOne.iiq": ("IIQ", "Leaf Credo 40", "2013-06-19T15:44:21"),
    # formats whose metadata is not TIFF-based (Kyocera's, Canon's CIFF, Sigma's): recorded, no camera yet
    "KyoceraRaw.raw": ("RAW", None, None),
    "CanonRaw.crw": ("CRW", None, None),
    "Sigma.x3f": ("X3F", None, None),
    # LibRaw decodes these without a complaint, from a few KB for 8-10 million sensor pixels: the pixels it
    # never filled were whatever its buffer held (DNG.dng's pHash was 0 from a forked worker, another value in
    # each forkserver's), so the file is refused before decoding (raw.MIN_SENSOR_BYTES)
    "DNG.dng": ("DNG", "Canon EOS 350D DIGITAL", "2005-08-03T18:59:18"),
    "Panasonic.rw2": ("RW2", "Panasonic DMC-LX3", "2008-08-06T15:21:56"),
}


@pytest.fixture(scope="module")
def scanned(tmp_path_factory) -> tuple[Path, Path, dict]:
    """The real files copied (they are read-only) and scanned once."""
    work = tmp_path_factory.mktemp("real")
    root = work / "real-files"
    shutil.copytree(REAL_FILES, root)
    for path in [root, *root.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o200)
    db = work / "c.sqlite"
    done = run_cli("scan", root, "--catalog", db, "--json", "-q")
    _ok(done)
    return root, db, json.loads(done.stdout) | {"stderr": done.stderr}


def _ok(done) -> None:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "Traceback" not in done.stdout


def _rows(db: Path) -> dict[str, dict]:
    with Catalog(db) as cat:
        return {Path(r["path"]).name: dict(r) for r in cat.files(status=None)}


def test_every_stage_finishes_on_the_real_files(scanned, tmp_path):
    root, db, summary = scanned
    assert "unknown file" not in summary["stderr"]  # LibRaw's own messages go to the file's error
    assert summary["files"] > 60 and sum(summary["not_looked_at"].values()) > 0
    _ok(run_cli("group", "--catalog", db, "-q"))
    _ok(run_cli("run", root, "--catalog", db, "--no-embed", "--report", tmp_path / "r.html", "-q"))
    _ok(run_cli("apply", "--catalog", db, "--trash-dir", tmp_path / "trash", "--dry-run", "-q"))


def test_raws_without_pixels_keep_their_camera_and_capture_time(scanned):
    rows = _rows(scanned[1])
    for name, (fmt, camera, taken) in RAW_METADATA.items():
        row = rows[name]
        assert (row["status"], row["format"], row["camera"], row["taken_at"]) == ("error", fmt, camera, taken), name
        assert row["error_kind"] in ("truncated", "corrupt", "raw-unsupported"), name
    assert rows["Nikon.nef"]["reason"].endswith("(LibRaw: data corrupted at 1378)")


def test_jpeg_xl_in_both_forms(scanned):
    """The bare codestream (JXL.jxl) and the ISO BMFF container (JXL2.jxl) are JPEG XL; these two hold no
    decodable picture (ExifTool's stand-ins), so they are recorded as damaged JPEG XL, with the size their
    header declares (ExifTool: 200x130)."""
    rows = _rows(scanned[1])
    for name in ("JXL.jxl", "JXL2.jxl"):
        assert (rows[name]["format"], rows[name]["error_kind"]) == ("JXL", "corrupt"), name
        assert "JPEG XL decoder" in rows[name]["reason"]
        with open(EXIFTOOL_IMAGES / name, "rb") as handle:
            assert jxl.declared_size(handle) == (200, 130)
