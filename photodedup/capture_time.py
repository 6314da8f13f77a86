"""When a photo or video was captured, as ISO 8601 text with sub-seconds and UTC offset when known.

The first source that holds a full date and time wins (docs/DECISIONS.md "Capture time"):

1. EXIF DateTimeOriginal, with SubSecTimeOriginal and OffsetTimeOriginal;
2. EXIF CreateDate (DateTimeDigitized), with SubSecTimeDigitized and OffsetTimeDigitized;
3. XMP: exif:DateTimeOriginal, photoshop:DateCreated, xmp:CreateDate, exif:DateTimeDigitized;
4. IPTC DateCreated + TimeCreated;
5. the container's creation time (QuickTime/MP4/HEIF, Matroska, ...: UTC), or LibRaw's time for a RAW;
6. GPS date and time (UTC): the last resort, it is when the position was fixed;
7. a Google Takeout sidecar's photoTakenTime (UTC), only when the file itself says nothing.

A source that gives a date without a time (IPTC DateCreated alone, ``photoshop:DateCreated="2004-02-26"``)
is used only when no source gives a full time. IFD0 DateTime (ExifTool's ModifyDate) is never used:
it is the last edit. Values keep the sub-second digits as written (at most 6) and the offset as
written; a time from a UTC source ends in ``+00:00``. Examples: ``2023-10-06T22:53:51.724+02:00``,
``2005-01-14T08:57:59.20``, ``2004-02-26``.

:func:`parse` and :func:`seconds_apart` read the text back (RAW+JPEG pairing, bursts); :func:`sort_key`
orders capture times by the clock the photographer saw (local time), as the keeper's "oldest" rule does.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from fractions import Fraction

# EXIF tags (the EXIF sub-IFD 0x8769 and the GPS IFD 0x8825)
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_ORIGINAL = (0x9003, 0x9291, 0x9011)   # DateTimeOriginal, SubSecTimeOriginal, OffsetTimeOriginal
_DIGITIZED = (0x9004, 0x9292, 0x9012)  # CreateDate, SubSecTimeDigitized, OffsetTimeDigitized
_XMP_NAMES = ("exif:DateTimeOriginal", "photoshop:DateCreated", "xmp:CreateDate", "xap:CreateDate",
              "exif:DateTimeDigitized")

_TEXT = re.compile(
    r"^\s*(\d{4})[-:](\d\d)[-:](\d\d)"                    # date, EXIF (:) or ISO (-) separators
    r"(?:[T ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d+))?)?)?"   # time, seconds, sub-seconds
    r"\s*(Z|[+-]\d\d:?\d\d)?\s*$")
_OFFSET = re.compile(r"^\s*([+-])(\d\d):?(\d\d)\s*$")


def from_sources(exif=None, xmp: bytes | str | None = None, iptc=None, *,
                 container: str | None = None, takeout: str | None = None) -> str | None:
    """The capture time from what a file holds, by the priority in the module doc (None: unknown).

    ``exif``: a Pillow ``Image.Exif`` (IFD 0); ``xmp``: the XMP packet; ``iptc``: Pillow's
    ``getiptcinfo`` dict (or a function that gives it, called only when needed); ``container``: an
    ISO 8601 time already read (a video's creation time, LibRaw's time); ``takeout``: the path of a
    Google Takeout sidecar JSON, read only when nothing else gives a time.
    """
    candidates = [lambda: _exif_time(exif, _ORIGINAL), lambda: _exif_time(exif, _DIGITIZED),
                  *(lambda name=name: _xmp_time(xmp, name) for name in _XMP_NAMES),
                  lambda: _iptc_time(iptc() if callable(iptc) else iptc), lambda: normalise(container),
                  lambda: _gps_time(exif)]
    date_only = None
    for candidate in candidates:
        value = candidate()
        if value and "T" in value:
            return value
        date_only = date_only or value
    return date_only or (takeout_time(takeout) if takeout else None)


def normalise(text: str | None, *, offset: str | None = None, subsec: str | None = None) -> str | None:
    """An EXIF (``2001:05:19 18:36:41``) or ISO 8601 date-time as our ISO 8601 text, or None when it is
    not a plausible date (zeros, blanks, a month 13). ``offset`` and ``subsec`` are EXIF's separate tags."""
    if not isinstance(text, str):
        return None
    match = _TEXT.match(text.strip("\x00 "))
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    except ValueError:
        return None
    if int(year) < 1800:
        return None
    out = f"{year}-{month}-{day}"
    if hour is None:
        return out
    out += f"T{hour}:{minute}:{second or '00'}"
    subsec = (subsec or "").strip("\x00 ") if isinstance(subsec, str) else None
    digits = fraction or (subsec if subsec and subsec.isdigit() else None)
    if digits:
        out += "." + digits[:6]
    zone = "+00:00" if zone == "Z" else zone or _offset(offset)
    if zone and ":" not in zone:
        zone = zone[:3] + ":" + zone[3:]
    return out + (zone or "")


