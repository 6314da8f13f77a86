"""``photodedup apply`` and ``photodedup undo``: move the files marked trash into a trash folder, and back.

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

Apply and undo hold the catalog (``Catalog.writer``, as scan and embed do) for their whole run.

A RAW+JPEG pair moves as one: the decision is on the RAW, the JPEG follows it (its journal entries say
``companion_of``: the RAW's file id), both or neither, and undo restores both. So do a Live Photo's
video and a photo's sidecars (``photodedup.media``): companions of their lead.
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
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePath

from photodedup import config
from photodedup.catalog import Catalog
from photodedup.errors import BadInputError, SafetyError
from photodedup.groups import current_groups, in_trash
from photodedup.keeper import human_size
from photodedup.progress import ProgressCallback, no_progress
from photodedup.scan import canonical_path, link_shots
from photodedup.text import printable

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


def _trash_folder(trash_dir: Path | str | None) -> Path:
    """The trash folder as an absolute path: the journal's paths must not depend on the directory."""
    return Path(os.path.abspath(Path(trash_dir).expanduser() if trash_dir else default_trash_dir()))


@dataclass
class ApplySummary:
    """What an apply did (or, with ``dry_run``, would do)."""

    apply_id: str
    trash_dir: str
    journal: str
    dry_run: bool
    moved: list[dict] = field(default_factory=list)    # path, trash, md5, size, group, method
    skipped: list[dict] = field(default_factory=list)  # path, reason: not safe to move (nothing tried)
    failed: list[dict] = field(default_factory=list)   # path, reason: tried, failed, rolled back
    recovered: int = 0                                  # interrupted moves finished first

    @property
    def bytes_moved(self) -> int:
        return sum(m["size"] or 0 for m in self.moved)

    def as_dict(self) -> dict:
        return asdict(self) | {"bytes_moved": self.bytes_moved}

    def render(self) -> str:
        verb = "would move" if self.dry_run else "moved"
        lines = [f"{verb} {printable(m['path'])} -> {printable(m['trash'])}" for m in self.moved]
        lines += [f"skipped {printable(s['path'])}: {printable(s['reason'])}" for s in self.skipped]
        lines += [f"could not move {printable(f['path'])}: {printable(f['reason'])}" for f in self.failed]
        lines.append(f"apply {self.apply_id}: {verb} {len(self.moved)} files ({human_size(self.bytes_moved)}) "
                     f"to {printable(self.trash_dir)}, skipped {len(self.skipped)}"
                     + (f", failed {len(self.failed)}" if self.failed else "")
                     + (f", finished {self.recovered} interrupted moves" if self.recovered else ""))
        return "\n".join(lines)


@dataclass
class UndoSummary:
    """What an undo restored (or would restore) and what it refused."""

    trash_dir: str
    dry_run: bool
    applies: list[str] = field(default_factory=list)
    restored: list[dict] = field(default_factory=list)  # path, trash
    refused: list[dict] = field(default_factory=list)   # path, reason
    recovered: int = 0

    def as_dict(self) -> dict:
        return asdict(self)

    def render(self) -> str:
        verb = "would restore" if self.dry_run else "restored"
        lines = [f"{verb} {printable(r['path'])}" for r in self.restored]
        lines.append(f"{verb} {len(self.restored)} files from {printable(self.trash_dir)}"
                     + (f" (apply {', '.join(self.applies)})" if self.applies else "")
                     + (f", refused {len(self.refused)}" if self.refused else ""))
        return "\n".join(lines)


# -- apply -------------------------------------------------------------------------------------------
def apply(catalog: Path | None = None, *, trash_dir: Path | None = None, dry_run: bool = False,
          progress: ProgressCallback = no_progress) -> ApplySummary:
    """Move every file marked trash (and still safe to move) into ``trash_dir``; see the module doc."""
    trash = _trash_folder(trash_dir)
    apply_id = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    summary = ApplySummary(apply_id, str(trash), str(trash / JOURNAL_NAME), dry_run)
    with Catalog(catalog, create=False) as cat, nullcontext() if dry_run else cat.writer("apply"):
        _check_outside_library(cat, trash)
        with _locked(trash, create=not dry_run) as journal:
            if not dry_run:
                summary.recovered, summary.failed = recover(journal, cat)
            todo, summary.skipped = plan(cat, progress=progress, trash=trash)
            for index, item in enumerate(todo, 1):
                target = trash / apply_id / PurePath(item["path"]).relative_to(PurePath(item["path"]).anchor)
                entry = item | {"trash": str(target)}
                if not dry_run:
                    try:
                        entry["method"] = _journaled_move(journal, "trash", apply_id, item, target, index)
                    except (OSError, SafetyError) as error:
                        summary.failed.append({"path": item["path"], "reason": _reason(error)})
                        continue
                    cat.mark_missing([item["path"]], reason=f"in the trash: {target}")
                summary.moved.append(entry)
    log.info("apply %s: %d moved, %d skipped", apply_id, len(summary.moved), len(summary.skipped))
    return summary


