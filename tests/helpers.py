"""What tests share: the one way to run the CLI as a subprocess, and small image-fixture builders
(PIL in tmp_path, never committed files)."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

from PIL import Image, ImageDraw

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
    """``python -m photodedup ARGS`` with this interpreter (for server fixtures)."""
    return [sys.executable, "-m", "photodedup", *map(str, args)]


#: The marker line ``tests/faulty_cli.py`` prints on stdout when ``PHOTODEDUP_TEST_PAUSE`` holds it.
PAUSED = "PHOTODEDUP_TEST_PAUSED"


def _command(args, env: dict) -> list[str]:
    """The real CLI, or ``tests/faulty_cli.py`` when the environment asks for a test hook
    (``PHOTODEDUP_TEST_*``: injected faults in apply and undo, a pause after a catalog write; not
    ``PHOTODEDUP_TEST_CACHE``, conftest's folder for cached exports)."""
    if any(name.startswith("PHOTODEDUP_TEST_") and name != "PHOTODEDUP_TEST_CACHE" for name in env):
        return [sys.executable, str(REPO / "tests" / "faulty_cli.py"), *map(str, args)]
    return cli_command(*args)


def _drop_file_capabilities() -> None:
    """As root, drop the capabilities that bypass file modes from the bounding set: the program this
    child then runs cannot have them (a mode-0444 file is read-only, a mode-0 file unreadable)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH (PR_CAPBSET_DROP = 24)
        if libc.prctl(24, capability, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def run_cli(*args, env: dict | None = None, cwd: Path | str = REPO, timeout: float = 600,
            input: str | None = None, unprivileged: bool = False,
            limits: dict[int, int] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``photodedup ARGS`` to the end; ``env`` adds to (never replaces) the environment.

    ``unprivileged``: as root, without the capabilities that bypass file modes. ``limits``: resource
    limits (``{resource.RLIMIT_AS: bytes}``, soft and hard) of the command and every process it starts.
    An environment asking for a test hook (``PHOTODEDUP_TEST_*``) runs ``tests/faulty_cli.py``.
    """
    import resource

    env = cli_env(env)

    def preexec() -> None:
        for kind, value in (limits or {}).items():
            resource.setrlimit(kind, (value, value))
        if unprivileged and os.geteuid() == 0:
            _drop_file_capabilities()

    return subprocess.run(_command(args, env), env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          input=input, preexec_fn=preexec if limits or unprivileged else None)


def start_cli(*args, env: dict | None = None, cwd: Path | str = REPO, **popen) -> subprocess.Popen:
    """Start ``photodedup ARGS`` without waiting (``Popen``; stdout and stderr piped as text unless
    ``popen`` says otherwise); the same command and environment as ``run_cli``."""
    env = cli_env(env)
    popen = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True} | popen
    return subprocess.Popen(_command(args, env), env=env, cwd=cwd, **popen)


def wait_paused(proc: subprocess.Popen, timeout: float = 600) -> None:
    """Wait until a process started with ``PHOTODEDUP_TEST_PAUSE`` says it is paused (its first stdout
    line); fail with its output if it ends or says something else first. ``timeout`` only guards a hang."""
    import select

    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    line = proc.stdout.readline() if ready else ""
    if line.strip() != PAUSED:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the process did not pause (exit {proc.returncode}): {line}{out}\n{err}")


def invoke(*args, env: dict | None = None):
    """``photodedup ARGS`` in this process through Typer's CliRunner: for help and usage (what Click
    answers before any command runs). Everything else goes through ``run_cli``, the real entry point."""
    from typer.testing import CliRunner

    from photodedup.cli import app

    return CliRunner().invoke(app, [str(arg) for arg in args], env=env)


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


def idle_connections(port: int, count: int) -> list:
    """``count`` loopback connections to ``port`` that never send a request (the kernel completes each
    handshake): what a slowloris or a crowd of idle clients holds. Close them when done."""
    import socket

    idle = []
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        idle.append(sock)
    return idle


def drawn_picture(seed: int) -> Image.Image:
    """A drawn picture, 1600 x 1200: a smooth background and sharp-edged shapes (few features for ORB to align on)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    image = Image.fromarray(rng.integers(0, 256, (3, 4, 3), dtype=np.uint8)).resize((1600, 1200),
                                                                                    Image.Resampling.BICUBIC)
    draw = ImageDraw.Draw(image)
    for _ in range(8):
        x, y = rng.integers(-200, 1600), rng.integers(-200, 1200)
        box = (x, y, x + rng.integers(100, 800), y + rng.integers(100, 600))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        (draw.ellipse if rng.integers(0, 2) else draw.rectangle)(box, fill=colour)
    return image
