"""The journalled-move engine under ``apply`` and ``undo``: the locked trash folder, its journal, the
moves and the recovery of interrupted ones. ``apply.py`` decides what moves (the plan); this module moves.

Nothing is ever deleted. Each move is appended to a journal (JSON lines, ``<trash>/journal.jsonl``)
and fsynced *before* the file moves (``state: begin``) and again once it has moved (``done``), so a
kill at any moment leaves every file either at its path or in the trash with its journal line. The
next apply or undo finishes a move that was interrupted, or rolls it back (``recover``); an entry
it cannot resolve (say, a folder that refuses the unlink) is reported and left for the next run,
and the others are still resolved.

A move never overwrites: on one filesystem it is a hard link then an unlink; across filesystems it
is a copy into a temporary name nothing else uses (``.<name>.<random>.pdpart``, journaled before it is
made, its device and inode journaled before a byte is written), fsync, md5 check, hard link of the
finished copy into place (which fails if anything appeared there), then unlink. Right before the
unlink the source must still be the file the move began with (device, inode, size, mtime_ns, md5): a
file edited meanwhile (in place, or saved by rename) is rolled back. A move that fails half-way (the
unlink refused, the disk full, an edit) is rolled back at once (``aborted`` in the journal): the file
stays where it was, nothing is left in the trash, and the failure is reported (``failed``; the CLI
exits non-zero). Cleanup and recovery remove only files whose identity the journal recorded.
Trashed files keep their absolute path below ``<trash>/<apply id>/``, so two roots never collide;
the trash is 0700 and the folders made in it keep the modes of the source's folders.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
import stat
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from photodedup import config, media
from photodedup.catalog import Catalog, in_trash
from photodedup.errors import BadInputError, SafetyError

log = logging.getLogger(__name__)

JOURNAL_NAME = config.TRASH_JOURNAL
MARKER_NAME = config.TRASH_MARKER  # marks the folder as photodedup's trash (scan skips it)
_TEMP_SUFFIX = ".pdpart"
_NAME_MAX = 255  # bytes in one file name (Linux, macOS)
_CHANGED = "it changed while it was being moved (edited?); rolled back: left where it was, no copy made"
# Fault-injection seams, read at call time: tests (tests/faulty_cli.py, or monkeypatch in-process) set
# ``LINK_FIRST = False`` to move by copy as if across filesystems, and replace ``checkpoint`` to kill
# the process at a stage of the n-th move. Production reads no switch for either.
LINK_FIRST = True


def checkpoint(stage: str, index: int) -> None:
    """Called after each durable stage of move ``index`` ("begun", "linked", "copied", "moved", "journaled")."""


def default_trash_dir() -> Path:
    """``$PHOTODEDUP_TRASH_DIR``, else ``<home>/trash``."""
    if env := os.environ.get("PHOTODEDUP_TRASH_DIR"):
        return Path(env).expanduser()
    return config.home() / "trash"


def trash_folder(trash_dir: Path | str | None) -> Path:
    """The trash folder as an absolute path: the journal's paths must not depend on the directory."""
    return Path(os.path.abspath(Path(trash_dir).expanduser() if trash_dir else default_trash_dir()))


def after_restore(cat: Catalog, entry: dict, trash: Path) -> None:
    row = cat.file(entry["file_id"]) if entry.get("file_id") is not None else None
    if row is not None and row["path"] == entry["original"] and row["md5"] == entry["md5"]:
        cat.restore_file(row["id"], os.stat(entry["original"], follow_symlinks=False))
    folder, stop = Path(entry["trash"]).parent, trash / entry["apply"]
    while folder == stop or stop in folder.parents:  # drop the now-empty folders of that apply
        try:
            folder.rmdir()
        except OSError:
            break
        folder = folder.parent


