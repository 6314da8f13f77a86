"""Every file format photodedup knows, in one table that every stage reads.

Add a format here and nowhere else: the scan finds files by the extensions and leading bytes below,
the RAW reader names RAWs by them, the keeper prefers camera originals by ``original``, RAW+JPEG pairs
are made from ``pairable``, the review page serves a file as it is when a browser shows ``mime``, and
the service takes its decoders from it. A test fails if another list of extensions or format names
appears in ``photodedup/`` (tests/test_formats.py).

Columns:

- ``name``: what the catalog records in ``files.format``: Pillow's format name for what Pillow (or
  a Pillow plugin) decodes, the RAW's own name for RAWs (a RAW without a magic number of its own is
  named after its extension);
- ``kind``: ``image`` (Pillow or a plugin decodes it), ``raw`` (LibRaw through rawpy), ``video``,
  ``sidecar`` (metadata beside a photo), ``document`` (never a photo; only counted);
- ``extensions`` (lower case, with the dot) and ``magic``: ``(offset, bytes)`` signatures that name
  the format whatever the file is called;
- ``decoder``: ``pillow``, ``pillow-heif``, ``pillow-jxl``, ``rawpy``, ``video`` or ``none``;
- ``original``: a camera or phone writes it (the keeper prefers these over exports);
- ``mime``: the type every current browser displays as is (None: the review page converts it);
- ``pairable``: the other half of a RAW+JPEG pair (a camera writes it beside the RAW);
- ``lossless``: every pixel is stored as it was (a PNG screenshot); the keeper's ``lossless`` rule
  prefers these over a lossy copy of the same size (JPEG, WebP as exports write it, HEIC).

The RAW rows are the formats LibRaw reads (its list of supported cameras and their file types,
https://www.libraw.org/supported-cameras): a RAW that LibRaw cannot decode is still recorded, with
an error kind and the camera and capture time its metadata holds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

IMAGE, RAW, VIDEO, SIDECAR, DOCUMENT = "image", "raw", "video", "sidecar", "document"
KINDS = (IMAGE, RAW, VIDEO, SIDECAR, DOCUMENT)
#: The kinds ``scan`` reads and records; files of other kinds are counted as not looked at (sidecars are
#: recorded when a photo is beside them: photodedup.media).
SCANNED_KINDS = frozenset({IMAGE, RAW, VIDEO})


@dataclass(frozen=True)
class Format:
    name: str
    kind: str
    extensions: tuple[str, ...]
    magic: tuple[tuple[int, bytes], ...] = ()
    decoder: str = "pillow"
    original: bool = False
    mime: str | None = None
    pairable: bool = False
    description: str = ""
    lossless: bool = False


def _raw(name: str, *extensions: str, magic: tuple[tuple[int, bytes], ...] = (), description: str = "") -> Format:
    return Format(name, RAW, extensions or (f".{name.lower()}",), magic, "rawpy", True, None, False, description)


def _ftyp(*brands: bytes) -> tuple[tuple[int, bytes], ...]:
    """ISO base media files (HEIF, AVIF, CR3, MP4, MOV): the ``ftyp`` box's major brand at offset 4."""
    return tuple((4, b"ftyp" + brand) for brand in brands)


