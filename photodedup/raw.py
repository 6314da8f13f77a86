"""Camera RAW files (DNG, CR2/CR3, NEF, ARW, RAF, ORF, RW2, ...) through LibRaw, and RAW+JPEG pairs.

**Reading.** For the hashes, the model crop and the thumbnail a RAW is seen through the camera's embedded
JPEG preview when its shortest side is at least the model's input size (224): no demosaic, about the
cost of a JPEG. Otherwise LibRaw decodes the sensor data at half size (no demosaic either: each 2x2
Bayer block becomes one pixel). The catalog records which (``files.raw_decode``: ``preview`` or
``half-size``). Orientation is LibRaw's (it knows each maker's quirks); width and height are the sensor
image's, not the preview's. EXIF (camera, capture time) is read from the RAW itself with Pillow: DNG,
CR2, NEF, ARW, PEF, ORF, RW2 and IIQ are TIFF files (ORF and RW2 with their own magic number, swapped
for TIFF's), CR3 keeps its TIFF IFD 0 in a ``CMT1`` box, MRW in its ``TTW`` block, RAF in the JPEG
preview its header points to; other formats fall back to the preview LibRaw finds, and the capture time
to LibRaw's timestamp. A RAW whose pixels LibRaw cannot decode, or whose file is far too small to hold
its sensor's pixels (``MIN_SENSOR_BYTES``), is recorded as an error with the camera and capture time this
metadata gives.

**Pairs.** A camera shooting RAW+JPEG writes two files of one shot: ``IMG_0001.CR2`` and ``IMG_0001.JPG``.
:func:`find_pairs` pairs a RAW with a JPEG or HEIC of the same stem (case-insensitive) in the same
folder, when their capture times are within a second of each other or either time is unknown.
"""

from __future__ import annotations

import ctypes
import io
import os
import sys
import tempfile
import threading
import warnings
from collections import defaultdict
from collections.abc import Iterable
from contextlib import contextmanager
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from photodedup import capture_time, formats
from photodedup.catalog import in_trash
from photodedup.preprocess import DEFAULT_MAX_PIXELS, draft_for_shortest_side, open_checked

PAIR_SECONDS = 1.0

#: The fewest bytes a sensor's pixels need, as (bytes, pixels): one byte for 256 pixels (1/32 bit a pixel).
#: Sensor data takes a bit or more a pixel however it is compressed (lossy DNG's black frame about 0.1); a
#: file far under it holds no sensor data, and LibRaw "decodes" it without a complaint into a buffer it never
#: fills: the hashes would come from whatever memory the buffer reused (ExifTool's stripped test DNG: pHash 0
#: in a fresh worker, another value in each used one).
MIN_SENSOR_BYTES = (1, 256)

