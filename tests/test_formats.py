"""The format table is the one place that names file formats (photodedup/formats.py)."""

from __future__ import annotations

import ast
from pathlib import Path

from photodedup import formats, keeper, raw
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


def test_raw_names_come_from_magic_before_the_extension():
    assert raw.raw_format("photo.jpg", b"IIU\x00" + bytes(12)) == "RW2"      # Panasonic's .raw and .rw2
    assert raw.raw_format("x.bin", b"FUJIFILMCCD-RAW ") == "RAF"
    assert raw.raw_format("x.bin", b"\x00\x00\x00\x18ftypcrx \x00\x00") == "CR3"
    assert raw.raw_format("x.tif", b"II*\x00" + bytes(12)) is None
    assert raw.raw_format("movie.mov", b"\x00\x00\x00\x14ftypqt  ") is None


def test_the_service_decoders_and_the_review_page_types_come_from_the_table():
    assert limits.DECODERS == {"image/jpeg": ("JPEG", "MPO"), "image/png": ("PNG",), "image/webp": ("WEBP",)}
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
