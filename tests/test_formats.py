"""The format table is the one place that names file formats (photodedup/formats.py)."""

from __future__ import annotations

import ast
import io
import json
import os
from pathlib import Path

from helpers import run_cli, write_photo
from PIL import Image

from photodedup import formats, jxl, keeper, raw
from photodedup.catalog import Catalog
from photodedup.service import limits

PACKAGE = Path(formats.__file__).parent


def _literal_groups(tree: ast.AST):
    """Every tuple, list, set and dict literal's string constants, with the line it starts on."""
    for node in ast.walk(tree):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            items = node.elts
        elif isinstance(node, ast.Dict):
            items = [k for k in node.keys if k is not None]
        else:
            continue
        yield node.lineno, [i.value for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str)]


def test_no_second_list_of_extensions_or_format_names():
    """A collection of three or more extensions or format names outside formats.py is a second table."""
    known = set(formats.BY_EXTENSION) | set(formats.BY_NAME)
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == Path(formats.__file__):
            continue
        for line, strings in _literal_groups(ast.parse(path.read_text(), str(path))):
            named = [s for s in strings if s.lower() in known or s.upper() in known]
            if len(named) >= 3:
                found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {named}")
    assert found == [], "formats listed outside photodedup/formats.py:\n" + "\n".join(found)


def test_the_guard_notices_a_list(tmp_path):
    """The scan above finds the shapes the old lists had (a set of extensions, a dict keyed by format)."""
    source = 'A = {".jpg", ".png", ".tif"}\nB = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}\n'
    known = set(formats.BY_EXTENSION) | set(formats.BY_NAME)
    hits = [line for line, strings in _literal_groups(ast.parse(source))
            if len([s for s in strings if s.lower() in known or s.upper() in known]) >= 3]
    assert hits == [1, 2]


def test_every_raw_the_scan_reads_is_a_camera_original_for_the_keeper():
    """Before the table, RWL, MEF, MOS, KDC and DCR were scanned as RAW but the keeper called them exports."""
    raws = [f for f in formats.FORMATS if f.kind == formats.RAW]
    assert {"RWL", "MEF", "MOS", "KDC", "DCR", "MRW", "IIQ", "X3F", "CRW", "RAW"} <= {f.name for f in raws}
    for fmt in raws:
        for extension in fmt.extensions:
            name = raw.raw_format(f"IMG_0001{extension.upper()}", b"II*\x00" + bytes(12))
            assert name == fmt.name and keeper.is_camera_format(name), extension


def test_the_keeper_calls_a_leica_rwl_a_camera_original():
    """The old keeper list lacked RWL: a PNG export tied with it, and a JPEG beat it as "an export (RWL)"."""
    from photodedup.duplicate_groups import Member

    def member(file_id: int, path: str, fmt: str) -> Member:
        return Member(file_id, path, "perceptual", 1.0, width=4000, height=3000, format=fmt)

    rwl, png = member(1, "/p/z/L1000001.RWL", "RWL"), member(2, "/p/a/L1000001.png", "PNG")
    assert (keeper.choose([rwl, png]).keeper, keeper.choose([rwl, png]).notes[2]) == (
        1, "an export (PNG); the group has the camera format RWL")
    jpeg = member(3, "/p/a/L1000001.jpg", "JPEG")
    assert keeper.choose([rwl, jpeg]).notes[1] == "equal to the keeper by every rule (the keeper comes first by path)"


def test_raw_names_come_from_magic_before_the_extension():
    assert raw.raw_format("photo.jpg", b"IIU\x00" + bytes(12)) == "RW2"      # Panasonic's .raw and .rw2
    assert raw.raw_format("x.bin", b"FUJIFILMCCD-RAW ") == "RAF"
    assert raw.raw_format("x.bin", b"\x00\x00\x00\x18ftypcrx \x00\x00") == "CR3"
    assert raw.raw_format("x.tif", b"II*\x00" + bytes(12)) is None
    assert raw.raw_format("movie.mov", b"\x00\x00\x00\x14ftypqt  ") is None