def plan(cat: Catalog, *, progress: ProgressCallback = no_progress,
         trash: Path | None = None) -> tuple[list[dict], list[dict]]:
    """``(moves, skipped)``: the trash decisions that are safe to carry out now, and why others are not.

    A file is moved only if it is marked trash, unchanged (md5 of its bytes now equals the md5 at
    the scan and at the decision), not under a reference folder of the grouping (``--prefer``), and
    every current group it is in keeps at least one other member whose bytes still match the catalog.
    The other half of a RAW+JPEG pair moves with it, under the same checks, or neither moves.
    Files already in the trash are left out silently (a pair's half left behind by a kill follows).
    A file inside a trash folder (``trash``, or any folder photodedup marked or journaled in, which an
    older version's scan may have recorded) is never moved and never counts as the surviving copy.
    """
    trashed = _TrashFolders(trash)
    groups = current_groups(cat)
    files = {row["id"]: row for row in cat.files(status=None)}
    decided = [d for d in cat.decisions().values() if d["action"] == "trash"]
    groups_of: dict[int, list] = {}
    for group in groups:
        for member in group.members:
            groups_of.setdefault(member.file_id, []).append(group)

    skipped: list[dict] = []
    candidates: dict[int, dict] = {}
    pair_of: dict[int, list[dict]] = {}  # RAW file id -> the moves of its pair's other half
    late: list[dict] = []                # other halves of pairs whose RAW is already in the trash
    for done, decision in enumerate(decided, 1):
        progress(done, len(decided))
        row = files.get(decision["file_id"])
        if row is None:
            continue
        live = [g for g in groups_of.get(row["id"], []) if not g.dismissed]
        halves = [files[m.file_id] for g in live for c in g.members if c.file_id == row["id"] for m in c.companions]
        halves = [h for h in halves if not in_trash(h)]  # the other half of a pair, still to move
        reason = None
        if in_trash(row):
            for half in halves:  # an apply was killed between the two halves of a pair: finish the shot
                if half["status"] == "ok" and _check_bytes(half) is None:
                    late.append(_move_item(half, live[0].id if live else 0, companion_of=row["id"]))
            continue
        if row["status"] != "ok":
            reason = f"not available ({row['status']}: {row['reason']})"
        elif trashed.holds(row["path"]):
            reason = "inside a trash folder: already trashed"
        elif not groups_of.get(row["id"]):
            reason = "no longer in a duplicate group (groups changed); review it again"
        elif not live:
            reason = "its group was marked not duplicates"
        elif any(m.reference for g in live for m in g.members if m.file_id == row["id"]):
            reason = "in a reference folder (group --prefer): never trashed"
        elif decision["md5"] != row["md5"]:
            reason = "changed since it was marked trash (md5 differs); review it again"
        else:
            reason = _check_bytes(row) or next((f"its {_companion_words(h)} {h['path']}: {why}" for h in halves
                                                if (why := _check_bytes(h))), None) or _same_file(row, live, files)
        if reason:
            skipped.append({"path": row["path"], "reason": reason})
        else:
            candidates[row["id"]] = _move_item(row, live[0].id)
            pair_of[row["id"]] = [_move_item(h, live[0].id, companion_of=row["id"]) for h in halves]

    verified: dict[int, bool] = {}
    changed = True
    while changed:  # dropping a candidate only adds survivors, so this ends
        changed = False
        for group in (g for g in groups if not g.dismissed):
            ids = [m.file_id for m in group.members]
            if not any(i in candidates for i in ids):
                continue
            if any(_survives(files.get(i), verified, trashed) for i in ids if i not in candidates):
                continue
            for i in ids:
                if i in candidates:
                    item = candidates.pop(i)
                    skipped.append({"path": item["path"], "reason": f"would trash every member of group {group.id}: "
                                    "no unchanged member would remain"})
                    changed = True
    moves = [*candidates.values(), *late, *(c for i in candidates for c in pair_of.get(i, ()))]
    return sorted(moves, key=lambda c: c["path"]), skipped


