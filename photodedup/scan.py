"""``photodedup scan``: walk folders and record every image and video in the catalog.

Each image is read once: MD5 of its bytes, one decode (at reduced JPEG DCT scale) that gives the
pHash/dHash, the model crop and a thumbnail, plus the capture time (``capture_time``), camera and
orientation. Videos get their MD5, duration, size, capture time and a first-frame thumbnail, and
sidecars (.xmp, .aae, Takeout .json) their MD5 when a photo is beside them (``media``). Broken input is
data (a row with a status and a reason), never a crash. A re-scan reads only new or changed files
(size, mtime); files that disappeared are marked missing. Results are committed in batches, so a
scan killed at any moment resumes where it stopped.
"""

from __future__ import annotations

import ctypes
import fnmatch
import functools
import hashlib
import io
import logging
import os
import stat as stat_mode
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import imagehash
import numpy as np
from PIL import Image, IptcImagePlugin, UnidentifiedImageError

from photodedup import capture_time, config, formats, hashing, media, raw
from photodedup.catalog import Catalog, display
from photodedup.errors import BadInputError, Interrupted
from photodedup.executor import Executor, LocalExecutor, open_executor
from photodedup.keeper import human_size
from photodedup.paths import canonical_roots
from photodedup.paths import under_any as _under_any
from photodedup.preprocess import (
    DEFAULT_MAX_PIXELS,
    DEFAULT_PREPROCESS,
    center_crop_array,
    decode_oriented,
    encode_jpeg,
    open_checked,
)
from photodedup.progress import ProgressCallback, no_progress
from photodedup.text import printable

log = logging.getLogger(__name__)

#: What RAW+JPEG pairs and companions are made from (a re-scan reads them for every file).
THUMB_SIZE = 320
WRITE_BATCH = 64
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters
#: Bytes Pillow hands its decoder at a time (its default, 64 KiB, makes a 4 MB JPEG 60 rounds of Python, of
#: libjpeg suspending mid-block and starting that block again, and of copying what it left): the same
#: pixels and the same errors, about 1.5% fewer instructions per 12 MP photo.
DECODE_BLOCK = 4 << 20
_ORIENTATION_SWAPS = {5, 6, 7, 8}


@dataclass
class ScanSummary:
    """What a scan did. ``errors`` counts files recorded with an error status in this scan."""

    files: int = 0
    new: int = 0
    updated: int = 0
    retried: int = 0    # files whose last attempt failed, read again
    unchanged: int = 0
    missing: int = 0
    errors: int = 0
    skipped: int = 0
    hard_links: int = 0  # files that are another name (a hard link) of a file found before them
    seconds: float = 0.0
    error_kinds: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # roots reached by another path, inside another, twice
    #: Files not looked at, by kind (the format table's kinds that the scan does not read, and
    #: ``unknown``); they are not in ``files``.
    not_looked_at: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys([*(k for k in formats.KINDS if k not in formats.SCANNED_KINDS),
                                               "unknown"], 0))
    catalog: str = ""

    @property
    def images_per_second(self) -> float:
        read = self.new + self.updated
        return read / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return asdict(self) | {"images_per_second": round(self.images_per_second, 1)}

    def render(self) -> str:
        lines = [
            f"Scanned {self.files} files in {self.seconds:.1f}s ({self.images_per_second:.1f} images/s read)",
            f"  new {self.new}, updated {self.updated}, retried {self.retried}, unchanged {self.unchanged}, "
            f"missing {self.missing}, skipped {self.skipped}, errors {self.errors}",
        ]
        for kind, count in sorted(self.error_kinds.items()):
            lines.append(f"  error {printable(kind)}: {count}")
        if any(self.not_looked_at.values()):
            lines.append("  not looked at: " + ", ".join(f"{kind} {n}" for kind, n in self.not_looked_at.items()))
        if self.hard_links:
            lines.append(f"  {self.hard_links} hard links: other names of files found (the same file, nothing to free)")
        lines += [f"  note: {printable(note)}" for note in self.notes]
        lines.append(f"Catalog: {printable(self.catalog)}")
        return "\n".join(lines)