# LibRaw's ``flip`` (dcraw's encoding) -> EXIF orientation, and EXIF orientation -> the transpose to apply.
_FLIP_TO_ORIENTATION = {0: 1, 1: 2, 2: 4, 3: 3, 4: 5, 5: 8, 6: 6, 7: 7}
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class RawReadError(Exception):
    """A RAW file that cannot be read; ``kind`` is the catalog's ``error_kind``."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


@dataclass
class RawShot:
    """What the scan needs from a RAW file."""

    image: Image.Image     # decoded and oriented; the shortest side >= ``shortest`` where the source allows
    exif: Image.Exif       # IFD 0 (camera, orientation, date) with its EXIF sub-IFD
    width: int             # the sensor image's size after orientation
    height: int
    format: str            # DNG, CR2, NEF, ...
    decoded_from: str      # preview | half-size
    taken_at: str | None   # LibRaw's capture time (ISO 8601), for when the EXIF has none


def raw_format(path: str, head: bytes) -> str | None:
    """The RAW format of a file (by its first bytes, then its extension), or None when it is not one."""
    fmt = formats.sniff(head) if head else None
    if fmt is None or fmt.kind != formats.RAW:
        fmt = formats.by_extension(path)
    return fmt.name if fmt is not None and fmt.kind == formats.RAW else None


def read_raw(data: bytes, fmt: str, *, max_pixels: int, shortest: int = 224, draft: bool = True) -> RawShot:
    """Decode a RAW file's bytes for the scan. Raises :class:`RawReadError` with a kind and a reason.

    ``draft``: decode the preview at the smallest JPEG scale that keeps ``shortest`` (else in full).
    What LibRaw writes to stderr meanwhile (it names no file) is captured and ends the reason of an error.
    """
    try:
        import rawpy
    except ImportError as error:  # pragma: no cover - rawpy is a dependency
        raise RawReadError("unsupported", "RAW files need rawpy (pip install rawpy)") from error
    said: list[str] = []
    try:
        with libraw_messages(said):
            return _read_raw(rawpy, data, fmt, max_pixels, shortest, draft)
    except RawReadError as error:
        raise RawReadError(error.kind, _with_messages(str(error), said)) from error
    except rawpy.LibRawFileUnsupportedError as error:
        raise RawReadError("raw-unsupported", _with_messages(
            f"LibRaw cannot open this {fmt} file (not a RAW it knows): {_message(error)}", said)) from error
    except rawpy.LibRawIOError as error:  # LibRaw reads past the end of the data
        raise RawReadError("truncated", _with_messages(
            f"cannot decode the {fmt} file, its data ends early: {_message(error)}", said)) from error
    except rawpy.LibRawTooBigError as error:
        raise RawReadError("too-large", _with_messages(
            f"LibRaw refuses this {fmt} file as too large: {_message(error)}", said)) from error
    except rawpy.LibRawError as error:
        raise RawReadError("corrupt", _with_messages(f"cannot decode the {fmt} file: {_message(error)}", said)) \
            from error


def _read_raw(rawpy, data: bytes, fmt: str, max_pixels: int, shortest: int, draft: bool) -> RawShot:
    with warnings.catch_warnings():
        # Our scan workers are forked, and we keep LibRaw on one OpenMP thread (see _one_thread).
        warnings.filterwarnings("ignore", message="rawpy is being used in a process created by multiprocessing")
        raw = rawpy.imread(io.BytesIO(data))
    with raw:
        sizes = raw.sizes
        if sizes.raw_width * sizes.raw_height > max_pixels:
            raise RawReadError("too-large", f"refused before decoding: {sizes.raw_width}x{sizes.raw_height} "
                                            f"sensor pixels is over the limit of {max_pixels}")
        orientation = _FLIP_TO_ORIENTATION.get(sizes.flip, 1)
        width, height = (sizes.height, sizes.width) if orientation >= 5 else (sizes.width, sizes.height)
        preview_jpeg, image = _preview(raw, rawpy, shortest, max_pixels, draft)
        if image is not None:
            image = image.transpose(_TRANSPOSE[orientation]) if orientation in _TRANSPOSE else image
            decoded_from = "preview"
        else:
            _one_thread(rawpy)
            image = Image.fromarray(raw.postprocess(half_size=True, use_camera_wb=True, output_bps=8))
            if len(data) * MIN_SENSOR_BYTES[1] < sizes.raw_width * sizes.raw_height * MIN_SENSOR_BYTES[0]:
                # after LibRaw's own refusal, whose words say more where it has some
                raise RawReadError("truncated", f"the file's {len(data)} bytes cannot hold the sensor data of "
                                                f"{sizes.raw_width}x{sizes.raw_height} pixels")
            if draft and min(image.size) >= 2 * shortest:  # what a JPEG's reduced DCT scale gives
                image = image.reduce(min(image.size) // shortest)
            decoded_from = "half-size"  # LibRaw has applied the orientation
        exif = raw_exif(data, fmt, preview_jpeg)
        stamp = None if _exif_time(exif) else _libraw_time(raw, rawpy)
    taken = stamp.isoformat() if stamp and stamp.timestamp() > 0 else None
    return RawShot(image, exif, width, height, fmt, decoded_from, taken)


_STDERR_LOCK = threading.Lock()


@contextmanager
def libraw_messages(said: list[str]):
    """Capture what is written to the process's stderr (file descriptor 2) meanwhile into ``said``.

    LibRaw prints its complaints there ("unknown file: Unexpected end of file"), naming no file and
    ignoring ``--quiet``. The descriptor is swapped for a temporary file and restored; a lock keeps two
    threads (the review page's) from swapping it at once.
    """
    with _STDERR_LOCK, tempfile.TemporaryFile() as sink:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(sink.fileno(), 2)
        try:
            yield said
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            sink.seek(0)
            lines = sink.read(4096).decode(errors="replace").splitlines()
            said.extend(dict.fromkeys(line.removeprefix("unknown file: ").strip() for line in lines if line.strip()))


def _with_messages(reason: str, said: list[str]) -> str:
    return f"{reason} (LibRaw: {'; '.join(said)})" if said else reason


def _preview(raw, rawpy, shortest: int, max_pixels: int, draft: bool) -> tuple[bytes | None, Image.Image | None]:
    """The embedded preview's JPEG bytes, and the preview decoded when it is large enough (else None)."""
    try:
        thumb = raw.extract_thumb()
    except (rawpy.LibRawNoThumbnailError, rawpy.LibRawUnsupportedThumbnailError):
        return None, None
    except rawpy.LibRawError:  # a damaged preview: the sensor data may still be fine
        return None, None
    if thumb.format != rawpy.ThumbFormat.JPEG:
        image = Image.fromarray(thumb.data)
        return None, image if min(image.size) >= shortest else None
    try:
        image = open_checked(thumb.data, max_pixels=max_pixels)
        if min(image.size) < shortest:
            return thumb.data, None
        if draft:
            draft_for_shortest_side(image, shortest)
        image.load()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return None, None
    return thumb.data, image


def load_raw(path: str, *, fast: bool = True, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """A RAW file as an upright picture (the review page's viewer): its preview, else a half-size decode."""
    with open(path, "rb") as handle:
        data = handle.read()
    fmt = raw_format(path, data[: formats.HEAD_BYTES]) or "RAW"
    return read_raw(data, fmt, max_pixels=max_pixels, draft=fast).image


def _libraw_time(raw, rawpy):
    """LibRaw's capture time. rawpy unpacks the sensor data to give it: asked only when the EXIF has none,
    and a RAW whose sensor data is cut (its preview read fine) simply has no time."""
    try:
        return raw.other.timestamp
    except rawpy.LibRawError:
        return None


def _one_thread(rawpy) -> None:
    """Keep LibRaw's OpenMP to one thread in the calling thread.

    The scan already runs one file per core, so more threads would only compete. And LibRaw's OpenMP
    runtime (GNU libgomp) hangs in a forked child once the parent has run a parallel region: a scan that
    decoded a few files in-process and later forks its worker pool would deadlock. With one thread
    libgomp starts no team, so forking stays safe. ``omp_set_num_threads`` is looked up through the
    rawpy extension, so it reaches the OpenMP runtime that LibRaw uses (the wheel bundles its own).
    """
    global _OMP
    if _OMP is None:
        try:
            _OMP = ctypes.CDLL(rawpy._rawpy.__file__).omp_set_num_threads
        except (OSError, AttributeError):  # built without OpenMP
            _OMP = False
    if _OMP:
        _OMP(1)


_OMP = None


def raw_exif(data: bytes, fmt: str, preview_jpeg: bytes | None = None) -> Image.Exif:
    """EXIF IFD 0 of a RAW file (with its EXIF sub-IFD), read from the file's own TIFF structure."""
    exif = Image.Exif()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            tiff = _tiff_bytes(data, fmt)
            if tiff is not None:
                exif.load(tiff)
            if fmt == "CR3" and (box := _cr3_box(data, b"CMT2")) is not None:  # CR3's EXIF IFD is a TIFF of its own
                sub = Image.Exif()
                sub.load(box)
                exif.get_ifd(0x8769).update(dict(sub))
            if not len(exif) and preview_jpeg:
                exif = Image.open(io.BytesIO(preview_jpeg)).getexif()
        except (OSError, SyntaxError, ValueError, EOFError, KeyError, TypeError):
            pass  # no EXIF is data too: the row says 0 tags
    return exif


def _exif_time(exif: Image.Exif):
    """EXIF DateTimeOriginal or CreateDate (never IFD 0's DateTime: that is the last edit)."""
    return exif.get_ifd(0x8769).get(0x9003) or exif.get_ifd(0x8769).get(0x9004)


def _cr3_box(data: bytes, name: bytes) -> bytes | None:
    """The content of a CR3's metadata box (CMT1: IFD 0, CMT2: the EXIF IFD; each a TIFF), near the start."""
    at = data.find(name, 0, 1 << 16)
    if at < 4:
        return None
    size = int.from_bytes(data[at - 4 : at], "big")
    return data[at + 4 : at - 4 + size]


def _tiff_bytes(data: bytes, fmt: str) -> bytes | None:
    """The bytes of the TIFF structure that holds IFD 0, or None for formats that have none."""
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return data
    if fmt in ("ORF", "RW2") and data[:2] in (b"II", b"MM"):  # TIFF with another magic number
        return (b"II*\x00" if data[:2] == b"II" else b"MM\x00*") + data[4:]
    if fmt == "CR3":  # ISO BMFF: IFD 0 is the TIFF inside the CMT1 box, near the start
        return _cr3_box(data, b"CMT1")
    if fmt == "RAF":  # the EXIF of the JPEG preview whose offset and length the header gives
        offset, length = int.from_bytes(data[84:88], "big"), int.from_bytes(data[88:92], "big")
        preview = data[offset : offset + length]
        at = preview.find(b"Exif\x00\x00", 0, 1 << 16)
        return preview[at + 6 :] if at >= 0 else None
    if fmt == "MRW":  # blocks (a 4-byte name, a 4-byte size) after the header; TTW holds a TIFF
        at, end = 8, min(len(data), 8 + int.from_bytes(data[4:8], "big"))
        while at + 8 <= end:
            size = int.from_bytes(data[at + 4 : at + 8], "big")
            if data[at : at + 4] == b"\x00TTW":
                return data[at + 8 : at + 8 + size]
            at += 8 + size
    return None


def find_pairs(rows: Iterable) -> list[tuple[int, int]]:
    """``(raw_id, other_id)`` for every RAW+JPEG (or HEIC) pair among catalog file rows (OK or in the trash).

    A pair: a RAW and a JPEG/HEIC with the same stem (case-insensitive) in the same folder, whose capture
    times are within ``PAIR_SECONDS`` or unknown on either side (the name in one folder is the camera's
    evidence; a different time means the counter wrapped onto another shot). A RAW pairs with one file:
    a JPEG before a HEIC, then the nearest in time; each file is in at most one pair.
    """
    raws: dict[tuple[str, str], list] = defaultdict(list)
    others: dict[tuple[str, str], list] = defaultdict(list)
    for row in rows:
        if row["status"] != "ok" and not in_trash(row):
            continue  # a pair in the trash stays a pair, so that undo and the page show both halves
        folder, name = os.path.split(row["path"])
        key = (folder, os.path.splitext(name)[0].lower())
        if row["raw_decode"]:
            raws[key].append(row)
        elif formats.is_pairable(row["format"]):
            others[key].append(row)
    pairs: list[tuple[int, int]] = []
    for key in sorted(raws.keys() & others.keys()):
        free = sorted(others[key], key=lambda r: (r["format"] not in ("JPEG", "MPO"), r["path"]))
        for raw_row in sorted(raws[key], key=lambda r: r["path"]):
            matches = [r for r in free if _seconds_apart(raw_row["taken_at"], r["taken_at"]) <= PAIR_SECONDS]
            if matches:
                best = min(matches, key=lambda r: (r["format"] not in ("JPEG", "MPO"),
                                                   _seconds_apart(raw_row["taken_at"], r["taken_at"])))
                free.remove(best)
                pairs.append((raw_row["id"], best["id"]))
    return pairs


def _seconds_apart(a: str | None, b: str | None) -> float:
    apart = capture_time.seconds_apart(a, b)
    return 0.0 if apart is None else apart


def _message(error: Exception) -> str:
    text = error.args[0] if error.args else str(error)
    return (text.decode(errors="replace") if isinstance(text, bytes) else str(text)) or type(error).__name__