class _TrashFolders:
    """``holds(path)``: whether ``path`` lies inside ``trash`` or a folder photodedup uses as a trash."""

    def __init__(self, trash: Path | None) -> None:
        self.trash = str(trash) if trash else None
        self.known: dict[str, bool] = {}

    def holds(self, path: str) -> bool:
        if self.trash and path.startswith(self.trash.rstrip("/") + "/"):
            return True
        folder, below = os.path.dirname(path), []
        while folder not in self.known:
            below.append(folder)
            if config.is_trash_folder(folder):
                self.known[folder] = True
                break
            parent = os.path.dirname(folder)
            if parent == folder:
                self.known[folder] = False
                break
            folder = parent
        for name in below:
            self.known[name] = self.known[folder]
        return self.known[folder]


def _companion_words(row) -> str:
    kind = row["kind"] if "kind" in row.keys() else None
    return {"video": "Live Photo video", "sidecar": "sidecar"}.get(kind, "RAW+JPEG pair")


def _move_item(row, group_id: int, companion_of: int | None = None) -> dict:
    item = {"file_id": row["id"], "path": row["path"], "md5": row["md5"], "size": row["size"], "group": group_id}
    return item | ({"companion_of": companion_of} if companion_of is not None else {})


def _check_bytes(row) -> str | None:
    """Why the file at ``row['path']`` cannot be moved now, or None when its bytes match the scan."""
    path = Path(row["path"])
    if path.is_symlink():
        return "is a symbolic link"
    if not path.is_file():
        return "not found at its path"
    if file_md5(path) != row["md5"]:
        return "changed since the scan (md5 differs); scan again"
    return None


def _same_file(row, live: list, files: dict) -> str | None:
    """Why trashing ``row`` frees nothing or takes another member with it: the same device and inode
    (a file is an identity, not a path) as a member of its groups, or any other name of it (hard links)."""
    try:
        st = os.lstat(row["path"])
    except OSError:
        return None
    identity = (st.st_dev, st.st_ino)
    members = [m.path for g in live for m in g.members if m.file_id != row["id"]]
    names = [f["path"] for f in files.values() if (f["dev"], f["ino"]) == identity and f["id"] != row["id"]]
    same = next((p for p in [*members, *names] if _identity(p) == identity), None)
    if st.st_nlink > 1:
        return f"the same file as {same or f'{st.st_nlink - 1} other names'} (a hard link): trashing it frees nothing"
    if same:
        return f"the same file as {same} (one file reached by two paths): trashing it would remove both"
    return None


def _identity(path: str) -> tuple[int, int] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _survives(row, verified: dict[int, bool], trashed: _TrashFolders) -> bool:
    if row is None or row["status"] != "ok" or trashed.holds(row["path"]):
        return False
    if row["id"] not in verified:
        verified[row["id"]] = _check_bytes(row) is None
    return verified[row["id"]]


# -- undo --------------------------------------------------------------------------------------------
def undo(catalog: Path | None = None, *, trash_dir: Path | None = None, paths: Sequence[Path] = (),
         apply_id: str | None = None, dry_run: bool = False) -> UndoSummary:
    """Restore files from the trash: chosen ``paths`` (original or trash paths, or folders above
    them), else every file of ``apply_id``, else of the last apply. Never overwrites a file."""
    trash = _trash_folder(trash_dir)
    summary = UndoSummary(str(trash), dry_run)
    with Catalog(catalog, create=False) as cat:  # no catalog: the same error (exit 4) as every command
        _check_is_folder(trash)
        if not (trash / JOURNAL_NAME).exists():
            if dry_run:  # the question "what would undo restore?" has an answer: nothing
                return summary
            raise BadInputError(f"nothing to undo: no journal in {trash}", hint="pass the --trash-dir that apply used")
    with (Catalog(catalog, create=False) as cat, nullcontext() if dry_run else cat.writer("undo"),
          _locked(trash, create=False) as journal):
        if not dry_run:
            summary.recovered, unresolved = recover(journal, cat)
            summary.refused += unresolved
        entries = journal.entries()
        in_trash = _in_trash(entries)
        selected = _select(in_trash, paths, apply_id, summary, entries, cat.roots())
        summary.applies = sorted({e["apply"] for e in selected})
        for index, entry in enumerate(selected, 1):
            original, target = Path(entry["original"]), Path(entry["trash"])
            if os.path.lexists(original):
                reason = f"a file now exists at {original}; not overwritten"
            elif not target.is_file():
                reason = f"missing from the trash ({target})"
            elif (now := file_md5(target)) != entry["md5"] and os.stat(target).st_nlink == 1:
                reason = f"changed in the trash ({target}, md5 differs)"
            else:  # unchanged, or a hard link sharing its bytes with a name in the library (edited there)
                reason, entry = None, entry | {"md5": now}
            if reason:
                summary.refused.append({"path": str(original), "reason": reason})
                continue
            if not dry_run:
                try:
                    _journaled_move(journal, "restore", entry["apply"], entry, original, index, source=target)
                except (OSError, SafetyError) as error:
                    summary.refused.append({"path": str(original),
                                            "reason": f"could not be restored: {_reason(error)}"})
                    continue
                _after_restore(cat, entry, trash)
            summary.restored.append({"path": str(original), "trash": str(target)})
    return summary


