"""Videos, Live Photos, motion photos and sidecars: the files a phone or a camera writes beside its photos.

**Videos** (.mov .mp4 .m4v .mts .m2ts .mkv .avi .3gp .wmv) are recorded with their size, md5,
duration, width and height (of the first video stream, as stored) and capture time, read with PyAV
(FFmpeg): Apple's ``com.apple.quicktime.creationdate`` (local time with its offset), else the
container's ``creation_time`` (UTC in QuickTime/MP4, local in AVI). Exact copies (same md5) are grouped;
videos are never compared by their pictures.

**Live Photos**: an iPhone writes a still (HEIC or JPEG) and a short MOV with the same stem in one
folder; Apple's content identifier (the still's MakerNote tag 0x11, the MOV's
``com.apple.quicktime.content.identifier``) ties them where present: two different identifiers are two
shots, one identifier ties two differently named files. The video is a *companion* of the still.

**Motion photos** (a video inside the still: Google's ``MicroVideo``/``MotionPhoto`` XMP, Samsung's
``MotionPhoto_Data`` trailer) are recognised (``files.motion``); the still is one file, nothing to pair.

**Sidecars** are companions of the photo they describe: ``IMG_1.xmp`` or ``IMG_1.jpg.xmp`` (Lightroom,
darktable), ``IMG_1.aae`` (Apple edits), Google Takeout's ``IMG_1.jpg.json`` (also
``IMG_1.jpg.supplemental-metadata.json``, its truncations such as ``IMG_1.j.json``, and ``IMG_1.jpg(1).json``
for ``IMG_1(1).jpg``). A sidecar with no photo beside it is not recorded.

Companions are kept, trashed and restored with their lead (``photodedup.apply``); the lead of a
RAW+JPEG pair's sidecar or Live Photo is the RAW.
"""

from __future__ import annotations

import io
import os
import re
from collections import defaultdict
from collections.abc import Iterable

from PIL import Image

from photodedup import capture_time, formats, raw
from photodedup.catalog import in_trash

_SUPPLEMENTAL = ".supplemental-metadata"


class VideoReadError(Exception):
    """A video that cannot be read; ``kind`` is the catalog's ``error_kind``."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


def is_video(path: str) -> bool:
    return _kind_of_name(path) == formats.VIDEO


def is_sidecar(path: str) -> bool:
    return _kind_of_name(path) == formats.SIDECAR


def _kind_of_name(path: str) -> str | None:
    fmt = formats.by_extension(path)
    return fmt.kind if fmt is not None else None


# -- videos -------------------------------------------------------------------------------------------
def read_video(row: dict, source) -> Image.Image | None:
    """Fill a video's row (format, width, height, duration, taken_at, content_id) from ``source`` (the
    bytes, or a file open for reading: a video is never read whole); return its first frame for the
    thumbnail (None when it has no decodable frame). Raises :class:`VideoReadError`."""
    import av

    if isinstance(source, bytes | bytearray):
        source = io.BytesIO(source)
    else:
        source.seek(0)
    try:
        with av.open(source, metadata_errors="ignore") as container:
            meta = {k.lower(): v for k, v in container.metadata.items()}
            stream = next(iter(container.streams.video), None)
            fmt = formats.by_extension(row["path"])
            row["format"] = fmt.name if fmt is not None else container.format.name.split(",")[0].upper()
            row["kind"] = "video"
            if container.duration:
                row["duration"] = round(container.duration / av.time_base, 3)
            if stream is not None:
                row["width"], row["height"] = stream.width or None, stream.height or None
            created = meta.get("com.apple.quicktime.creationdate") or meta.get("creation_time") or \
                (stream.metadata.get("creation_time") if stream is not None else None)
            row["taken_at"] = _video_time(created)
            row["content_id"] = meta.get("com.apple.quicktime.content.identifier") or None
            return _first_frame(container, stream)
    except av.error.FFmpegError as error:
        kind = "truncated" if isinstance(error, EOFError) else "corrupt"
        raise VideoReadError(kind, f"cannot read the video: {error.strerror or error}") from error


def _video_time(text: str | None) -> str | None:
    """A container's time as our text; the zero times of QuickTime (1904) and Unix (1970) are unknown."""
    value = capture_time.normalise(text)
    if not value or value[:4] <= "1970":
        return None
    return re.sub(r"\.0+(?=[+-]|$)", "", value)  # FFmpeg writes whole seconds with six zeros