# -- the journal and the move --------------------------------------------------------------------
class Journal:
    """Append-only JSON lines; each line is flushed and fsynced before ``append`` returns."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, **entry) -> None:
        entry.setdefault("time", datetime.now(timezone.utc).isoformat(timespec="milliseconds"))
        data = (json.dumps(entry, sort_keys=True) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            size = os.fstat(fd).st_size
            if size and _last_byte(self.path) != b"\n":
                data = b"\n" + data  # a line torn by a kill: end it, so this one stays whole
            try:
                if os.write(fd, data) != len(data):
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
                os.fsync(fd)
            except OSError:
                os.ftruncate(fd, size)  # a failed write (disk full) leaves no torn line behind
                raise
        finally:
            os.close(fd)

    def entries(self) -> list[dict]:
        if not self.path.exists():
            return []
        out = []
        for number, line in enumerate(self.path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                log.warning("%s line %d is torn (the process stopped while writing it); ignored", self.path, number)
        return out


def _last_byte(path: Path) -> bytes:
    with open(path, "rb") as handle:
        handle.seek(-1, os.SEEK_END)
        return handle.read(1)


def check_is_folder(trash: Path) -> None:
    """A clear error when the trash path exists but is no folder (a dangling link, a file)."""
    if os.path.islink(trash) and not trash.exists():
        raise BadInputError(f"the trash folder {trash} is a symbolic link to {os.readlink(trash)}, which does not "
                            "exist", hint="create that folder, or pass --trash-dir a folder")
    if os.path.lexists(trash) and not trash.is_dir():
        kind = "a file" if trash.is_file() else "something else"
        raise BadInputError(f"the trash folder {trash} is {kind}, not a folder", hint="pass --trash-dir a folder")


def check_outside_library(cat: Catalog, trash: Path) -> None:
    """Refuse a trash folder inside a scanned root unless photodedup made it (its marker) or already keeps
    a journal there: scan skips only those, and would otherwise record the trashed files as photos."""
    check_is_folder(trash)
    if not trash.exists() or config.is_trash_folder(str(trash)):
        return  # photodedup makes it, and marks it
    folder = os.path.realpath(trash)
    for (root,) in cat.conn.execute("SELECT DISTINCT root FROM files WHERE root IS NOT NULL"):
        if any(f == r or f.startswith(r.rstrip("/") + "/")
               for f, r in ((str(trash), root), (folder, os.path.realpath(root)))):
            raise BadInputError(f"the trash folder {trash} is inside the scanned folder {root} and photodedup did "
                                "not make it: a scan would record the trashed files as photos",
                                hint="pass --trash-dir a folder outside the scanned folders, or a new one "
                                     "(photodedup marks the folders it makes, and scan skips them)")


@contextmanager
def locked(trash: Path, *, create: bool) -> Iterator[Journal]:
    """The trash folder's journal, held by one apply or undo at a time. ``create``: make the folder
    (0700) if it is missing, and mark it as photodedup's trash."""
    check_is_folder(trash)
    if not trash.exists() and not create:
        yield Journal(trash / JOURNAL_NAME)
        return
    try:
        if not trash.exists():  # made whole, marker inside, then renamed into place: never unmarked
            trash.parent.mkdir(parents=True, exist_ok=True)
            staging = _temp_path(trash)
            os.mkdir(staging, 0o700)
            _mark(staging)
            checkpoint("staged", 0)
            try:
                if not _rename_noreplace(staging, trash):
                    os.rename(staging, trash)
            except SafetyError:  # another apply made it meanwhile
                os.unlink(staging / MARKER_NAME)
                os.rmdir(staging)
        if create and not (trash / MARKER_NAME).exists():
            _mark(trash)
        lock = os.open(trash / ".lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as error:
        raise BadInputError(f"cannot write to the trash folder {trash}: {error.strerror}",
                            hint="pass --trash-dir a writable folder on a disk with room") from error
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise SafetyError(f"another apply or undo is using {trash}", hint="wait for it to finish") from error
        _remove_stale_staging(trash)
        yield Journal(trash / JOURNAL_NAME)
    finally:
        os.close(lock)


_MARKER_TEXT = b"photodedup trash: files moved by `photodedup apply`; restore them with `photodedup undo`.\n"


def _mark(folder: Path) -> None:
    with _create(folder / MARKER_NAME, 0o644) as marker:
        marker.write(_MARKER_TEXT)


def _remove_stale_staging(trash: Path) -> None:
    """Remove what a kill while the trash folder was being made left beside it: a staging folder
    (``_temp_path`` of the trash) that holds our marker and nothing else."""
    example = _temp_path(trash).name  # "." + the name (shortened) + "." + 12 hex digits + the suffix
    head = example[:len(example) - 12 - len(_TEMP_SUFFIX)]
    try:
        entries = list(os.scandir(trash.parent))
    except OSError:
        return
    for entry in entries:
        rest = entry.name[len(head):-len(_TEMP_SUFFIX)]
        if not (entry.name.startswith(head) and entry.name.endswith(_TEMP_SUFFIX) and len(rest) == 12
                and all(c in "0123456789abcdef" for c in rest) and entry.is_dir(follow_symlinks=False)):
            continue
        marker = Path(entry.path) / MARKER_NAME
        try:
            if os.listdir(entry.path) == [MARKER_NAME] and stat.S_ISREG(os.lstat(marker).st_mode) \
                    and marker.read_bytes() == _MARKER_TEXT:
                os.unlink(marker)
                os.rmdir(entry.path)
        except OSError:
            continue


def _create(path: Path, mode: int = 0o600):
    """A new file opened for writing: fails if anything (a file, a link) is at ``path``."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode), "wb")


def journaled_move(journal: Journal, op: str, apply_id: str, item: dict, dest: Path, index: int,
                    *, source: Path | None = None) -> str:
    """Journal ``begin``, move, journal ``done``. ``op`` trash: path -> dest; restore: source -> dest.

    ``begin`` records the source's identity (``src_id``: device, inode, size, mtime_ns) and the
    temporary name a copy would use (``temp``); a ``temp`` line records that file's device and inode
    (``temp_id``) once it exists. Recovery and cleanup remove nothing else."""
    original = item.get("original") or item["path"]
    trash = str(dest) if op == "trash" else item["trash"]
    src = Path(source or original)
    before = os.lstat(src)
    if not stat.S_ISREG(before.st_mode):
        raise SafetyError("it is no longer a regular file")
    temp, aside = _temp_path(dest), _temp_path(src)
    common = {"op": op, "apply": apply_id, "original": original, "trash": trash, "md5": item["md5"],
              "size": item["size"], "file_id": item["file_id"]} | _pair_key(item)
    journal.append(state="begin", src_id=_ident(before), temp=str(temp), aside=str(aside), **common)
    checkpoint("begun", index)
    try:
        method = _move(src, dest, item["md5"], index, before, temp,
                       lambda made: journal.append(state="temp", temp_id=made, **common), aside)
    except (OSError, SafetyError) as error:  # rolled back: the file is where it was
        try:
            journal.append(state="aborted", reason=why_failed(error), **common)
        except OSError:  # (the next recover sees the source in place and aborts it then)
            pass
        raise
    checkpoint("moved", index)
    journal.append(state="done", method=method, **common)
    checkpoint("journaled", index)
    return method


def _temp_path(dst: Path) -> Path:
    """``.<name>.<random>.pdpart`` beside ``dst``: a name nothing else uses. The name part is shortened
    (never the final name) so that it stays within 255 bytes."""
    tail = f".{secrets.token_hex(6)}{_TEMP_SUFFIX}"
    room = _NAME_MAX - 1 - len(tail)
    return dst.with_name("." + os.fsdecode(os.fsencode(dst.name)[:room]) + tail)


def _ident(st: os.stat_result) -> list[int]:
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns]


def _lstat(path: Path) -> os.stat_result | None:
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _remove_ours(path: Path, ident: Sequence[int] | None, *, also: os.stat_result | None = None) -> bool:
    """Unlink ``path`` only if it is the file this run made: a regular file with the recorded device and
    inode. With none recorded, only an empty one (nothing is written to a temporary file before its
    identity is journaled). ``also``: another file (the source, still in place) whose other name
    ``path`` may be, which removing loses nothing. Returns whether it was removed."""
    st = _lstat(path)
    if st is None or not stat.S_ISREG(st.st_mode):
        return False
    here = [st.st_dev, st.st_ino]
    if also is not None and here == [also.st_dev, also.st_ino]:
        pass
    elif ident is not None and here != list(ident[:2]) or ident is None and st.st_size:
        return False
    os.unlink(path)
    return True


def _make_folders(folder: Path, like: Path) -> None:
    """Create ``folder`` and its missing parents, each with the mode of the matching folder above
    ``like`` (the trash never lets more people read a photo than its own folder did), plus the owner's
    rwx (so the move itself can go on); 0700 where nothing matches (the apply's own folder)."""
    missing: list[tuple[Path, Path]] = []
    while not os.path.isdir(folder) and folder != folder.parent:
        missing.append((folder, like))
        folder, like = folder.parent, like.parent
    for path, model in reversed(missing):
        try:
            mode = stat.S_IMODE(os.stat(model).st_mode) | stat.S_IRWXU if model != model.parent else 0o700
        except OSError:
            mode = 0o700
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue
        os.chmod(path, mode)


def _move(src: Path, dst: Path, md5: str, index: int, before: os.stat_result, temp: Path,
          note_temp: Callable[[list[int]], None], aside: Path) -> str:
    """Move ``src`` to ``dst`` (which must not exist); return "link" or "copy".

    On any failure nothing has moved: ``src`` is where it was and nothing this move made is left.
    """
    _make_folders(dst.parent, src.parent)
    if LINK_FIRST:
        try:
            os.link(src, dst, follow_symlinks=False)
        except FileExistsError as error:
            raise SafetyError(f"{dst} already exists; not overwritten") from error
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK, errno.EACCES):
                raise
        else:
            _fsync_dir(dst.parent)
            checkpoint("linked", index)
            _remove_source(src, dst, md5, before, ours=_ident(before), aside=aside, index=index)  # (its inode)
            return "link"
    with _create(temp) as out:  # outside the try below: a file already at that name is not ours
        made = _ident(os.fstat(out.fileno()))
        try:
            note_temp(made[:2])
            digest = hashlib.md5()
            with open(os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as fin:
                if _ident(os.fstat(fin.fileno())) != _ident(before):
                    raise SafetyError(_CHANGED)
                while chunk := fin.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        except BaseException:
            _remove_ours(temp, made)
            raise
    try:
        shutil.copystat(src, temp, follow_symlinks=False)
        checkpoint("copied", index)
        if digest.hexdigest() != md5:
            raise SafetyError(_CHANGED)
        if file_md5(temp) != md5:
            raise SafetyError(f"the copy of {src} did not verify (md5 differs)")
        _put_in_place(temp, dst, made)
    except BaseException:
        _remove_ours(temp, made)
        _remove_ours(dst, made)  # put in place, then something failed: take it back out
        raise
    _fsync_dir(dst.parent)
    checkpoint("linked", index)
    _remove_source(src, dst, md5, before, ours=made, aside=aside, index=index)
    return "copy"


def _put_in_place(temp: Path, dst: Path, made: list[int]) -> None:
    """``temp`` becomes ``dst`` without ever replacing a file there: a hard link fails if ``dst``
    exists. A filesystem without hard links gets ``renameat2(RENAME_NOREPLACE)``, which fails the
    same way; only where that is missing too, a check then a rename (a narrow race remains)."""
    try:
        os.link(temp, dst)
    except FileExistsError as error:
        raise SafetyError(f"{dst} appeared during the copy; not overwritten") from error
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if _rename_noreplace(temp, dst):
            return
        if os.path.lexists(dst):
            raise SafetyError(f"{dst} appeared during the copy; not overwritten") from None
        os.rename(temp, dst)
    else:
        _remove_ours(temp, made)


def _rename_noreplace(src: Path, dst: Path) -> bool:
    """``rename`` that fails if ``dst`` exists (Linux ``renameat2``); False where the system or the
    filesystem has no such call."""
    function = getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None)
    if function is None:
        return False
    at_cwd, noreplace = -100, 1
    if function(at_cwd, os.fsencode(src), at_cwd, os.fsencode(dst), noreplace) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EEXIST, errno.ENOTEMPTY):
        raise SafetyError(f"{dst} appeared during the copy; not overwritten")
    if code in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP):
        return False
    raise OSError(code, os.strerror(code), str(dst))