FORMATS: tuple[Format, ...] = (
    # -- images: Pillow and its plugins --------------------------------------------------------------
    Format("JPEG", IMAGE, (".jpg", ".jpeg", ".jpe", ".jfif", ".jps"), ((0, b"\xff\xd8\xff"),),
           original=True, mime="image/jpeg", pairable=True, description="JPEG"),
    Format("MPO", IMAGE, (".mpo",), (), original=True, mime="image/jpeg", pairable=True,
           description="JPEG with more pictures (stereo cameras, some phones)"),
    Format("HEIF", IMAGE, (".heic", ".heif", ".hif", ".heics"),
           _ftyp(b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs", b"mif1", b"msf1"),
           "pillow-heif", original=True, pairable=True, description="HEIC/HEIF (phones, recent cameras)"),
    Format("AVIF", IMAGE, (".avif", ".avifs"), _ftyp(b"avif", b"avis"), mime="image/avif", description="AVIF"),
    Format("JXL", IMAGE, (".jxl",), ((0, b"\xff\x0a"), (0, b"\x00\x00\x00\x0cJXL \r\n\x87\n")), "pillow-jxl",
           description="JPEG XL (bare codestream and ISO BMFF container)"),
    Format("PNG", IMAGE, (".png", ".apng"), ((0, b"\x89PNG\r\n\x1a\n"),), mime="image/png", description="PNG",
           lossless=True),
    Format("WEBP", IMAGE, (".webp",), ((8, b"WEBP"),), mime="image/webp", description="WebP"),
    Format("GIF", IMAGE, (".gif",), ((0, b"GIF87a"), (0, b"GIF89a")), mime="image/gif", description="GIF"),
    Format("TIFF", IMAGE, (".tif", ".tiff", ".btf"),
           ((0, b"II*\x00"), (0, b"MM\x00*"), (0, b"II+\x00"), (0, b"MM\x00+")), description="TIFF and BigTIFF",
           lossless=True),
    Format("BMP", IMAGE, (".bmp", ".dib"), ((0, b"BM"),), description="BMP", lossless=True),
    Format("ICO", IMAGE, (".ico",), (), description="Windows icon (by extension: its 4-byte signature is too common)"),
    Format("JPEG2000", IMAGE, (".jp2", ".j2k", ".j2c", ".jpf", ".jpx", ".jpc"),
           ((4, b"jP  "), (0, b"\xff\x4f\xff\x51")), description="JPEG 2000"),
    Format("PSD", IMAGE, (".psd",), ((0, b"8BPS"),), description="Photoshop (its merged picture)"),
    # Netpbm's signature ("P1".."P6" and a space) is matched in sniff(): it is not a fixed byte string.
    Format("PPM", IMAGE, (".ppm", ".pgm", ".pbm", ".pnm"), (), description="Netpbm"),
    # -- camera RAW: LibRaw ---------------------------------------------------------------------------
    _raw("DNG", description="Adobe DNG (and phones' RAW)"),
    _raw("CR2", description="Canon"),
    _raw("CR3", magic=_ftyp(b"crx "), description="Canon"),
    _raw("CRW", magic=((6, b"HEAPCCDR"),), description="Canon (before 2004)"),
    _raw("NEF", description="Nikon"),
    _raw("NRW", description="Nikon compacts"),
    _raw("ARW", description="Sony"),
    _raw("SRF", description="Sony"),
    _raw("SR2", description="Sony"),
    _raw("RAF", magic=((0, b"FUJIFILMCCD-RAW"),), description="Fujifilm"),
    _raw("ORF", ".orf", ".ori", magic=((0, b"IIRO"), (0, b"IIRS"), (0, b"MMOR")), description="Olympus / OM System"),
    _raw("RW2", magic=((0, b"IIU\x00"),), description="Panasonic (and its older .raw)"),
    _raw("RWL", description="Leica"),
    _raw("RAW", description="Kyocera, Leica, Panasonic (older)"),
    _raw("PEF", description="Pentax"),
    _raw("PTX", description="Pentax"),
    _raw("SRW", description="Samsung"),
    _raw("3FR", description="Hasselblad"),
    _raw("FFF", description="Hasselblad / Imacon"),
    _raw("IIQ", description="Phase One"),
    _raw("CAP", description="Phase One"),
    _raw("MOS", description="Leaf"),
    _raw("MEF", description="Mamiya"),
    _raw("MRW", magic=((0, b"\x00MRM"),), description="Minolta"),
    _raw("MDC", description="Minolta"),
    _raw("X3F", magic=((0, b"FOVb"),), description="Sigma"),
    _raw("ERF", description="Epson"),
    _raw("KDC", description="Kodak"),
    _raw("DCR", description="Kodak"),
    _raw("DCS", description="Kodak"),
    _raw("DRF", description="Kodak"),
    _raw("K25", description="Kodak"),
    _raw("BAY", description="Casio"),
    _raw("STI", description="Sinar"),
    _raw("ARI", description="ARRI"),
    _raw("PXN", description="Logitech"),
    _raw("QTK", description="Apple QuickTake"),
    # -- videos (photodedup.media: recorded, exact copies grouped) -------------------------------------
    Format("MOV", VIDEO, (".mov", ".qt"), _ftyp(b"qt  "), "video", original=True, description="QuickTime (iPhone)"),
    Format("MP4", VIDEO, (".mp4", ".m4v"), _ftyp(b"isom", b"iso2", b"mp41", b"mp42", b"avc1", b"M4V "), "video",
           original=True, mime="video/mp4", description="MPEG-4"),
    Format("3GP", VIDEO, (".3gp", ".3g2"), _ftyp(b"3gp4", b"3gp5", b"3gp6", b"3g2a"), "video", original=True,
           description="3GPP (older phones)"),
    Format("M2TS", VIDEO, (".mts", ".m2ts"), (), "video", original=True, description="AVCHD / MPEG transport stream"),
    Format("MKV", VIDEO, (".mkv", ".webm"), ((0, b"\x1a\x45\xdf\xa3"),), "video", description="Matroska / WebM"),
    Format("AVI", VIDEO, (".avi",), ((8, b"AVI "),), "video", original=True, description="AVI"),
    Format("WMV", VIDEO, (".wmv", ".asf"), ((0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"),), "video",
           description="Windows Media"),
    # -- sidecars: metadata beside a photo ------------------------------------------------------------
    Format("XMP", SIDECAR, (".xmp",), (), "none", description="XMP (Lightroom, darktable edits)"),
    Format("AAE", SIDECAR, (".aae",), (), "none", description="Apple photo edits"),
    Format("JSON", SIDECAR, (".json",), (), "none", description="Google Takeout metadata"),
    # -- documents: never photos, counted as such ------------------------------------------------------
    Format("PDF", DOCUMENT, (".pdf",), ((0, b"%PDF"),), "none", description="PDF"),
    Format("TEXT", DOCUMENT, (".txt", ".md", ".rtf", ".csv", ".log", ".html", ".htm", ".xml"), (), "none",
           description="text"),
    Format("OFFICE", DOCUMENT, (".doc", ".docx", ".xls", ".xlsx", ".ppt", ".pptx", ".odt", ".ods", ".odp",
                                ".pages", ".numbers", ".key"), (), "none", description="office documents"),
)

BY_NAME: dict[str, Format] = {f.name: f for f in FORMATS}
BY_EXTENSION: dict[str, Format] = {ext: f for f in FORMATS for ext in f.extensions}
_SIGNATURES = tuple((offset, magic, f) for f in FORMATS for offset, magic in f.magic)
#: How many leading bytes :func:`sniff` needs.
HEAD_BYTES = max(offset + len(magic) for offset, magic, _ in _SIGNATURES)
assert len(BY_NAME) == len(FORMATS), "two formats with one name"
assert len(BY_EXTENSION) == sum(len(f.extensions) for f in FORMATS), "an extension in two formats"


def by_name(name: str | None) -> Format | None:
    """The row of a catalog ``files.format`` value (None when photodedup has no row for it)."""
    return BY_NAME.get((name or "").upper())


def by_extension(path: str) -> Format | None:
    """The row a file's extension names (case-insensitive), or None."""
    return BY_EXTENSION.get(os.path.splitext(path)[1].lower())


def sniff(head: bytes) -> Format | None:
    """The row a file's leading bytes name (at least :data:`HEAD_BYTES` of them), or None."""
    for offset, magic, fmt in _SIGNATURES:
        if head[offset : offset + len(magic)] == magic:
            return fmt
    if len(head) > 2 and head[0] == ord("P") and head[1] in b"123456" and head[2] in b" \t\r\n#":
        return BY_NAME["PPM"]
    return None


def extensions(*kinds: str) -> frozenset[str]:
    """Every extension of these kinds."""
    return frozenset(ext for f in FORMATS if f.kind in kinds for ext in f.extensions)


def is_original(name: str | None) -> bool:
    """Whether a camera or phone writes this format (the keeper's ``camera-format`` rule)."""
    fmt = by_name(name)
    return fmt is not None and fmt.original


def is_lossless(name: str | None) -> bool:
    """Whether this format stores every pixel as it was (the keeper's ``lossless`` rule)."""
    fmt = by_name(name)
    return fmt is not None and fmt.lossless


def is_raw(name: str | None) -> bool:
    """Whether this is a camera RAW format (LibRaw reads it)."""
    fmt = by_name(name)
    return fmt is not None and fmt.kind == RAW


def is_pairable(name: str | None) -> bool:
    """Whether a file of this format is the other half of a RAW+JPEG pair."""
    fmt = by_name(name)
    return fmt is not None and fmt.pairable


def browser_type(name: str | None) -> str | None:
    """The MIME type under which browsers display this format as it is, or None."""
    fmt = by_name(name)
    return fmt.mime if fmt is not None else None


def names_for_type(mime: str, kind: str = IMAGE) -> tuple[str, ...]:
    """The format names (Pillow decoders) a browser type covers: ``image/jpeg`` -> JPEG, MPO."""
    return tuple(f.name for f in FORMATS if f.mime == mime and f.kind == kind)
