"""The catalog: one SQLite file (WAL mode, versioned schema) that every stage reads and writes.

Every write happens in a transaction, so a run killed at any moment (even ``kill -9``) leaves a
consistent catalog and the next run continues where it stopped. A file is identified by its path;
``(size, mtime_ns)`` tells whether it changed, and a changed file loses its derived data (crop,
thumbnail, embeddings) in the same transaction that records the change.

Paths: Linux file names are bytes. A path that is valid UTF-8 is stored as TEXT; one that is not is
stored losslessly as its raw bytes (a BLOB, ``os.fsencode``) in the same column and reads back as
Python's surrogate-escaped ``str`` (``os.fsdecode``), so the file can always be opened again.
``display`` turns such a path into readable text (the odd bytes as ``\\xNN``) for people.

A catalog that cannot be written (a read-only file or filesystem) still opens for reading
(``readonly``); any write then fails with a clear ``CatalogError``, as does a full disk.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

from photodedup import config
from photodedup.errors import CatalogError
from photodedup.text import private_folder

# Each entry migrates the schema from version i to i+1. Append only; never edit a released one.
MIGRATIONS: list[str] = [
    # 1: files, derived images, models and embeddings
    """
    CREATE TABLE files (
        id          INTEGER PRIMARY KEY,
        path        TEXT NOT NULL UNIQUE,      -- absolute path
        root        TEXT,                      -- the scan root it was found under
        size        INTEGER,
        mtime_ns    INTEGER,
        status      TEXT NOT NULL,             -- ok | error | missing
        error_kind  TEXT,                      -- empty | truncated | not-an-image | unsupported | ...
        reason      TEXT,
        md5         TEXT,
        phash       INTEGER,                   -- 64-bit hash as signed int64
        dhash       INTEGER,
        width       INTEGER,                   -- after EXIF orientation
        height      INTEGER,
        format      TEXT,
        taken_at    TEXT,                      -- EXIF DateTimeOriginal, ISO 8601
        camera      TEXT,                      -- EXIF Make Model
        exif_tags   INTEGER NOT NULL DEFAULT 0,-- how many EXIF tags (keeper choice: richest EXIF)
        scanned_at  REAL NOT NULL
    );
    CREATE INDEX files_status ON files(status);
    CREATE INDEX files_md5 ON files(md5);
    CREATE TABLE crops (                       -- the model crop, decoded once at scan time
        file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
        spec    TEXT NOT NULL,                 -- PreprocessConfig.spec it was made with
        jpeg    BLOB NOT NULL
    );
    CREATE TABLE thumbs (
        file_id INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
        jpeg    BLOB NOT NULL
    );
    CREATE TABLE models (
        id          TEXT PRIMARY KEY,          -- e.g. ViT-B-32/laion2b_s34b_b79k or ViT-B-32/random-seed0
        weights     TEXT NOT NULL,
        is_random   INTEGER NOT NULL DEFAULT 0,
        dim         INTEGER NOT NULL,
        created_at  REAL NOT NULL
    );
    CREATE TABLE embeddings (
        file_id     INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        model_id    TEXT NOT NULL REFERENCES models(id),
        vector      BLOB,                      -- float32 [dim], L2-normalised, NULL when error
        backend     TEXT,
        error       TEXT,
        created_at  REAL NOT NULL,
        PRIMARY KEY (file_id, model_id)
    );
    """,
    # 2: duplicate groups (written by `photodedup group`; the latest run is the current one)
    """
    CREATE TABLE group_runs (
        id          INTEGER PRIMARY KEY,
        created_at  REAL NOT NULL,
        params      TEXT NOT NULL              -- JSON: thresholds, method, model id
    );
    CREATE TABLE groups (
        id            INTEGER PRIMARY KEY,
        run_id        INTEGER NOT NULL REFERENCES group_runs(id) ON DELETE CASCADE,
        kind          TEXT NOT NULL,           -- exact | perceptual | semantic | mixed
        keeper_id     INTEGER NOT NULL REFERENCES files(id),
        keeper_reason TEXT NOT NULL
    );
    CREATE TABLE group_members (
        group_id  INTEGER NOT NULL REFERENCES groups(id) ON DELETE CASCADE,
        file_id   INTEGER NOT NULL REFERENCES files(id),
        evidence  TEXT NOT NULL,               -- exact | perceptual | semantic: what joined it
        score     REAL NOT NULL,               -- 1.0 exact, 1 - hamming/64, cosine
        PRIMARY KEY (group_id, file_id)
    );
    CREATE INDEX group_members_file ON group_members(file_id);
    """,
    # 3: review decisions (photodedup review). keep/trash is per file with the md5 it was decided on.
    # "not duplicates" is per pair of contents (md5), so it survives re-scans and regrouping.
    """
    CREATE TABLE decisions (
        file_id     INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
        action      TEXT NOT NULL,             -- keep | trash
        md5         TEXT,                      -- content decided on: apply skips the file if it changed
        group_id    INTEGER,                   -- group it was decided in (regrouping replaces groups)
        decided_at  REAL NOT NULL
    );
    CREATE TABLE not_duplicates (
        md5_a       TEXT NOT NULL,             -- md5_a < md5_b
        md5_b       TEXT NOT NULL,
        decided_at  REAL NOT NULL,
        PRIMARY KEY (md5_a, md5_b)
    );
    """,
    # 4: why each member is not the keeper (the keeper rule that decided), shown in every output
    """
    ALTER TABLE group_members ADD COLUMN note TEXT NOT NULL DEFAULT '';
    """,
    # 5: camera RAW files: how each was decoded, and RAW+JPEG pairs (one shot written as two files)
    """
    ALTER TABLE files ADD COLUMN raw_decode TEXT;  -- RAW files: preview or half-size (NULL: not a RAW)
    CREATE TABLE raw_pairs (                       -- recomputed by every scan (photodedup.raw.find_pairs)
        raw_id    INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
        other_id  INTEGER NOT NULL UNIQUE REFERENCES files(id) ON DELETE CASCADE  -- its JPEG or HEIC
    );
    """,
    # 6: per-file features for matching and keeper rules (photodedup.hashing). The content is the image
    # without uniform borders, in oriented full-resolution pixels; phash/dhash are of the content.
    # NULL content_width on an ok row: scanned before version 6 (the next scan reads it again).
    # grayscale: 1 when the image has no colour information. phashes: the 8 dihedral pHashes of the
    # content, uint64 little-endian, in photodedup.hashing.VARIANTS order. (No SQL comments here:
    # SQLite appends an added column's text to the stored CREATE TABLE.)
    """
    ALTER TABLE files ADD COLUMN content_width INTEGER;
    ALTER TABLE files ADD COLUMN content_height INTEGER;
    ALTER TABLE files ADD COLUMN content_left INTEGER;
    ALTER TABLE files ADD COLUMN content_top INTEGER;
    ALTER TABLE files ADD COLUMN grayscale INTEGER;
    ALTER TABLE files ADD COLUMN phashes BLOB
    """,
    # 7: the JPEG quality its quantization tables say (photodedup.scan.jpeg_quality; 100 only for
    # all-ones tables, which cameras never write: a re-save at maximum quality). NULL: not a JPEG.
    """
    ALTER TABLE files ADD COLUMN jpeg_quality INTEGER
    """,
    # 8: what joined each member (JSON: kind, variant, bits, inliers, coverage, how); '' for the keeper
    """
    ALTER TABLE group_members ADD COLUMN match TEXT NOT NULL DEFAULT ''
    """,
    # 9: the device and inode the scan read (the review page serves a file only if it is still that one)
    """
    ALTER TABLE files ADD COLUMN dev INTEGER;
    ALTER TABLE files ADD COLUMN ino INTEGER
    """,
    # 10: the precision the vectors were made at. A model id ends in "@int8" (fp16, bf16) for vectors not
    # made at fp32, so two precisions never share one id; rows from before say NULL (unknown).
    """
    ALTER TABLE models ADD COLUMN precision TEXT
    """,
    # 11: videos, Live Photos, motion photos and sidecars (photodedup.media). kind: image | raw | video |
    # sidecar (NULL: scanned before 11, an image or a RAW). duration: a video's seconds. content_id: Apple's
    # Live Photo content identifier (the still's MakerNote, the MOV's QuickTime key). motion: google or
    # samsung for a still that carries a video inside it (a motion photo). companions: files that travel
    # with a lead file (kept, trashed and restored with it): a Live Photo's video, a photo's sidecars;
    # recomputed by every scan (photodedup.media.find_companions), as raw_pairs are.
    """
    ALTER TABLE files ADD COLUMN kind TEXT;
    ALTER TABLE files ADD COLUMN duration REAL;
    ALTER TABLE files ADD COLUMN content_id TEXT;
    ALTER TABLE files ADD COLUMN motion TEXT;
    CREATE TABLE companions (
        file_id  INTEGER PRIMARY KEY REFERENCES files(id) ON DELETE CASCADE,
        lead_id  INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE,
        kind     TEXT NOT NULL
    );
    CREATE INDEX companions_lead ON companions(lead_id)
    """,
    # 12: a group's category: duplicate (trashing all but one loses nothing) or similar (shots of one
    # scene, other captures: never bulk-accepted, nothing suggested for the trash). photodedup.confirm.
    """
    ALTER TABLE groups ADD COLUMN category TEXT NOT NULL DEFAULT 'duplicate'
    """,
    # 13: where in photodedup's trash a file is (``apply`` moved it there; NULL: not in the trash), so the
    # state is data, read by one function (``in_trash``). Before 13 the only record was the reason's text
    # "in the trash: <path>": those rows are filled from it.
    """
    ALTER TABLE files ADD COLUMN trashed_to TEXT;
    UPDATE files SET trashed_to = substr(reason, 15)
        WHERE status = 'missing' AND substr(reason, 1, 14) = 'in the trash: '
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)