def _remove_source(src: Path, dst: Path, md5: str, before: os.stat_result, *, ours: list[int], aside: Path,
                   index: int) -> None:
    """The last step of a move: remove the source, if it is still the file the move began with (device,
    inode, size, mtime_ns, md5). If it changed (edited in place, or saved over by rename), or cannot be
    removed, take our copy at ``dst`` (device and inode ``ours``) back out. A source that is gone is
    fine: its bytes are at ``dst``.

    The source is first renamed to ``aside`` (a name of ours, journaled), then checked again and unlinked
    there: unlinking it by its name would remove an editor's save that lands between the check and the
    unlink. A save caught by the rename is put back at its name."""
    now = _lstat(src)
    if now is None:
        return
    error: OSError | None = None
    if _ident(now) != _ident(before) or file_md5(src) != md5:
        cause, why = "it changed while it was being moved (edited?)", _CHANGED
    else:
        checkpoint("checked", index)
        try:
            if not _rename_noreplace(src, aside):
                if os.path.lexists(aside):
                    raise OSError(errno.EEXIST, os.strerror(errno.EEXIST), str(aside))
                os.rename(src, aside)
        except (OSError, SafetyError) as refused:
            error = refused if isinstance(refused, OSError) else None
            cause = f"cannot remove it ({getattr(refused, 'strerror', None) or refused})"
            why = f"{cause}; rolled back"
        else:
            checkpoint("aside", index)
            took = _lstat(aside)
            if took is None:  # (gone from our own name: nothing of it is left to remove)
                return
            if _ident(took) == _ident(before) and file_md5(aside) == md5:
                os.unlink(aside)
                _fsync_dir(src.parent)
                return
            _put_back(aside, src)  # an editor's save (or an edit) came between the check and the rename
            cause, why = "it changed while it was being moved (edited?)", _CHANGED
    try:
        if not _remove_ours(dst, ours, also=_lstat(src)):  # (a link made after an editor's save: its new file)
            raise OSError(errno.EEXIST, "it is no longer the copy this move made")
        _fsync_dir(dst.parent)
    except OSError as undo_error:
        raise SafetyError(f"{cause} and cannot take {dst} back out ({undo_error.strerror}): "
                          "it is now in both places") from error
    raise SafetyError(why) from error