def test_the_service_decoders_and_the_review_page_types_come_from_the_table():
    assert limits.DECODERS == {"image/jpeg": ("JPEG",), "image/png": ("PNG",), "image/webp": ("WEBP",)}
    assert [formats.browser_type(n) for n in ("JPEG", "MPO", "PNG", "GIF", "HEIF", "TIFF", "CR2", None)] == \
        ["image/jpeg", "image/jpeg", "image/png", "image/gif", None, None, None, None]


def test_kinds_of_the_rows():
    kinds = {f.name: f.kind for f in formats.FORMATS}
    videos = formats.extensions(formats.VIDEO)
    assert {".mov", ".mp4", ".m4v", ".mts", ".m2ts", ".mkv", ".avi", ".3gp", ".wmv"} <= videos
    assert formats.extensions(formats.SIDECAR) == {".xmp", ".aae", ".json"}
    assert set(kinds.values()) == set(formats.KINDS)
    assert formats.sniff(b"\x00\x00\x00\x0cJXL \r\n\x87\n").name == "JXL"
    assert formats.sniff(b"\xff\x0a\xfa").name == "JXL"
    assert formats.sniff(b"P6 1 1 255\n").name == "PPM"
    assert formats.sniff(b"\x00\x00\x00\x18ftypqt  ").kind == formats.VIDEO


# -- JPEG XL ------------------------------------------------------------------------------------------
def _jxl(image: Image.Image, **options) -> bytes:
    import pillow_jxl  # noqa: F401 - registers the JPEG XL writer

    buffer = io.BytesIO()
    image.save(buffer, format="JXL", **options)
    return buffer.getvalue()


def _size_header_codestream(width: int, height: int) -> bytes:
    """A bare JPEG XL codestream whose SizeHeader declares ``width x height`` (1:1, 18-bit), then junk."""
    assert width == height and height - 1 < 1 << 18
    bits = [0] + [0, 1] + [(height - 1) >> n & 1 for n in range(18)] + [1, 0, 0]  # small=0, U32 selector 2, ratio 1
    packed = bytes(sum(bit << n for n, bit in enumerate(bits[i:i + 8])) for i in range(0, len(bits), 8))
    return jxl.CODESTREAM + packed + b"junk that no decoder reads" * 4