def parse(text: str | None) -> datetime | None:
    """Our capture-time text as a ``datetime`` (aware when it has an offset), or None."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def seconds_apart(a: str | None, b: str | None) -> float | None:
    """Seconds between two capture times (None when either is unknown). When one side has no offset,
    both are compared as local clock times."""
    first, second = parse(a), parse(b)
    if first is None or second is None:
        return None
    if (first.tzinfo is None) != (second.tzinfo is None):
        first, second = first.replace(tzinfo=None), second.replace(tzinfo=None)
    return abs((first - second).total_seconds())


def sort_key(text: str | None) -> tuple:
    """Orders capture times by the local clock time, to the sub-second (unknown last)."""
    value = parse(text)
    return (1, datetime.max) if value is None else (0, value.replace(tzinfo=None))


def from_timestamp(seconds: float) -> str:
    """A UTC Unix time as our text (``+00:00``)."""
    value = datetime.fromtimestamp(seconds, timezone.utc)
    return value.isoformat(timespec="microseconds" if value.microsecond else "seconds")


def takeout_time(path: str) -> str | None:
    """``photoTakenTime`` of a Google Takeout JSON (UTC), or None when it has none (or is unreadable)."""
    try:
        with open(path, "rb") as handle:
            data = json.loads(handle.read(1 << 20))
        seconds = int(data["photoTakenTime"]["timestamp"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return from_timestamp(seconds) if seconds > 0 else None


# -- the sources ------------------------------------------------------------------------------------------
def _exif_time(exif, tags: tuple[int, int, int]) -> str | None:
    if exif is None:
        return None
    sub = exif.get_ifd(_EXIF_IFD)
    when, subsec, offset = (sub.get(tag) for tag in tags)
    return normalise(when, subsec=subsec, offset=offset if isinstance(offset, str) else None)


def _xmp_time(xmp: bytes | str | None, name: str) -> str | None:
    if not xmp:
        return None
    text = xmp.decode("utf-8", "replace") if isinstance(xmp, bytes) else xmp
    if name not in text:
        return None
    match = re.search(rf'{name}\s*=\s*["\']([^"\']*)["\']|<{name}>([^<]*)</{name}>', text)
    return normalise(match.group(1) or match.group(2)) if match else None


def _iptc_time(iptc: dict | None) -> str | None:
    """IPTC 2:55 DateCreated (CCYYMMDD) with 2:60 TimeCreated (HHMMSS+HHMM) when present."""
    if not iptc:
        return None
    date, time = _first(iptc.get((2, 55))), _first(iptc.get((2, 60)))
    if not date or len(date) < 8 or not date[:8].isdigit():
        return None
    text = f"{date[:4]}:{date[4:6]}:{date[6:8]}"
    if time and len(time) >= 6 and time[:6].isdigit():
        text += f" {time[:2]}:{time[2:4]}:{time[4:6]}" + (time[6:11] if len(time) >= 11 else "")
    return normalise(text)


def _gps_time(exif) -> str | None:
    """GPSDateStamp + GPSTimeStamp (UTC)."""
    if exif is None:
        return None
    gps = exif.get_ifd(_GPS_IFD)
    date, stamp = gps.get(0x001D), gps.get(0x0007)
    if not isinstance(date, str) or not isinstance(stamp, tuple) or len(stamp) != 3:
        return None
    try:
        hours, minutes, seconds = (Fraction(float(v)).limit_denominator(1_000_000) if not hasattr(v, "numerator")
                                   else Fraction(v.numerator, v.denominator) for v in stamp)
    except (ZeroDivisionError, ValueError, TypeError):
        return None
    if hours.denominator != 1 or minutes.denominator != 1 or not 0 <= seconds < 61:
        return None
    whole = int(seconds)
    fraction = _decimal(seconds - whole)
    return normalise(f"{date} {int(hours):02d}:{int(minutes):02d}:{whole:02d}{fraction}Z")


def _decimal(value: Fraction) -> str:
    """``.65`` for 65/100: the digits a rational with a power-of-ten denominator means (at most 6)."""
    if not value:
        return ""
    digits = 1
    while digits < 6 and (value * 10**digits).denominator != 1:
        digits += 1
    return "." + f"{int(value * 10**digits):0{digits}d}"


def _offset(text: str | None) -> str | None:
    match = _OFFSET.match(text or "")
    if not match:
        return None
    sign, hours, minutes = match.groups()
    return None if int(hours) > 14 or int(minutes) > 59 else f"{sign}{hours}:{minutes}"


def _first(value) -> str | None:
    if isinstance(value, list):
        value = value[0] if value else None
    if isinstance(value, bytes):
        return value.decode("ascii", "replace").strip("\x00 ")
    return None