def _put_back(aside: Path, src: Path) -> bool:
    """The file set aside at ``aside`` back at its name ``src``, never over a file there (then it stays
    at ``aside``: False)."""
    try:
        os.link(aside, src)
    except FileExistsError:
        log.error("%s was saved again while it was being moved: the earlier save is left at %s", src, aside)
        return False
    os.unlink(aside)
    _fsync_dir(src.parent)
    return True


def why_failed(error: Exception) -> str:
    """A failed move in one line: our own sentence, or the system's reason and the path it names."""
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror}: {error.filename}" if error.filename else error.strerror
    return str(error)


def recover(journal: Journal, cat: Catalog) -> tuple[int, list[dict]]:
    """Resolve moves that an earlier run left half-done (journal ``begin`` without an end).

    Each entry on its own: finished when the destination holds the file, aborted when the source
    still does. An entry that cannot be resolved now (the filesystem refuses) is reported and left
    for the next run. Returns ``(finished, unresolved)``; ``unresolved`` items are ``{path, reason}``.
    """
    pending: dict[tuple[str, str, str], dict] = {}
    entries = journal.entries()
    _catch_up(cat, entries, journal.path.parent)
    for entry in entries:
        key = (entry.get("op"), entry.get("apply"), entry.get("original"))
        if entry.get("state") == "begin":
            pending[key] = dict(entry)
        elif entry.get("state") == "temp":
            if key in pending:
                pending[key]["temp_id"] = entry.get("temp_id")
        else:
            pending.pop(key, None)
    finished, unresolved = 0, []
    for entry in pending.values():
        try:
            finished += _recover_one(journal, cat, entry)
        except (OSError, SafetyError) as error:
            verb = "trash" if entry["op"] == "trash" else "restore"
            reason = f"cannot finish the interrupted {verb} of {entry['original']}: {why_failed(error)}; left as it is"
            log.error("%s", reason)
            unresolved.append({"path": entry["original"], "reason": reason})
    if finished:
        log.warning("finished %d moves that an earlier apply or undo left half-done", finished)
    return finished, unresolved