def scan(
    roots: Sequence[Path | str], *, catalog: Path | str | None = None, include: Iterable[str] = (),
    exclude: Iterable[str] = (), workers: int | None = None, progress: ProgressCallback = no_progress,
    max_pixels: int = DEFAULT_MAX_PIXELS, engine: str | Executor = "local", ray_address: str | None = None,
    embedder=None, follow_links: bool = False,
) -> ScanSummary:
    """Scan ``roots`` into the catalog and return what happened.

    ``engine``: where the per-file work runs (``local`` processes, ``ray`` tasks on the cluster at
    ``ray_address``, or an open ``Executor``). ``embedder``: a backend that embeds each batch as it is
    written, instead of storing the model crops (``vectors.record_with_embeddings``).

    Files are identities: each folder is recorded under one path (``canonical_roots``: symlinks resolved,
    a folder the catalog knows by another path, such as a bind mount, named by that path; a root inside
    another scanned once), and directory symlinks inside the roots are not followed (their folder is
    scanned where it lives). Directory symlinks to folders outside the roots are followed only with
    ``follow_links``. Ctrl-C keeps what was read and raises ``Interrupted`` saying so; another scan or
    embed on the same catalog is refused (``CatalogError``).
    """
    start = time.perf_counter()
    given = [Path(r).expanduser().absolute() for r in roots]
    for root in given:
        if not root.exists():
            raise BadInputError(f"no such file or folder: {root}")
        if not os.access(root, os.R_OK | (os.X_OK if root.is_dir() else 0)):
            raise BadInputError(f"cannot read {root}: permission denied")
    include, exclude = list(include), list(exclude)
    summary = ScanSummary()
    with Catalog(catalog) as cat, cat.writer("scan"):
        summary.catalog = str(cat.path)
        roots, summary.notes = canonical_roots(given, cat.roots())
        known = cat.known_files()
        todo: list[tuple[str, str, int, int, str]] = []  # path, root, size, mtime_ns, new|updated|retried
        seen: set[str] = set()
        trash_folders: list[str] = []
        inodes: set[tuple[int, int]] = set()
        moved: list[tuple[str, int, int]] = []  # unchanged files now at another device/inode
        sidecars = []  # recorded only when a photo is beside them (media.sidecar_owner)

        def consider(root: str, path: str, stat: os.stat_result) -> None:
            summary.files += 1
            identity = (stat.st_dev, stat.st_ino)
            summary.hard_links += stat.st_nlink > 1 and identity in inodes
            inodes.add(identity)
            old = known.get(path)
            if (old and old.status == "ok" and old.complete
                    and (old.size, old.mtime_ns) == (stat.st_size, stat.st_mtime_ns)):
                summary.unchanged += 1
                if (old.dev, old.ino) != identity:  # restored by a copy, or scanned before dev/ino were kept
                    moved.append((path, *identity))
                return
            if old is None:
                other = _not_scanned(path)
                if other and not media.is_sidecar(path):  # a sidecar comes here when a photo is beside it
                    summary.files -= 1
                    summary.not_looked_at[other] = summary.not_looked_at.get(other, 0) + 1
                    return
            kind = "new" if old is None else "retried" if old.status == "error" and \
                (old.size, old.mtime_ns) == (stat.st_size, stat.st_mtime_ns) else "updated"
            if not todo and isinstance(early, LocalExecutor):
                early.start()  # the worker processes start while the walk goes on
            todo.append((path, root, stat.st_size, stat.st_mtime_ns, kind))

        # a local pool starts at the first file to read; a Ray runtime (seconds) only after the walk found work
        early = open_executor(engine, workers=workers, address=ray_address) if engine == "local" else engine
        try:
            for root, path, stat in _walk(roots, include, exclude, summary, follow_links, trash_folders):
                seen.add(path)
                if media.is_sidecar(path):
                    sidecars.append((root, path, stat))
                else:
                    consider(root, path, stat)
            takeout, orphans = _sidecars(sidecars, seen, consider)
            cat.set_identities(moved)
            if orphans:
                summary.not_looked_at[formats.SIDECAR] = summary.not_looked_at.get(formats.SIDECAR, 0) + orphans

            if todo:
                executor = open_executor(engine, workers=workers, address=ray_address) \
                    if isinstance(early, str) else early
                try:
                    _inspect_all(cat, todo, summary, executor, progress, max_pixels, embedder, takeout)
                except KeyboardInterrupt:
                    saved = summary.new + summary.updated + summary.retried + summary.missing
                    raise Interrupted(f"interrupted: this scan saved {saved} files to {cat.path} "
                                      f"({sum(cat.counts().values())} in the catalog); "
                                      "run the same command again to continue where it stopped") from None
                finally:
                    if executor is not engine:
                        executor.close()
        finally:
            if early is not engine:
                early.close()

        gone = [p for p in known if p not in seen and known[p].status != "missing"
                and _under_any(p, roots) and not os.path.lexists(p)]
        summary.missing += cat.mark_missing(gone)
        for folder in trash_folders:  # recorded by an older version: a trashed copy is never a photo again
            cat.mark_missing([p for p in known if known[p].status != "missing" and _under_any(p, [folder])],
                             reason=f"inside photodedup's trash folder {folder}")
        media.link_shots(cat)
    summary.seconds = time.perf_counter() - start
    return summary