def test_jpeg_xl_both_forms_through_the_scan(tmp_path):
    root = tmp_path / "lib"
    root.mkdir()
    picture = write_photo(tmp_path / "p.png", size=(120, 90), fmt="PNG")
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Apple", "iPhone 16 Pro"
    exif.get_ifd(0x8769)[0x9003] = "2025:01:02 03:04:05"
    bare = _jxl(Image.open(picture), lossless=True)
    boxed = _jxl(Image.open(picture), exif=exif.tobytes(), lossless=True)
    assert bare.startswith(jxl.CODESTREAM) and boxed.startswith(jxl.CONTAINER)
    (root / "bare.jxl").write_bytes(bare)
    (root / "container.jxl").write_bytes(boxed)
    (root / "named-wrongly.jpg").write_bytes(boxed)
    (root / "cut.jxl").write_bytes(boxed[: len(boxed) // 2])
    (root / "bomb.jxl").write_bytes(_size_header_codestream(40_000, 40_000))
    db = tmp_path / "c.sqlite"
    done = run_cli("scan", root, "--catalog", db, "--json", "-q")
    assert done.returncode == 0, done.stderr
    with Catalog(db) as cat:
        rows = {Path(r["path"]).name: dict(r) for r in cat.files(status=None)}
    for name in ("bare.jxl", "container.jxl", "named-wrongly.jpg"):
        assert (rows[name]["status"], rows[name]["format"], rows[name]["width"], rows[name]["height"]) == \
            ("ok", "JXL", 120, 90), name
    assert rows["bare.jxl"]["phash"] == rows["container.jxl"]["phash"]
    assert (rows["container.jxl"]["camera"], rows["container.jxl"]["taken_at"]) == ("Apple iPhone 16 Pro",
                                                                                      "2025-01-02T03:04:05")
    assert (rows["cut.jxl"]["status"], rows["cut.jxl"]["format"], rows["cut.jxl"]["error_kind"]) == \
        ("error", "JXL", "corrupt")
    # refused from its header, before the plugin decodes (which would call it damaged)
    assert (rows["bomb.jxl"]["error_kind"], rows["bomb.jxl"]["reason"]) == (
        "too-large", "refused before decoding: 40000x40000 = 1600000000 pixels is over the limit of 200000000")


def test_jpeg_xl_declared_size_in_both_forms():
    for size in ((1, 1), (1, 9), (9, 1), (64, 48), (1234, 567), (8, 16), (160, 90), (300, 2)):
        image = Image.new("RGB", size, (10, 20, 30))
        for data in (_jxl(image, lossless=True), _jxl(image, exif=Image.Exif().tobytes(), lossless=True)):
            assert jxl.declared_size(io.BytesIO(data)) == size
    assert jxl.declared_size(io.BytesIO(_size_header_codestream(40_000, 40_000))) == (40_000, 40_000)
    assert jxl.declared_size(io.BytesIO(b"\xff\xd8\xff\xe0")) is None


# -- what the scan does not look at -------------------------------------------------------------------
def test_the_scan_counts_what_it_did_not_look_at_by_kind(tmp_path):
    root = tmp_path / "lib"
    write_photo(root / "a.jpg")
    write_photo(root / "photo-without-extension", fmt="PNG")  # read: found by its first bytes
    for name, data in {"clip.mov": b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "clip.MP4": b"\x00" * 64,
                       "a.xmp": b"<x:xmpmeta/>", "a.aae": b"<?xml?>", "a.json": b"{}", "notes.pdf": b"%PDF-1.4",
                       "readme.txt": b"hello", "data.bin": b"\x01\x02\x03", "unnamed": b"just text",
                       "movie-named-oddly.dat": b"\x1a\x45\xdf\xa3" + b"\x00" * 32}.items():
        (root / name).write_bytes(data)
    done = run_cli("scan", root, "--catalog", tmp_path / "c.sqlite", "--json", "-q")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    # videos are recorded (photodedup.media; these three cannot be read: errors), and the sidecars that
    # describe a.jpg (a.xmp, a.aae); a.json describes no photo here (Takeout's would be a.jpg.json)
    assert (summary["files"], summary["new"], summary["errors"]) == (7, 7, 3)
    assert summary["not_looked_at"] == {"sidecar": 1, "document": 2, "unknown": 2}
    text = run_cli("scan", root, "--catalog", tmp_path / "c2.sqlite", "-q")
    assert "  not looked at: sidecar 1, document 2, unknown 2" in text.stdout.splitlines()


def test_libraw_messages_are_captured_and_stderr_comes_back(capfd):
    said: list[str] = []
    with raw.libraw_messages(said):
        os.write(2, b"unknown file: Unexpected end of file\nunknown file: Unexpected end of file\n")
    os.write(2, b"after\n")
    assert said == ["Unexpected end of file"]
    assert capfd.readouterr().err == "after\n"


# -- notes about solid frames -------------------------------------------------------------------------
def _groups(root: Path, db: Path) -> list[dict]:
    assert run_cli("scan", root, "--catalog", db, "-q").returncode == 0
    done = run_cli("group", "--catalog", db, "--json", "-q")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["groups"]


def test_solid_frames_are_not_called_grayscale_copies_or_added_borders(tmp_path):
    """White, black and red frames hash alike, but colour is content: they are different pictures (no group).
    A solid frame and its resized copy are one picture, and its notes are true: a frame that is all one colour
    is no grayscale copy and has no border (it is all content)."""
    coloured, copies = tmp_path / "coloured", tmp_path / "copies"
    coloured.mkdir()
    copies.mkdir()
    Image.new("RGB", (320, 240), (255, 0, 0)).save(coloured / "red.jpg")
    Image.new("RGB", (64, 48), (255, 255, 255)).save(coloured / "white.jpg")
    Image.new("RGB", (64, 48), (0, 0, 0)).save(coloured / "black.png")
    assert _groups(coloured, tmp_path / "c1.sqlite") == []
    Image.new("RGB", (320, 240), (255, 0, 0)).save(copies / "red.jpg")
    Image.new("RGB", (64, 48), (255, 0, 0)).save(copies / "red_small.jpg")
    [group] = _groups(copies, tmp_path / "c2.sqlite")
    assert {Path(m["path"]).name: m.get("note") or "" for m in group["members"]} == {
        "red.jpg": "", "red_small.jpg": "lower resolution (64x48 against 320x240)"}