def _first_frame(container, stream) -> Image.Image | None:
    if stream is None:
        return None
    import av

    try:
        for frame in container.decode(stream):
            return frame.to_image()
    except (av.error.FFmpegError, ValueError):
        return None
    return None


# -- stills: Apple's content identifier and motion photos ---------------------------------------------
def apple_content_id(exif) -> str | None:
    """The Live Photo content identifier in an Apple MakerNote (tag 0x11), or None."""
    note = exif.get_ifd(0x8769).get(0x927C) if exif is not None else None
    if not isinstance(note, bytes) or not note.startswith(b"Apple iOS\x00") or note[12:14] != b"MM":
        return None
    try:
        count = int.from_bytes(note[14:16], "big")
        for at in range(16, 16 + 12 * count, 12):
            tag, kind, size = int.from_bytes(note[at:at + 2], "big"), int.from_bytes(note[at + 2:at + 4], "big"), \
                int.from_bytes(note[at + 4:at + 8], "big")
            if tag == 0x11 and kind == 2:  # ASCII
                start = at + 8 if size <= 4 else int.from_bytes(note[at + 8:at + 12], "big")
                return note[start:start + size].split(b"\x00")[0].decode("ascii", "replace") or None
    except (IndexError, ValueError):
        return None
    return None


_GOOGLE_MOTION = re.compile(rb'(?:MicroVideo|MotionPhoto)\s*(?:=\s*["\']1["\']|>\s*1\s*<)')


SAMSUNG_MARKER = b"MotionPhoto_Data"


def motion_photo(xmp: bytes | str | None, samsung_trailer: bool) -> str | None:
    """``google`` (MicroVideo / MotionPhoto XMP), ``samsung`` (a ``MotionPhoto_Data`` trailer: the file
    ends with ``SEFT`` and holds ``SAMSUNG_MARKER``, which the scan looks for while it hashes) or None."""
    if xmp:
        packet = xmp.encode() if isinstance(xmp, str) else xmp
        if _GOOGLE_MOTION.search(packet):
            return "google"
    return "samsung" if samsung_trailer else None


# -- sidecars -----------------------------------------------------------------------------------------
def sidecar_owner(name: str, names: Iterable[str]) -> str | None:
    """Which of ``names`` (the photos and videos in the sidecar's folder) the sidecar ``name`` describes."""
    base, ext = os.path.splitext(name)
    ext = ext.lower()
    by_lower = {n.lower(): n for n in names}
    if ext in (".xmp", ".aae"):
        if base.lower() in by_lower:  # IMG_1.jpg.xmp
            return by_lower[base.lower()]
        same = sorted((n for n in by_lower.values() if os.path.splitext(n)[0].lower() == base.lower()),
                      key=lambda n: (_kind_of_name(n) != formats.RAW, n))  # Lightroom's IMG_1.xmp: the RAW's
        return same[0] if same else None
    if ext != ".json":
        return None
    stem, copy = base, ""
    numbered = re.fullmatch(r"(.*)(\(\d+\))", base)
    if numbered:  # IMG_1.jpg(1).json describes IMG_1(1).jpg
        stem, copy = numbered.groups()
    matches = []
    for photo in by_lower.values():
        photo_stem, photo_ext = os.path.splitext(photo)
        if copy:
            if not photo_stem.endswith(copy):
                continue
            photo_stem = photo_stem[: -len(copy)]
        full = (photo_stem + photo_ext + _SUPPLEMENTAL).lower()
        if full.startswith(stem.lower()) and (stem.lower().startswith(photo_stem.lower() + ".")
                                             or len(name) >= 46):  # Takeout cuts names at 51 characters
            matches.append(photo)
    return matches[0] if len(matches) == 1 else None