def _catch_up(cat: Catalog, entries: list[dict], trash: Path) -> None:
    """A kill between a move's ``done`` line and its catalog update leaves the catalog behind (a trashed
    file still ``ok``, or ``missing`` when a scan came first; a restored one still "in the trash"): bring
    those rows up to the journal, and a trashed lead's companions back to it (the scan dropped them)."""
    last = {e["original"]: e for e in entries if e.get("state") == "done" and "original" in e}
    if not last:
        return
    trashed = 0
    for row in cat.files(status=None):
        entry = last.get(row["path"])
        if entry is None:
            continue
        if entry["op"] == "trash" and row["status"] in ("ok", "missing") and not in_trash(row) \
                and not os.path.lexists(row["path"]):
            cat.mark_trashed(row["path"], entry["trash"], restate=True)
            trashed += row["status"] == "missing"
        elif entry["op"] == "restore" and in_trash(row) and os.path.isfile(row["path"]):
            after_restore(cat, entry, trash)
    if trashed:
        media.link_shots(cat)


def _recover_one(journal: Journal, cat: Catalog, entry: dict) -> int:
    """Resolve one pending entry; 1 when the move was finished, 0 when it was rolled back.

    Only files whose identity the journal recorded are removed: the temporary copy (``temp_id``), the
    destination if it is the source's link or that copy, the source if it is still the file the move
    began with. An entry written by an older version (no identities) removes no temporary file."""
    common = {k: entry[k] for k in ("op", "apply", "original", "trash", "md5", "size", "file_id")} | _pair_key(entry)
    src, dst = entry["original"], entry["trash"]
    if entry["op"] == "restore":
        src, dst = dst, src
    src_p, dst_p = Path(src), Path(dst)
    if entry.get("temp") and _remove_ours(Path(entry["temp"]), entry.get("temp_id")):
        cat.mark_missing([entry["temp"]], reason="photodedup's temporary copy (a move that was interrupted); removed")
    src_id = entry.get("src_id")
    aside = entry.get("aside")
    if aside and src_id and (st := _lstat(Path(aside))) is not None and [st.st_dev, st.st_ino] == src_id[:2] \
            and _put_back(Path(aside), src_p):  # killed with the source set aside: back to its name first
        cat.mark_missing([aside], reason="photodedup's temporary name (a move that was interrupted); put back")
    ours = [i[:2] for i in (src_id, entry.get("temp_id")) if i]
    dst_st = _lstat(dst_p)
    if dst_st is None or not stat.S_ISREG(dst_st.st_mode):
        dst_ours = False
    else:
        dst_ours = [dst_st.st_dev, dst_st.st_ino] in ours if src_id else True  # (older journals: by content)
    dst_ok = dst_ours and file_md5(dst_p) == entry["md5"]
    src_st = _lstat(src_p)
    src_same = src_st is not None and (_ident(src_st) == src_id if src_id else stat.S_ISREG(src_st.st_mode))
    if dst_ok and src_same and file_md5(src_p) == entry["md5"]:
        os.unlink(src_p)  # both copies exist and match: finish the move
        _fsync_dir(src_p.parent)
        src_st = None
    if dst_ok and src_st is None:
        journal.append(state="done", method="recovered", **common)
        if entry["op"] == "trash":
            cat.mark_trashed(entry["original"], entry["trash"])
        else:
            after_restore(cat, entry, journal.path.parent)
        return 1
    if src_st is not None:
        # the source is still there (perhaps edited): take our copy back out, or a link to the source itself
        if src_id and dst_st is not None and (dst_ours or (dst_st.st_dev, dst_st.st_ino) == (src_st.st_dev,
                                                                                             src_st.st_ino)):
            _remove_ours(dst_p, [dst_st.st_dev, dst_st.st_ino])
            _fsync_dir(dst_p.parent)
        journal.append(state="aborted", reason="stopped before the file moved", **common)
    else:
        log.error("%s: neither %s nor a matching %s exists", entry["op"], src, dst)
        journal.append(state="aborted", reason="neither copy found", **common)
    return 0


def _pair_key(item: dict) -> dict:
    return {"companion_of": item["companion_of"]} if item.get("companion_of") is not None else {}


def file_md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
