"""Text the tool writes for people, and files it writes for the user alone.

``printable``: a file name (or EXIF text, or a message holding them) as it may reach a terminal: no
control character (C0, DEL, C1) and no bidirectional override passes raw, so a name cannot clear the
screen, set the window title, write the clipboard (OSC 52), hide text with a CR or forge a line with a
newline; each shows as its Python escape (``\\x1b``, ``\\n``, ``\\u202e``). Every ``render`` and every
message the CLI prints goes through it; ``--json`` does not (it is exact).

``csv_cell``: a CSV cell a spreadsheet will not run as a formula.

``private_file`` / ``private_folder`` / ``private_umask``: what the tool writes about the user's photos
(catalogs, exports) is created 0600, its folders 0700.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from pathlib import Path

#: C0 controls, DEL, C1 controls, and the Unicode bidirectional controls (embeddings, overrides,
#: isolates, marks) that reorder what follows them on screen.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match) -> str:
    char = match.group()
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text, *, newlines: bool = False) -> str:
    """``text`` (made a ``str``) with every control character escaped, and bytes that are not UTF-8
    (surrogate-escaped names) as ``\\xNN``. ``newlines``: a multi-line message keeps its line breaks,
    but every line after the first is indented, so no part of it can pass for a line of output."""
    text = str(text)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if not newlines:
        return _UNPRINTABLE.sub(_escape, text)
    return "\n  ".join(_UNPRINTABLE.sub(_escape, line) for line in text.split("\n"))


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value):
    """A CSV cell: text that a spreadsheet would read as a formula (it starts with ``= + - @``, a tab or
    a CR) gets a leading ``'``, as OWASP advises; numbers are left alone (``-3`` is a number)."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


_umask_lock = threading.Lock()


@contextlib.contextmanager
def private_umask():
    """Files and folders created inside are 0600/0700 (for writers that take a path, such as SQLite,
    which gives its ``-wal`` and ``-shm`` files the mode of the database file, and Parquet)."""
    with _umask_lock:
        old = os.umask(0o077)
        try:
            yield
        finally:
            os.umask(old)


def private_folder(path: Path | str) -> Path:
    """``mkdir -p`` with every folder it creates 0700 (folders that exist keep their mode)."""
    path = Path(path)
    with private_umask():
        path.mkdir(parents=True, exist_ok=True)
    return path


def private_file(path: Path | str, mode: str = "w", **options):
    """``open(path, mode)`` for writing, creating the file 0600 (and its missing folders 0700); a file
    that exists keeps its mode (the user chose it)."""
    path = Path(path)
    private_folder(path.parent)
    return open(path, mode, opener=lambda name, flags: os.open(name, flags, 0o600), **options)