FILE_COLUMNS = (
    "path", "root", "size", "mtime_ns", "status", "error_kind", "reason", "md5", "phash", "dhash",
    "width", "height", "format", "taken_at", "camera", "exif_tags", "scanned_at", "raw_decode",
    "content_width", "content_height", "content_left", "content_top", "grayscale", "phashes", "jpeg_quality",
    "dev", "ino", "kind", "duration", "content_id", "motion", "trashed_to",
)
#: The kinds of file that ``group`` and ``embed`` look at (sidecars travel with their photo only).
PICTURE_KINDS = ("image", "raw", "video")


def in_trash(row) -> bool:
    """Whether a ``files`` row is in photodedup's trash (moved there by ``apply``, not restored since;
    ``trashed_to`` says where). Every reader asks this; ``Catalog.mark_trashed`` is its one writer."""
    return row["status"] == "missing" and row["trashed_to"] is not None


@dataclass(frozen=True)
class Known:
    """What the catalog knows of a path, enough to decide whether to read it again."""

    id: int
    size: int | None
    mtime_ns: int | None
    status: str
    complete: bool = True  # False: an ok row without the features of the current schema (read it again)
    dev: int | None = None  # the device and inode the scan read
    ino: int | None = None


_PATH_COLUMNS = frozenset({"path", "root"})