def _sidecars(found, seen: set[str], consider) -> tuple[dict[str, str], int]:
    """Consider the sidecars that describe a photo or video found beside them. Returns, by photo path,
    its Google Takeout JSON (the capture time of a photo that has none of its own), and how many
    sidecars describe no photo here (not looked at)."""
    if not found:
        return {}, 0
    names: dict[str, list[str]] = {}
    for path in seen:
        if not media.is_sidecar(path):
            folder, name = os.path.split(path)
            names.setdefault(folder, []).append(name)
    takeout: dict[str, str] = {}
    orphans = 0
    for root, path, stat in found:
        folder, name = os.path.split(path)
        owner = media.sidecar_owner(name, names.get(folder, ()))
        if owner is None:
            orphans += 1
            continue
        consider(root, path, stat)
        if path.lower().endswith(".json"):
            takeout[os.path.join(folder, owner)] = path
    return takeout, orphans


def _inspect_all(cat: Catalog, todo, summary: ScanSummary, executor: Executor, progress, max_pixels,
                 embedder=None, takeout: dict[str, str] | None = None) -> None:
    """Inspect files with the executor; commit results in batches as they arrive (this is the one writer)."""
    kinds: Counter[str] = Counter(summary.error_kinds)
    rows, crops, thumbs = [], {}, {}
    last_commit = time.monotonic()

    def commit() -> None:
        nonlocal rows, crops, thumbs, last_commit
        if rows and embedder is not None:
            from photodedup.vectors import record_with_embeddings

            record_with_embeddings(cat, embedder, rows, crops, thumbs)
        elif rows:
            cat.record_files(rows, crops=crops, thumbs=thumbs)
        rows, crops, thumbs = [], {}, {}
        last_commit = time.monotonic()

    jobs = [(path, root, max_pixels, (takeout or {}).get(path)) for path, root, _, _, _ in todo]
    kind_of = {path: kind for path, _, _, _, kind in todo}
    results = executor.map(_inspect_job, jobs, chunksize=4)
    try:
        for done, (row, crop, thumb) in enumerate(results, 1):
            path = row["path"]
            if row["status"] == "missing":  # vanished between the walk and the read
                summary.missing += 1
                kinds["vanished"] += 1
            else:
                setattr(summary, kind_of[path], getattr(summary, kind_of[path]) + 1)
                if row["status"] == "error":
                    summary.errors += 1
                    kinds[row["error_kind"]] += 1
            rows.append(row)
            if crop:
                crops[path] = (DEFAULT_PREPROCESS.spec, crop)
            if thumb:
                thumbs[path] = thumb
            if len(rows) >= WRITE_BATCH or time.monotonic() - last_commit > 2.0:
                commit()
            progress(done, len(jobs))
    finally:
        commit()  # keep what is finished, also when interrupted
        summary.error_kinds = dict(kinds)


