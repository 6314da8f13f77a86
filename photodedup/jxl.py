"""JPEG XL through pillow-jxl-plugin (libjxl), in both forms: the bare codestream and the ISO BMFF container.

The plugin decodes the whole picture while Pillow opens the file, before anyone could look at its
size, so :func:`declared_size` reads the size from the codestream's header (a few bytes, ISO/IEC
18181-1 SizeHeader) and ``preprocess.open_checked`` refuses a decompression bomb before that decode.
The plugin's decoder runs on one thread (the scan already runs one file per core), and its errors
become ``OSError`` with a sentence instead of libjxl's advice to rebuild it in debug mode.
"""

from __future__ import annotations

import io
from typing import BinaryIO

CODESTREAM = b"\xff\x0a"
CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"
#: SizeHeader's aspect ratios (numerator, denominator) for ``ratio`` 1..7.
_RATIOS = ((1, 1), (12, 10), (4, 3), (3, 2), (16, 9), (5, 4), (2, 1))
_MAX_BOXES = 64


def is_jxl(head: bytes) -> bool:
    return head.startswith(CODESTREAM) or head.startswith(CONTAINER)


def declared_size(stream: BinaryIO) -> tuple[int, int] | None:
    """``(width, height)`` a JPEG XL file declares, read from ``stream`` (seekable; its position is kept),
    or None when it is not JPEG XL or its header cannot be read."""
    start = stream.tell()
    try:
        head = stream.read(len(CONTAINER))
        if head.startswith(CODESTREAM):
            return _size_header(head[2:] + stream.read(16))
        if head != CONTAINER:
            return None
        for _ in range(_MAX_BOXES):  # the codestream is in a jxlc box, or split over jxlp boxes
            box = stream.read(8)
            if len(box) < 8:
                return None
            size, kind = int.from_bytes(box[:4], "big"), box[4:]
            header = 8
            if size == 1:
                size, header = int.from_bytes(stream.read(8), "big"), 16
            if kind == b"jxlc":
                data = stream.read(32)
            elif kind == b"jxlp":
                data = stream.read(36)[4:]  # a 4-byte part counter comes first
            else:
                if size == 0:
                    return None  # a last box that is not the codestream
                stream.seek(size - header, io.SEEK_CUR)
                continue
            return _size_header(data[2:]) if data.startswith(CODESTREAM) else None
        return None
    except (OSError, ValueError):
        return None
    finally:
        stream.seek(start)


def _size_header(data: bytes) -> tuple[int, int] | None:
    bits = _Bits(data)
    try:
        small = bits.read(1)
        height = (bits.read(5) + 1) * 8 if small else bits.u32(9, 13, 18, 30) + 1
        ratio = bits.read(3)
        if ratio:
            num, den = _RATIOS[ratio - 1]
            width = height * num // den
        else:
            width = (bits.read(5) + 1) * 8 if small else bits.u32(9, 13, 18, 30) + 1
    except IndexError:
        return None
    return width, height


class _Bits:
    """Least significant bit first, as JPEG XL writes its headers."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def read(self, count: int) -> int:
        value = 0
        for n in range(count):
            byte = self.data[(self.at + n) >> 3]
            value |= ((byte >> ((self.at + n) & 7)) & 1) << n
        self.at += count
        return value

    def u32(self, *widths: int) -> int:
        return self.read(widths[self.read(2)])


def register() -> bool:
    """Register the JPEG XL opener with Pillow; False when pillow-jxl-plugin is not installed."""
    try:
        from pillow_jxl import JpegXLImagePlugin
    except ImportError:  # pragma: no cover - a dependency; a broken install reads JPEG XL as "unsupported"
        return False
    from PIL import Image

    JpegXLImagePlugin.DECODE_THREADS = 0

    class JXLImageFile(JpegXLImagePlugin.JXLImageFile):
        def _open(self) -> None:
            try:
                super()._open()
            except RuntimeError as error:  # libjxl's one error for a damaged or cut file
                raise OSError("the JPEG XL decoder cannot read this file (damaged or cut-short data)") from error

    Image.register_open("JXL", JXLImageFile, is_jxl)
    return True