def find_companions(rows: Iterable, raw_pairs: dict[int, int]) -> list[tuple[int, int, str]]:
    """``(file_id, lead_id, kind)`` for each Live Photo video (``live``) and sidecar (``sidecar``) among
    catalog rows (OK or in the trash), leads resolved through RAW+JPEG pairs (the RAW leads)."""
    rows = list(rows)
    wanted = {os.path.dirname(r["path"]) for r in rows if r["kind"] in (formats.VIDEO, formats.SIDECAR)}
    folders: dict[str, list] = defaultdict(list)  # only folders with a video or a sidecar: a re-scan stays fast
    for row in rows:
        if (row["status"] == "ok" or in_trash(row)) and (folder := os.path.dirname(row["path"])) in wanted:
            folders[folder].append(row)
    lead_of = {other: raw_id for raw_id, other in raw_pairs.items()}
    out: list[tuple[int, int, str]] = []
    for members in folders.values():
        live = _live_pairs(members)
        lead_of.update({video: still for still, video in live})
        out += [(video, still, "live") for still, video in live]
        photos = {os.path.basename(r["path"]): r for r in members if _kind(r) != "sidecar"}
        for row in members:
            if _kind(row) == "sidecar":
                owner = sidecar_owner(os.path.basename(row["path"]), photos)
                if owner is not None:
                    out.append((row["id"], photos[owner]["id"], "sidecar"))

    def root(file_id: int) -> int:
        seen = set()
        while file_id in lead_of and file_id not in seen:
            seen.add(file_id)
            file_id = lead_of[file_id]
        return file_id

    return sorted((file_id, root(lead), kind) for file_id, lead, kind in out)


def _live_pairs(rows: list) -> list[tuple[int, int]]:
    """``(still_id, video_id)``: the content identifier ties first, then the same stem (when neither
    side's identifier says otherwise)."""
    stills = [r for r in rows if _kind(r) == "image" and formats.is_pairable(r["format"])]  # JPEG, HEIC
    videos = [r for r in rows if _kind(r) == "video" and r["format"] == "MOV"]
    pairs, used = [], set()
    stem = lambda r: os.path.splitext(os.path.basename(r["path"]))[0].lower()  # noqa: E731
    for tie in (lambda s, v: s["content_id"] and s["content_id"] == v["content_id"],
                lambda s, v: stem(s) == stem(v) and not (s["content_id"] and v["content_id"])):
        for still in sorted(stills, key=lambda r: r["path"]):
            if still["id"] in used:
                continue
            video = next((v for v in sorted(videos, key=lambda r: r["path"]) if v["id"] not in used
                          and tie(still, v)), None)
            if video is not None:
                used |= {still["id"], video["id"]}
                pairs.append((still["id"], video["id"]))
    return pairs


def _kind(row) -> str:
    return row["kind"] or ("raw" if row["raw_decode"] else "image")


#: The catalog columns that decide which files travel together (``link_shots``).
SHOT_COLUMNS = ("id", "path", "status", "trashed_to", "raw_decode", "format", "taken_at", "kind", "content_id")


def link_shots(cat) -> None:
    """Record which files travel together (RAW+JPEG pairs, Live Photos, sidecars) from the catalog ``cat``
    as it is: every scan, and an apply or undo that catches the catalog up after a kill."""
    everything = cat.files(status=None, columns=SHOT_COLUMNS)
    pairs = raw.find_pairs(everything)
    cat.set_raw_pairs(pairs)
    cat.set_companions(find_companions(everything, dict(pairs)))