def _walk(roots: list[Path], include: list[str], exclude: list[str], summary: ScanSummary,
          follow_links: bool = False, trash_folders: list[str] | None = None):
    """Yield ``(root, path, stat)`` for regular files below the roots; never enters a photodedup trash
    folder (its marker or its journal: ``config.is_trash_folder``), listed in ``trash_folders``.

    Never follows a directory symlink that leads inside the roots (its folder is scanned where it
    lives, under one path); follows those leading outside only with ``follow_links``, and never enters
    a directory twice (no symlink loops). Symlinks to files are skipped (the target is scanned where
    it lives, and trashing a link frees nothing).
    """
    visited: set[tuple[int, int]] = set()
    real_roots = [os.path.realpath(r) for r in roots]
    for root in roots:
        root_str = str(root)
        if root.is_file():
            if _wanted(root.name, root.name, include, exclude):
                yield root_str, root_str, root.stat()
            continue
        stack = [root_str]
        while stack:
            folder = stack.pop()
            try:
                st = os.stat(folder)
                if (st.st_dev, st.st_ino) in visited:
                    continue
                visited.add((st.st_dev, st.st_ino))
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
                if config.is_trash_folder(folder, {e.name for e in entries}):
                    if trash_folders is not None:
                        trash_folders.append(folder)
                    continue  # photodedup's own trash folder: its files are already decided
            except OSError as error:
                log.warning("cannot list %s: %s", display(folder), error)
                summary.skipped += 1
                continue
            for entry in entries:
                rel = os.path.relpath(entry.path, root_str)
                try:
                    if entry.is_dir(follow_symlinks=True):
                        if any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(entry.name, p) for p in exclude):
                            continue
                        inside = entry.is_symlink() and _under_any(os.path.realpath(entry.path), real_roots)
                        if inside:
                            continue  # scanned where it lives
                        if entry.is_symlink() and not follow_links:
                            log.warning("not following %s: it leads outside the scanned folders "
                                        "(pass --follow-links to scan it)", display(entry.path))
                            summary.skipped += 1
                            continue
                        stack.append(entry.path)
                        continue
                    if entry.is_symlink():
                        summary.skipped += 1
                        continue
                    if not entry.is_file(follow_symlinks=False):
                        continue
                    if _wanted(rel, entry.name, include, exclude):
                        yield root_str, entry.path, entry.stat(follow_symlinks=False)
                except OSError as error:  # vanished or unreadable entry
                    log.warning("cannot stat %s: %s", display(entry.path), error)
                    summary.skipped += 1


def _wanted(rel: str, name: str, include: list[str], exclude: list[str]) -> bool:
    def match(patterns: list[str]) -> bool:
        return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)

    return (not include or match(include)) and not match(exclude)


def _not_scanned(path: str) -> str | None:
    """None for a file the scan reads (a photo or video by its extension, else by its first bytes;
    unreadable files count, to be recorded); else its kind in the format table, or ``unknown``."""
    fmt = formats.by_extension(path)
    if fmt is not None and fmt.kind in formats.SCANNED_KINDS:
        return None
    try:
        with open(path, "rb") as handle:
            head = handle.read(formats.HEAD_BYTES)
    except OSError:
        return fmt.kind if fmt is not None else "unknown"
    if _magic_matches(head):
        return None
    sniffed = fmt or formats.sniff(head)
    return sniffed.kind if sniffed is not None else "unknown"


def _magic_matches(head: bytes) -> bool:
    fmt = formats.sniff(head)
    return fmt is not None and fmt.kind in formats.SCANNED_KINDS


# -- the worker: one file in, one row (+ crop, thumbnail) out ----------------------------------------
def max_file_bytes(max_pixels: int) -> int:
    """The largest file the scan reads: ``max_pixels`` at 8 bytes a pixel (16-bit RGBA, uncompressed: the
    widest pixels photos are stored with) plus 256 MiB for metadata, previews and layers. A larger file
    is refused before any byte is read (a 6 GB sparse TIFF must not cost 6 GB of memory per worker)."""
    return max_pixels * 8 + (256 << 20)


