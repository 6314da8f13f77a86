"""The photos the review page shows: the scanned file's bytes (never another file at its path), and
the file decoded as a browser-ready JPEG (EXIF orientation applied; a RAW's preview), whole or as a
thumbnail."""

from __future__ import annotations

import errno
import io
import os
import stat

from fastapi import HTTPException
from PIL import Image

from photodedup import formats, raw
from photodedup.catalog import display
from photodedup.preprocess import DEFAULT_MAX_PIXELS, encode_jpeg, load_oriented


def scanned_bytes(row) -> bytes:
    """The bytes of the file that was scanned, read through one descriptor: never a symlink (``O_NOFOLLOW``),
    never another file at that path (device, inode, size and mtime as the scan recorded them), so a
    photo swapped for a link to ``/etc/shadow``, or a folder swapped for a link, serves nothing."""
    try:
        fd = os.open(row["path"], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as error:
        reason = "a symbolic link" if error.errno == errno.ELOOP else error.strerror
        raise HTTPException(404, display(f"{row['path']} is not the file that was scanned ({reason})")) from None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        found = (st.st_size, st.st_mtime_ns, st.st_dev, st.st_ino)
        scanned = (row["size"], row["mtime_ns"], row["dev"], row["ino"])
        known = 4 if row["dev"] is not None else 2  # catalogs scanned before device/inode were kept
        if not stat.S_ISREG(st.st_mode) or found[:known] != scanned[:known]:
            raise HTTPException(404, display(f"{row['path']} is not the file that was scanned (replaced or "
                                             "changed since); scan again"))
        return handle.read()


def orientation(data: bytes) -> int:
    try:
        with Image.open(io.BytesIO(data)) as image:
            return int(image.getexif().get(0x0112, 1))
    except (OSError, ValueError):
        return 1


def render(row, data: bytes, *, longest: int | None = None) -> bytes:
    """The file decoded, EXIF orientation applied, as JPEG (optionally scaled down to ``longest``).

    A RAW shows its embedded preview (else a half-size decode of the sensor data).
    """
    try:
        if row["raw_decode"]:
            fmt = raw.raw_format(row["path"], data[: formats.HEAD_BYTES]) or "RAW"
            image = raw.read_raw(data, fmt, max_pixels=DEFAULT_MAX_PIXELS, draft=longest is not None).image
        else:
            image = load_oriented(data, fast=longest is not None, shortest=longest or 0)
        if longest:
            image.thumbnail((longest, longest))
        return encode_jpeg(image, quality=90)
    except (OSError, ValueError, Image.DecompressionBombError, raw.RawReadError) as error:
        raise HTTPException(404, display(f"cannot decode {row['path']}: {error}")) from error
