"""What tests share: the one way to run the CLI as a subprocess, and small image-fixture builders
(PIL in tmp_path, never committed files)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

from PIL import Image

#: The repository root: subprocesses run here, with it first on PYTHONPATH (so they run this checkout).
REPO = Path(__file__).resolve().parents[1]
#: Files this project did not make (ExifTool's test images), kept beside the clone in ``shared/real-files``
#: (``PHOTODEDUP_REAL_FILES`` points elsewhere, e.g. from a git worktree); tests that need them skip without.
REAL_FILES = Path(os.environ.get("PHOTODEDUP_REAL_FILES") or REPO.parent / "shared" / "real-files")


def cli_env(extra: dict | None = None) -> dict:
    """``os.environ`` with the repository first on ``PYTHONPATH``, then ``extra``."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, **(extra or {})}


def cli_command(*args) -> list[str]:
    """``python -m photodedup ARGS`` with this interpreter (for ``Popen`` and server fixtures)."""
    return [sys.executable, "-m", "photodedup", *map(str, args)]


def run_cli(*args, env: dict | None = None, cwd: Path | str = REPO, timeout: float = 600,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``photodedup ARGS`` to the end; ``env`` adds to (never replaces) the environment.

    An environment asking for injected faults (``PHOTODEDUP_TEST_APPLY_*``) runs ``tests/faulty_cli.py``.
    """
    env = cli_env(env)
    faulty = any(name.startswith("PHOTODEDUP_TEST_APPLY_") for name in env)
    command = [sys.executable, str(REPO / "tests" / "faulty_cli.py"), *map(str, args)] if faulty else cli_command(*args)
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout, input=input)


def write_photo(path: Path, size=(320, 240), color=(180, 60, 30), fmt="JPEG", exif: Image.Exif | None = None,
                pattern: int = 0) -> Path:
    """A small photo with some structure (a gradient and a block) so hashes are not degenerate."""
    image = Image.new("RGB", size, color)
    w, h = size
    for x in range(0, w, 8):
        image.paste((x * 255 // w, (pattern * 37) % 255, 255 - x * 255 // w), (x, 0, x + 4, h // (2 + pattern % 3)))
    image.paste((20, 200, 20), (w // 3, h // 2, w // 3 + w // 4, h // 2 + h // 4))
    path.parent.mkdir(parents=True, exist_ok=True)
    options = {"exif": exif.tobytes()} if exif is not None else {}
    image.save(path, fmt, **options)
    return path


def png_bomb(path: Path, width: int = 30000, height: int = 30000) -> Path:
    """A tiny PNG whose header declares ``width x height`` pixels (a decompression bomb)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    body = zlib.compress(b"\x00" * 1024)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path