def _inspect_job(job: tuple) -> tuple[dict, bytes | None, bytes | None]:
    """One file through one descriptor: its identity and size first (a file over ``max_file_bytes`` is
    refused unread), then the MD5 by streaming, then one decode from the same descriptor (Pillow reads
    what it needs; only a RAW is read whole, within the size limit). A video has no size limit: PyAV
    reads its metadata and first frame from the same descriptor."""
    _steady_memory()
    path, root, max_pixels, *more = job
    row: dict = {"path": path, "root": root, "status": "ok", "scanned_at": time.time(), "exif_tags": 0}
    try:
        handle = open(path, "rb", opener=_open_no_follow)  # noqa: SIM115 - closed by the with below
    except FileNotFoundError:
        return row | {"status": "missing", "error_kind": "vanished", "reason": "vanished during the scan"}, None, None
    except PermissionError as error:
        return _error(_identified(row, path), "permission-denied", f"cannot read: {error.strerror}"), None, None
    except OSError as error:
        return _error(_identified(row, path), "unreadable", f"cannot read: {error}"), None, None
    with handle:
        stat = os.fstat(handle.fileno())
        _identified(row, stat=stat)
        limit = max_file_bytes(max_pixels)
        if not stat_mode.S_ISREG(stat.st_mode):
            return _error(row, "unreadable", "not a regular file (replaced during the scan)"), None, None
        if stat.st_size == 0:
            return _error(row, "empty", "empty file (0 bytes)"), None, None
        fmt = formats.by_extension(path)
        if stat.st_size > limit and not (fmt is not None and fmt.kind == formats.VIDEO):
            return _error(row, "too-large", f"refused before reading: {human_size(stat.st_size)} is over the limit "
                                            f"of {human_size(limit)} for one image"), None, None
        try:
            # A Samsung motion photo ends with SEFT; only such a file is searched for its marker in passing.
            seft = os.pread(handle.fileno(), 4, stat.st_size - 4) == b"SEFT" if stat.st_size >= 4 else False
            digest = hashlib.md5()
            if fmt is not None and fmt.kind == formats.RAW:  # LibRaw decodes the bytes the MD5 has read
                whole = handle.read()
                digest.update(whole)
                head, tail, marker = whole[: formats.HEAD_BYTES], whole, seft and media.SAMSUNG_MARKER in whole
            else:
                whole = None
                head = handle.read(formats.HEAD_BYTES)
                digest.update(head)
                tail, marker = head, seft and media.SAMSUNG_MARKER in head
                while chunk := handle.read(1 << 20):
                    digest.update(chunk)
                    if seft and not marker:
                        marker = media.SAMSUNG_MARKER in tail[-len(media.SAMSUNG_MARKER):] + chunk
                    tail = chunk
                handle.seek(0)
        except OSError as error:
            return _error(row, "unreadable", f"cannot read: {error}"), None, None
        row["md5"] = digest.hexdigest()
        samsung_trailer = marker and tail.endswith(b"SEFT")
        if media.is_sidecar(path):
            return row | {"kind": formats.SIDECAR, "format": fmt.name}, None, None
        takeout = more[0] if more else None
        fmt = fmt or formats.sniff(head)
        try:
            if fmt is not None and fmt.kind == formats.VIDEO:
                return _inspect_video(row, handle)
            return _inspect_image(row, handle, head, max_pixels, takeout, samsung_trailer, whole)
        except media.VideoReadError as error:
            return _error(row, error.kind, str(error)), None, None
        except raw.RawReadError as error:  # the pixels are lost; the camera and capture time may not be
            row["format"] = raw.raw_format(path, head)
            if whole is None:
                handle.seek(0)
                whole = handle.read()
            _read_exif(row, raw.raw_exif(whole, row["format"]), takeout=takeout)
            return _error(row, error.kind, str(error)), None, None
        except Image.DecompressionBombError as error:
            return _error(row, "too-large", f"refused before decoding: {error}"), None, None
        except UnidentifiedImageError:
            if _magic_matches(head):
                row["format"] = formats.sniff(head).name
                return _error(row, "unsupported", "an image format this installation cannot decode"), None, None
            return _error(row, "not-an-image", "not an image (unrecognised content)"), None, None
        except (OSError, SyntaxError, ValueError, EOFError) as error:
            if not row.get("format"):  # failed while opening: the format its first bytes name
                sniffed = formats.sniff(head)
                row["format"] = sniffed.name if sniffed and sniffed.kind in formats.SCANNED_KINDS else None
            text = str(error)
            kind = "truncated" if "truncat" in text or isinstance(error, EOFError) else "corrupt"
            return _error(row, kind, f"cannot decode: {text}"), None, None
        except Exception as error:  # noqa: BLE001 - any decoder failure is data about this file
            return _error(row, "corrupt", f"cannot decode: {type(error).__name__}: {error}"), None, None