def to_db(path: str) -> str | bytes:
    """A path as the catalog stores it: the text when it is valid UTF-8, else its raw bytes."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        return os.fsencode(path)
    return path


def display(text: str) -> str:
    """``text`` (a path, or a message holding paths) printable as UTF-8: undecodable bytes as ``\\xNN``."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    return text


def _row(cursor: sqlite3.Cursor, values: tuple) -> sqlite3.Row:
    """``sqlite3.Row`` with paths stored as bytes turned back into (surrogate-escaped) ``str``."""
    if any(isinstance(v, bytes) for v in values):
        names = [d[0] for d in cursor.description]
        values = tuple(os.fsdecode(v) if isinstance(v, bytes) and names[i] in _PATH_COLUMNS else v
                       for i, v in enumerate(values))
    return sqlite3.Row(cursor, values)


class Catalog:
    """A connection to the catalog file. Use as a context manager or call ``close()``.

    ``readonly`` is true when the file or its filesystem cannot be written: reading works, and any
    write raises ``CatalogError`` saying so.
    """

    def __init__(self, path: Path | str | None = None, *, create: bool = True) -> None:
        self.path = Path(path) if path else config.default_catalog()
        self.readonly = False
        self._lock_fd: int | None = None
        if not create and not self.path.exists():
            raise CatalogError(f"no catalog at {self.path}", hint="run `photodedup scan ROOT` first, or pass --catalog")
        try:
            private_folder(self.path.parent)
        except OSError as error:
            raise CatalogError(f"cannot create the catalog folder {self.path.parent}: {error.strerror}") from error
        why = self._why_readonly() if self.path.exists() else None
        if not self.path.exists():  # it holds thumbnails of private photos: 0600 (SQLite gives -wal, -shm its mode)
            try:
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o600))
            except OSError as error:
                raise CatalogError(f"cannot create the catalog {self.path}: {error.strerror}") from error
        if why:
            self._open_readonly(why)
            return
        try:
            self.conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            self.conn.row_factory = _row
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as error:
            raise self._error(error) from error

    def _why_readonly(self) -> str | None:
        """Why the catalog file cannot be written (a read-only filesystem or file), or None."""
        try:
            os.close(os.open(self.path, os.O_RDWR))
        except OSError as error:
            if error.errno == errno.EROFS:
                return "it is on a read-only filesystem"
            if error.errno in (errno.EACCES, errno.EPERM):
                return "this user may not write the file"
            return None
        if not os.access(self.path.parent, os.W_OK):  # SQLite also writes beside it (-wal, -shm)
            probe = self.path.parent / f".{self.path.name}.{os.getpid()}.probe"
            try:
                os.close(os.open(probe, os.O_CREAT | os.O_EXCL, 0o600))
            except OSError:
                return "this user may not write its folder"
            os.unlink(probe)
        return None

    def _open_readonly(self, why: str) -> None:
        """Open for reading only: ``mode=ro``, or ``immutable`` where nothing can change it (read-only fs)."""
        self.readonly, self._readonly_reason = True, why
        flags = "mode=ro" + ("&immutable=1" if "filesystem" in why or "folder" in why else "")
        uri = "file:" + quote(str(self.path.absolute())) + "?" + flags
        try:
            self.conn = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False)
            self.conn.row_factory = _row
            current = self.version
        except sqlite3.DatabaseError as error:
            raise CatalogError(f"cannot read the catalog {self.path} ({why}): {error}") from error
        if current != SCHEMA_VERSION:
            raise CatalogError(f"the catalog {self.path} needs an upgrade (schema {current} to {SCHEMA_VERSION}) "
                               f"but is read-only: {why}", hint="make it writable once, or use a writable copy")

    def _error(self, error: sqlite3.Error) -> CatalogError:
        """A SQLite failure as the sentence a person can act on."""
        text = str(error)
        if "disk is full" in text or "disk I/O" in text and _disk_full(self.path):
            return CatalogError(f"no space left on the disk of the catalog {self.path}",
                                hint="free some space and run the same command again: what was saved is kept")
        if "readonly" in text or "read-only" in text:
            why = self._why_readonly() or "SQLite refused to write it"
            return CatalogError(f"the catalog {self.path} is read-only: {why}",
                                hint="make it writable, or pass --catalog a writable copy; `group` works read-only")
        if "locked" in text:
            return CatalogError(f"the catalog {self.path} is locked by another process ({text})",
                                hint="wait for the other photodedup command to finish")
        return CatalogError(f"cannot open the catalog {self.path}: {text}")

    def require_writable(self) -> None:
        if self.readonly:
            raise CatalogError(f"the catalog {self.path} is read-only: {self._readonly_reason}",
                               hint="make it writable, or pass --catalog a writable copy; `group` works read-only")

    @contextmanager
    def writer(self, stage: str) -> Iterator[Catalog]:
        """Hold the catalog for one writing stage (scan, embed); another one refuses clearly.

        A POSIX lock on ``<catalog>.lock`` (holding the holder's pid): released when the process ends
        however it ends, and, unlike ``flock``, not inherited by the worker processes it forks.
        """
        self.require_writable()
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
            os.close(fd)
            if error.errno not in (errno.EAGAIN, errno.EACCES):
                raise
            pid, _, command = holder.partition(" ")
            raise CatalogError(f"another photodedup {command or 'scan or embed'} (pid {pid or '?'}) is writing "
                               f"{self.path}",
                               hint=f"wait for it to finish, then run {stage} again: it continues from there") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {stage}\n".encode(), 0)
            yield self
        finally:
            os.close(fd)

    # -- plumbing -------------------------------------------------------------------------------
    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if hasattr(self, "conn"):
            self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work (BEGIN IMMEDIATE ... COMMIT, rolled back on any error).

        SQLite failures (a full disk, a read-only file) become ``CatalogError``s.
        """
        self.require_writable()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as error:
            raise self._error(error) from error
        try:
            yield self.conn
        except BaseException as error:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            if isinstance(error, sqlite3.OperationalError):
                raise self._error(error) from error
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.OperationalError as error:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise self._error(error) from error

    @property
    def version(self) -> int:
        return self.conn.execute("SELECT version FROM schema_version").fetchone()[0]

    def _migrate(self) -> None:
        with self.transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            row = conn.execute("SELECT version FROM schema_version").fetchone()
            if row is None:
                conn.execute("INSERT INTO schema_version VALUES (0)")
                current = 0
            else:
                current = row[0]
            if current > SCHEMA_VERSION:
                raise CatalogError(
                    f"the catalog {self.path} has schema version {current}, newer than this photodedup "
                    f"({SCHEMA_VERSION})", hint="upgrade photodedup")
            for version in range(current, SCHEMA_VERSION):
                for statement in _statements(MIGRATIONS[version]):
                    conn.execute(statement)
                conn.execute("UPDATE schema_version SET version = ?", (version + 1,))

    # -- files ----------------------------------------------------------------------------------
    def known_files(self) -> dict[str, Known]:
        """Every path the catalog holds, with what decides whether it changed."""
        rows = self.conn.execute("SELECT id, path, size, mtime_ns, status, "
                                 "status != 'ok' OR kind IN ('video', 'sidecar') OR (content_width IS NOT NULL "
                                 "AND (format IS NOT 'JPEG' OR jpeg_quality IS NOT NULL)), dev, ino FROM files")
        return {row[1]: Known(row[0], row[2], row[3], row[4], bool(row[5]), row[6], row[7]) for row in rows}

    def roots(self) -> list[str]:
        """The scan roots the catalog's files were found under, first scanned first."""
        rows = self.conn.execute("SELECT root FROM files WHERE root IS NOT NULL GROUP BY root ORDER BY min(id)")
        return [row[0] for row in rows]

    def set_identities(self, changes: Iterable[tuple[str, int, int]]) -> None:
        """Record ``(path, dev, ino)``: an unchanged file now at another device or inode (a copy put back)."""
        changes = list(changes)
        if not changes:
            return
        with self.transaction() as conn:
            conn.executemany("UPDATE files SET dev = ?, ino = ? WHERE path = ?",
                             [(dev, ino, to_db(path)) for path, dev, ino in changes])

    def record_files(self, rows: Sequence[dict], *, crops: dict[str, tuple[str, bytes]] | None = None,
                     thumbs: dict[str, bytes] | None = None) -> dict[str, int]:
        """Insert or replace file rows (keyed by path) with their crop and thumbnail, in one transaction.

        A row that replaces an older version of the file drops the old derived data first.
        Returns the file id of each path.
        """
        ids: dict[str, int] = {}
        crops = crops or {}
        thumbs = thumbs or {}
        placeholders = ", ".join("?" for _ in FILE_COLUMNS)
        updates = ", ".join(f"{c}=excluded.{c}" for c in FILE_COLUMNS if c != "path")
        with self.transaction() as conn:
            for row in rows:
                values = [row.get(c, 0 if c == "exif_tags" else None) for c in FILE_COLUMNS]
                values[0], values[1] = to_db(values[0]), values[1] and to_db(values[1])
                values[FILE_COLUMNS.index("reason")] = values[FILE_COLUMNS.index("reason")] and display(
                    values[FILE_COLUMNS.index("reason")])
                file_id = conn.execute(
                    f"INSERT INTO files ({', '.join(FILE_COLUMNS)}) VALUES ({placeholders}) "
                    f"ON CONFLICT(path) DO UPDATE SET {updates} RETURNING id", values).fetchone()[0]
                for table in ("crops", "thumbs", "embeddings"):
                    conn.execute(f"DELETE FROM {table} WHERE file_id = ?", (file_id,))
                if row["path"] in crops:
                    spec, jpeg = crops[row["path"]]
                    conn.execute("INSERT INTO crops VALUES (?, ?, ?)", (file_id, spec, jpeg))
                if row["path"] in thumbs:
                    conn.execute("INSERT INTO thumbs VALUES (?, ?)", (file_id, thumbs[row["path"]]))
                ids[row["path"]] = file_id
        return ids

    def mark_missing(self, paths: Iterable[str], reason: str = "not found on the last scan",
                     restate: bool = False, *, trashed_to: str | None = None) -> int:
        """Mark paths missing (their rows and decisions stay; ``restate``: also those missing already, with
        this reason); returns how many changed. ``trashed_to``: see ``mark_trashed``."""
        now = time.time()
        with self.transaction() as conn:
            cursor = conn.executemany(
                "UPDATE files SET status='missing', error_kind='missing', reason=?, scanned_at=?, trashed_to=? "
                "WHERE path=? AND (status!='missing' OR ?)",
                [(display(reason), now, trashed_to, to_db(p), restate) for p in paths])
            return cursor.rowcount

    def mark_trashed(self, path: str, trashed_to: str | os.PathLike, restate: bool = False) -> int:
        """``path`` was moved into photodedup's trash, to ``trashed_to`` (``in_trash`` says so from now on)."""
        return self.mark_missing([path], reason=f"in the trash: {trashed_to}", restate=restate,
                                 trashed_to=to_db(os.fspath(trashed_to)))

    def files(self, status: str | None = "ok", under: str | None = None, kinds: Sequence[str] | None = None,
              columns: Sequence[str] | None = None) -> list[sqlite3.Row]:
        """File rows, optionally only one status, only below a folder, only these kinds (NULL: image),
        only these columns (of ``FILE_COLUMNS``, with ``id``)."""
        picked = ", ".join(c for c in ("id", *FILE_COLUMNS) if c in columns) if columns else "*"
        sql, args = f"SELECT {picked} FROM files WHERE 1=1", []
        if status:
            sql += " AND status = ?"
            args.append(status)
        if kinds:
            sql += f" AND coalesce(kind, 'image') IN ({', '.join('?' * len(kinds))})"
            args += list(kinds)
        if under:
            sql += " AND (path = ? OR path LIKE ? ESCAPE '\\')"
            args += [to_db(under), _like_prefix(under)]
        return self.conn.execute(sql + " ORDER BY path", args).fetchall()

    def set_raw_pairs(self, pairs: Iterable[tuple[int, int]]) -> None:
        """Replace the RAW+JPEG pairs with ``(raw_id, other_id)`` pairs, in one transaction."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM raw_pairs")
            conn.executemany("INSERT INTO raw_pairs VALUES (?, ?)", pairs)

    def raw_pairs(self) -> dict[int, int]:
        """RAW+JPEG pairs: the RAW's file id -> its JPEG's (or HEIC's) file id."""
        return dict(self.conn.execute("SELECT raw_id, other_id FROM raw_pairs").fetchall())

    def set_companions(self, rows: Iterable[tuple[int, int, str]]) -> None:
        """Replace the companions with ``(file_id, lead_id, kind)`` rows, in one transaction."""
        with self.transaction() as conn:
            conn.execute("DELETE FROM companions")
            conn.executemany("INSERT INTO companions (file_id, lead_id, kind) VALUES (?, ?, ?)", rows)

    def companions(self) -> list[tuple[int, int, str]]:
        """``(file_id, lead_id, kind)``: files that travel with a lead (Live Photo videos, sidecars)."""
        return [tuple(row) for row in self.conn.execute(
            "SELECT file_id, lead_id, kind FROM companions ORDER BY lead_id, file_id")]

    def file(self, file_id: int) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM files WHERE id = ?", (file_id,)).fetchone()

    def counts(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT status, count(*) FROM files GROUP BY status")
        return {row[0]: row[1] for row in rows}

    def thumb(self, file_id: int) -> bytes | None:
        row = self.conn.execute("SELECT jpeg FROM thumbs WHERE file_id = ?", (file_id,)).fetchone()
        return row[0] if row else None

    def crops(self, file_ids: Sequence[int], spec: str) -> dict[int, bytes]:
        """Stored model crops (JPEG bytes) for these files made with ``spec``."""
        out: dict[int, bytes] = {}
        for start in range(0, len(file_ids), 500):
            chunk = list(file_ids[start : start + 500])
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT file_id, jpeg FROM crops WHERE spec = ? AND file_id IN ({marks})", [spec, *chunk])
            out.update({row[0]: row[1] for row in rows})
        return out

    # -- models and embeddings ------------------------------------------------------------------
    def register_model(self, model_id: str, *, weights: str, is_random: bool, dim: int,
                       precision: str | None = None) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO models (id, weights, is_random, dim, created_at, precision) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(id) DO NOTHING", (model_id, weights, int(is_random), dim, time.time(), precision))

    def models(self) -> list[sqlite3.Row]:
        return self.conn.execute(
            "SELECT m.*, (SELECT count(*) FROM embeddings e WHERE e.model_id = m.id AND e.vector IS NOT NULL)"
            " AS embedded FROM models m ORDER BY created_at").fetchall()

    def files_without_embedding(self, model_id: str) -> list[sqlite3.Row]:
        """OK files that have neither an embedding nor a recorded error for ``model_id``."""
        return self.conn.execute(
            "SELECT f.* FROM files f WHERE f.status = 'ok' AND coalesce(f.kind, 'image') IN ('image', 'raw') "
            "AND NOT EXISTS "
            "(SELECT 1 FROM embeddings e WHERE e.file_id = f.id AND e.model_id = ?) ORDER BY f.id",
            (model_id,)).fetchall()

    def add_embeddings(self, model_id: str, file_ids: Sequence[int], vectors: np.ndarray | None,
                       *, backend: str, errors: dict[int, str] | None = None) -> None:
        """Store one batch of embeddings (and per-file errors) atomically."""
        now = time.time()
        rows = []
        if vectors is not None:
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            rows += [(fid, model_id, vectors[i].tobytes(), backend, None, now) for i, fid in enumerate(file_ids)]
        rows += [(fid, model_id, None, backend, reason, now) for fid, reason in (errors or {}).items()]
        with self.transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO embeddings VALUES (?, ?, ?, ?, ?, ?)", rows)

    def embeddings(self, model_id: str) -> tuple[np.ndarray, np.ndarray]:
        """``(file_ids int64 [N], vectors float32 [N, dim])`` for OK files with an embedding."""
        rows = self.conn.execute(
            "SELECT e.file_id, e.vector FROM embeddings e JOIN files f ON f.id = e.file_id "
            "WHERE e.model_id = ? AND e.vector IS NOT NULL AND f.status = 'ok' ORDER BY e.file_id",
            (model_id,)).fetchall()
        if not rows:
            return np.zeros(0, dtype=np.int64), np.zeros((0, config.EMBEDDING_DIM), dtype=np.float32)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), -1)
        return ids, vectors

    # -- duplicate groups (photodedup group; the latest run is the current one) -----------------
    def store_group_run(self, params: dict, groups: Sequence[tuple]) -> tuple[int, list[int]]:
        """Store one grouping run in one transaction; returns ``(run id, group ids)``.

        ``groups``: ``(kind, keeper file id, keeper reason, members[, category])`` with members
        ``(file id, evidence, score, note[, match JSON])``.
        """
        with self.transaction() as conn:
            run_id = conn.execute("INSERT INTO group_runs (created_at, params) VALUES (?, ?)",
                                  (time.time(), json.dumps(params))).lastrowid
            ids = []
            for kind, keeper, reason, members, *category in groups:
                group_id = conn.execute(
                    "INSERT INTO groups (run_id, kind, keeper_id, keeper_reason, category) VALUES (?, ?, ?, ?, ?)",
                    (run_id, kind, keeper, reason, category[0] if category else "duplicate")).lastrowid
                conn.executemany("INSERT INTO group_members (group_id, file_id, evidence, score, note, match) "
                                 "VALUES (?, ?, ?, ?, ?, ?)", [(group_id, *m, "")[:6] for m in members])
                ids.append(group_id)
        return run_id, ids

    def group_run(self, run_id: int | None = None) -> tuple[int, dict] | None:
        """``(run id, params)`` of ``run_id``, else of the latest run; None when there is none."""
        if run_id is None:
            row = self.conn.execute("SELECT id, params FROM group_runs ORDER BY id DESC LIMIT 1").fetchone()
        else:
            row = self.conn.execute("SELECT id, params FROM group_runs WHERE id = ?", (run_id,)).fetchone()
        return (row[0], json.loads(row[1])) if row else None

    def group_rows(self, run_id: int) -> list[sqlite3.Row]:
        """The groups of a run, by id."""
        return self.conn.execute("SELECT * FROM groups WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()

    def group_member_rows(self, run_id: int) -> list[sqlite3.Row]:
        """Every member of a run's groups: its file row plus ``group_id``, ``evidence``, ``score``, ``note``,
        ``match``."""
        return self.conn.execute(
            "SELECT f.*, m.group_id, m.evidence, m.score, m.note, m.match FROM group_members m "
            "JOIN groups g ON g.id = m.group_id JOIN files f ON f.id = m.file_id "
            "WHERE g.run_id = ? ORDER BY m.group_id, m.evidence != 'keeper', f.path", (run_id,)).fetchall()

    # -- review decisions (photodedup review, apply, undo) --------------------------------------
    def decisions(self) -> dict[int, sqlite3.Row]:
        """The current keep/trash decision of every decided file, by file id."""
        rows = self.conn.execute("SELECT * FROM decisions")
        return {row["file_id"]: row for row in rows}

    def set_decisions(self, actions: dict[int, str | None], *, group_id: int | None = None) -> None:
        """Record ``keep``/``trash`` (or clear with ``None``) for files, with their current md5 and the time."""
        now = time.time()
        with self.transaction() as conn:
            for file_id, action in actions.items():
                if action is None:
                    conn.execute("DELETE FROM decisions WHERE file_id = ?", (file_id,))
                    continue
                conn.execute(
                    "INSERT OR REPLACE INTO decisions SELECT id, ?, md5, ?, ? FROM files WHERE id = ?",
                    (action, group_id, now, file_id))

    def not_duplicate_pairs(self) -> set[tuple[str, str]]:
        """Pairs of contents (md5_a < md5_b) that a person said are not duplicates."""
        return {(row[0], row[1]) for row in self.conn.execute("SELECT md5_a, md5_b FROM not_duplicates")}

    def set_not_duplicates(self, md5s: Iterable[str], *, value: bool = True) -> None:
        """Mark (or unmark) every pair of these distinct contents as not duplicates of each other."""
        unique = sorted(set(md5s))
        pairs = [(a, b) for i, a in enumerate(unique) for b in unique[i + 1:]]
        now = time.time()
        with self.transaction() as conn:
            if value:
                conn.executemany("INSERT OR REPLACE INTO not_duplicates VALUES (?, ?, ?)",
                                 [(a, b, now) for a, b in pairs])
            else:
                conn.executemany("DELETE FROM not_duplicates WHERE md5_a = ? AND md5_b = ?", pairs)

    def restore_file(self, file_id: int, stat: os.stat_result | None = None) -> None:
        """A file is back at its path (undo): mark it ok again (at the device and inode it has now: a
        copy across filesystems is a new inode). Its decisions stay as they were before the apply."""
        with self.transaction() as conn:
            conn.execute("UPDATE files SET status='ok', error_kind=NULL, reason=NULL, trashed_to=NULL WHERE id = ?",
                         (file_id,))
            if stat is not None:
                conn.execute("UPDATE files SET dev = ?, ino = ? WHERE id = ?", (stat.st_dev, stat.st_ino, file_id))


def _statements(script: str) -> list[str]:
    """Split a migration into statements (no semicolons inside comments or strings, by convention)."""
    parts = (part.strip() for part in script.split(";"))
    return [p for p in parts if any(ln.strip() and not ln.strip().startswith("--") for ln in p.splitlines())]


def _like_prefix(folder: str) -> str:
    folder = folder.rstrip("/")
    escaped = folder.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return to_db(escaped + "/%")


def _disk_full(path: Path) -> bool:
    try:
        stats = os.statvfs(path.parent)
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < 1 << 20


@contextmanager
def open_catalog(catalog: Path | str | Catalog | None) -> Iterator[Catalog]:
    """Use an open Catalog as is, or open (and close) the one at a path; it must exist."""
    if isinstance(catalog, Catalog):
        yield catalog
        return
    with Catalog(catalog, create=False) as cat:
        yield cat