def _in_trash(entries: list[dict]) -> list[dict]:
    """Completed trash moves not restored since, in journal order."""
    current: dict[tuple[str, str], dict] = {}
    for entry in entries:
        if entry.get("state") != "done":
            continue
        key = (entry["apply"], entry["original"])
        if entry["op"] == "trash":
            current[key] = entry
        elif entry["op"] == "restore":
            current.pop(key, None)
    return list(current.values())


def _select(in_trash: list[dict], paths: Sequence[Path], apply_id: str | None, summary: UndoSummary,
            entries: Sequence[dict] = (), known: Sequence[str] = ()) -> list[dict]:
    if paths:
        chosen: list[dict] = []
        for path in paths:
            wanted = os.path.abspath(path)
            # the scan records one path per folder: symlinks resolved, a bind mount by the path scanned first
            names = {wanted, os.path.realpath(path), str(canonical_path(path, known))}
            leads = {e.get("file_id") for e in entries if any(_names(e, w) for w in names)} - {None}  # a lead back
            hits = [e for e in in_trash if any(_names(e, w) for w in names) or e.get("companion_of") in leads]
            if not hits:
                summary.refused.append({"path": wanted, "reason": "not in the trash journal"})
            chosen += [e for e in hits if e not in chosen]
        shots = {_shot(e) for e in chosen}  # both halves of a RAW+JPEG pair come back together
        return chosen + [e for e in in_trash if e not in chosen and _shot(e) in shots]
    if apply_id:
        chosen = [e for e in in_trash if e["apply"] == apply_id]
        if not chosen:
            raise BadInputError(f"no file of apply {apply_id} is in the trash")
        return chosen
    if not in_trash:
        raise BadInputError("nothing to undo: every trashed file has been restored")
    return [e for e in in_trash if e["apply"] == in_trash[-1]["apply"]]


def _names(entry: dict, wanted: str) -> bool:
    """Whether the path ``wanted`` names this journal entry's file (its original or trash path, or a folder above)."""
    return any(p == wanted or p.startswith(wanted.rstrip("/") + "/") for p in (entry["original"], entry["trash"]))


def _shot(entry: dict) -> int | None:
    """The item a trashed file belongs to: its lead's file id (the halves of an item may have moved in two
    applies, when the first was killed between them)."""
    return entry.get("companion_of") or entry.get("file_id")


def _after_restore(cat: Catalog, entry: dict, trash: Path) -> None:
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


def _check_is_folder(trash: Path) -> None:
    """A clear error when the trash path exists but is no folder (a dangling link, a file)."""
    if os.path.islink(trash) and not trash.exists():
        raise BadInputError(f"the trash folder {trash} is a symbolic link to {os.readlink(trash)}, which does not "
                            "exist", hint="create that folder, or pass --trash-dir a folder")
    if os.path.lexists(trash) and not trash.is_dir():
        kind = "a file" if trash.is_file() else "something else"
        raise BadInputError(f"the trash folder {trash} is {kind}, not a folder", hint="pass --trash-dir a folder")


def _check_outside_library(cat: Catalog, trash: Path) -> None:
    """Refuse a trash folder inside a scanned root unless photodedup made it (its marker) or already keeps
    a journal there: scan skips only those, and would otherwise record the trashed files as photos."""
    _check_is_folder(trash)
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
def _locked(trash: Path, *, create: bool) -> Iterator[Journal]:
    """The trash folder's journal, held by one apply or undo at a time. ``create``: make the folder
    (0700) if it is missing, and mark it as photodedup's trash."""
    _check_is_folder(trash)
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


def _journaled_move(journal: Journal, op: str, apply_id: str, item: dict, dest: Path, index: int,
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
            journal.append(state="aborted", reason=_reason(error), **common)
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


def _reason(error: Exception) -> str:
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
            reason = f"cannot finish the interrupted {verb} of {entry['original']}: {_reason(error)}; left as it is"
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
            cat.mark_missing([row["path"]], reason=f"in the trash: {entry['trash']}", restate=True)
            trashed += row["status"] == "missing"
        elif entry["op"] == "restore" and in_trash(row) and os.path.isfile(row["path"]):
            _after_restore(cat, entry, trash)
    if trashed:
        link_shots(cat)


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
            cat.mark_missing([entry["original"]], reason=f"in the trash: {entry['trash']}")
        else:
            _after_restore(cat, entry, journal.path.parent)
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