@functools.cache
def _steady_memory() -> None:
    """Keep the memory one file's work frees for the next file, in a process that inspects files (a worker,
    or the scan's process while its pool starts). glibc's defaults hand buffers of a MB or more (the
    1 MiB reads of the MD5, a reduced decode's pixels and their copies) back to the system and take them
    again, zeroed, for the next file: about 500 page faults per 12 MP photo, 1-2 ms of system CPU; a 12 MP
    camera RAW decoded at half size (its 24 MB of bytes, LibRaw's sensor copy and image, ~100 MB in all)
    took ~17,000, 30-50 ms of system CPU. Now buffers under 32 MiB (glibc's largest threshold) come from the
    heap, which keeps up to 128 MiB free between files: a process keeps what its largest file needed (its
    peak stays what it was; a JPEG-only worker frees under 32 MiB and keeps as before). Only the allocator
    changes, no stored byte; a C library without ``mallopt`` (not glibc) keeps its defaults."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError, TypeError):  # no mallopt (not glibc), no C library by that name (Windows)
        return
    mallopt(_M_TRIM_THRESHOLD, 128 << 20)
    mallopt(_M_MMAP_THRESHOLD, 32 << 20)


def _identified(row: dict, path: str | None = None, stat: os.stat_result | None = None) -> dict:
    """``row`` with the size, mtime, device and inode of the file (a failed read is retried when unchanged)."""
    try:
        stat = stat or os.stat(path, follow_symlinks=False)
    except OSError:
        return row
    row["size"], row["mtime_ns"], row["dev"], row["ino"] = stat.st_size, stat.st_mtime_ns, stat.st_dev, stat.st_ino
    return row


def _open_no_follow(path: str, flags: int) -> int:
    """Never a symlink put in the file's place, never a block on a FIFO put there."""
    return os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK)


def _inspect_video(row: dict, source) -> tuple[dict, None, bytes | None]:
    frame = media.read_video(row, source)
    return row, None, _thumbnail(frame) if frame is not None else None


def _open_image(row: dict, source, max_pixels: int, takeout: str | None = None,
                samsung_trailer: bool = False) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        image = open_checked(source, max_pixels=max_pixels)
        image.decodermaxblock = DECODE_BLOCK
        width, height = image.size
        row["format"] = image.format
        if image.format == "JPEG":
            row["jpeg_quality"] = jpeg_quality(getattr(image, "quantization", None) or {})
        exif = image.getexif()
        orientation = exif.get(0x0112, 1)
        if orientation in _ORIENTATION_SWAPS:
            width, height = height, width
        row["width"], row["height"] = width, height
        _read_exif(row, exif, xmp=image.info.get("xmp"), iptc=lambda: _iptc(image), takeout=takeout)
        row["kind"] = "image"
        if formats.is_pairable(image.format):  # JPEG, HEIC: what phones write Live and motion photos as
            row["content_id"] = media.apple_content_id(exif)
            row["motion"] = media.motion_photo(image.info.get("xmp"), samsung_trailer)
        image = decode_oriented(image, fast=True, shortest=DEFAULT_PREPROCESS.size)
    return image


def _open_raw(row: dict, data: bytes, max_pixels: int, fmt: str, takeout: str | None = None) -> Image.Image:
    shot = raw.read_raw(data, fmt, max_pixels=max_pixels, shortest=DEFAULT_PREPROCESS.size)
    row.update(format=shot.format, width=shot.width, height=shot.height, raw_decode=shot.decoded_from, kind="raw")
    _read_exif(row, shot.exif, container=shot.taken_at, takeout=takeout)
    return shot.image


def _inspect_image(row: dict, handle, head: bytes, max_pixels: int, takeout: str | None = None,
                   samsung_trailer: bool = False, whole: bytes | None = None) -> tuple[dict, bytes, bytes]:
    """``whole``: the file's bytes when the MD5 has read them at once (a RAW by its extension)."""
    fmt = raw.raw_format(row["path"], head)
    image = (_open_raw(row, whole if whole is not None else handle.read(), max_pixels, fmt, takeout) if fmt
             else _open_image(row, handle, max_pixels, takeout, samsung_trailer))
    _content_features(row, image)
    crop = encode_jpeg(center_crop_array(image, DEFAULT_PREPROCESS))
    return row, crop, _thumbnail(image)


def _thumbnail(image: Image.Image) -> bytes:
    thumb = image.convert("RGB")
    thumb.thumbnail((THUMB_SIZE, THUMB_SIZE), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    thumb.save(buffer, format="JPEG", quality=80)
    return buffer.getvalue()


def _content_features(row: dict, image: Image.Image) -> None:
    """Borders trimmed (box in full-resolution pixels), grayscale, and the hashes of the content."""
    pixels = np.asarray(image.convert("RGB") if image.mode not in ("RGB", "L") else image)
    flat = hashing.is_flat(pixels)
    left, top, right, bottom = hashing.trim_box(pixels, flat=flat)
    content = image.crop((left, top, right, bottom)) if (right - left, bottom - top) != image.size else image
    scale_x, scale_y = row["width"] / image.width, row["height"] / image.height
    row["content_left"], row["content_top"] = round(left * scale_x), round(top * scale_y)
    row["content_width"] = min(row["width"], round((right - left) * scale_x))
    row["content_height"] = min(row["height"], round((bottom - top) * scale_y))
    # a solid frame (one colour) is not a grayscale copy of another solid frame: unmeasured
    row["grayscale"] = None if flat else int(
        hashing.is_grayscale_rgb(pixels[top:bottom, left:right]) if image.mode == "RGB"
        else hashing.is_grayscale(content))
    gray = content.convert("L")  # both hashes work on grey levels: convert once
    phashes = hashing.dihedral_phashes(gray)
    row["phashes"] = hashing.pack(phashes)
    row["phash"] = int(phashes[:1].view(np.int64)[0])
    row["dhash"] = _signed(imagehash.dhash(gray))


def _read_exif(row: dict, exif, *, xmp=None, iptc=None, container: str | None = None,
               takeout: str | None = None) -> None:
    sub = exif.get_ifd(0x8769)
    row["exif_tags"] = len(exif) + len(sub)
    xmp = xmp or exif.get(0x02BC)  # a TIFF's (and TIFF-based RAW's) XMP is tag 700 of IFD 0
    row["taken_at"] = capture_time.from_sources(exif, xmp if isinstance(xmp, (bytes, str)) else None, iptc,
                                                container=container, takeout=takeout)
    make, model = _clean(exif.get(0x010F)), _clean(exif.get(0x0110))
    if model and make and not model.lower().startswith(make.lower().split()[0]):
        model = f"{make} {model}"
    row["camera"] = model or make or None


# The IJG (libjpeg) luminance table at quality 50, which every quality setting scales.
_IJG_LUMINANCE = (16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                  14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
                  49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99)


def jpeg_quality(tables: dict) -> int | None:
    """The quality a JPEG's quantization tables correspond to on libjpeg's scale (1-100), or None.

    100 only when every table is all ones: the tables of a re-save at maximum quality, which no
    camera writes (its files would be twice the size). Otherwise the libjpeg estimate, at most 99.
    """
    if not tables:
        return None
    if all(v == 1 for table in tables.values() for v in table):
        return 100
    luminance = tables.get(0) or next(iter(tables.values()))
    scale = 100.0 * sum(luminance) / sum(_IJG_LUMINANCE)
    quality = (200.0 - scale) / 2.0 if scale <= 100 else 5000.0 / scale
    return max(1, min(99, round(quality)))


def _iptc(image: Image.Image) -> dict | None:
    try:
        return IptcImagePlugin.getiptcinfo(image)
    except (OSError, SyntaxError, ValueError, TypeError, IndexError):
        return None


def _clean(value) -> str | None:
    return value.strip("\x00 ").strip() or None if isinstance(value, str) else None


def _signed(hash_value) -> int:
    value = int(str(hash_value), 16)
    return value - (1 << 64) if value >= 1 << 63 else value


def _error(row: dict, kind: str, reason: str) -> dict:
    return row | {"status": "error", "error_kind": kind, "reason": reason}
