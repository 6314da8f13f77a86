"""``photodedup apply`` and ``photodedup undo``: move the files marked trash into a trash folder, and back.

Nothing is ever deleted. Each move is appended to a journal (JSON lines, ``<trash>/journal.jsonl``)
and fsynced *before* the file moves (``state: begin``) and again once it has moved (``done``), so a
kill at any moment leaves every file either at its path or in the trash with its journal line. The
next apply or undo finishes a move that was interrupted, or rolls it back (``recover``); an entry
it cannot resolve (say, a folder that refuses the unlink) is reported and left for the next run,
and the others are still resolved.

A move never overwrites: on one filesystem it is a hard link then an unlink; across filesystems it
is copy, fsync, md5 check, hard link of the finished copy into place (which fails if anything
appeared there), then unlink. A move that fails half-way (the unlink refused, the disk full) is
rolled back at once (``aborted`` in the journal): the file stays where it was, nothing is left in
the trash, and the failure is reported (``failed``; the CLI exits non-zero).
Trashed files keep their absolute path below ``<trash>/<apply id>/``, so two roots never collide.

A RAW+JPEG pair moves as one: the decision is on the RAW, the JPEG follows it (its journal entries say
``companion_of``: the RAW's file id), both or neither, and undo restores both. So do a Live Photo's
video and a photo's sidecars (``photodedup.media``): companions of their lead.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import logging
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePath

from photodedup import config
from photodedup.catalog import Catalog
from photodedup.errors import BadInputError, SafetyError
from photodedup.groups import current_groups, in_trash
from photodedup.keeper import human_size
from photodedup.progress import ProgressCallback, no_progress

log = logging.getLogger(__name__)

JOURNAL_NAME = "journal.jsonl"
MARKER_NAME = config.TRASH_MARKER  # marks the folder as photodedup's trash (scan skips it)
_PARTIAL = ".partial"
# Fault-injection seams, read at call time: tests (tests/faulty_cli.py, or monkeypatch in-process) set
# ``LINK_FIRST = False`` to move by copy as if across filesystems, and replace ``checkpoint`` to kill
# the process at a stage of the n-th move. Production reads no switch for either.
LINK_FIRST = True


def checkpoint(stage: str, index: int) -> None:
    """Called after each durable stage of move ``index`` ("begun", "linked", "copied", "moved")."""


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
        lines = [f"{'would move' if self.dry_run else 'moved'} {m['path']} -> {m['trash']}" for m in self.moved]
        lines += [f"skipped {s['path']}: {s['reason']}" for s in self.skipped]
        lines += [f"could not move {f['path']}: {f['reason']}" for f in self.failed]
        lines.append(f"apply {self.apply_id}: {verb} {len(self.moved)} files ({human_size(self.bytes_moved)}) "
                     f"to {self.trash_dir}, skipped {len(self.skipped)}"
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
        lines = [f"{verb} {r['path']}" for r in self.restored]
        lines.append(f"{verb} {len(self.restored)} files from {self.trash_dir}"
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
    with Catalog(catalog, create=False) as cat, _locked(trash, create=not dry_run) as journal:
        if not dry_run:
            summary.recovered, summary.failed = recover(journal, cat)
        todo, summary.skipped = plan(cat, progress=progress)
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


def plan(cat: Catalog, *, progress: ProgressCallback = no_progress) -> tuple[list[dict], list[dict]]:
    """``(moves, skipped)``: the trash decisions that are safe to carry out now, and why others are not.

    A file is moved only if it is marked trash, unchanged (md5 of its bytes now equals the md5 at
    the scan and at the decision), not under a reference folder of the grouping (``--prefer``), and
    every current group it is in keeps at least one other member whose bytes still match the catalog.
    The other half of a RAW+JPEG pair moves with it, under the same checks, or neither moves.
    Files already in the trash are left out silently (a pair's half left behind by a kill follows).
    """
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
                                                if (why := _check_bytes(h))), None)
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
            if any(_survives(files.get(i), verified) for i in ids if i not in candidates):
                continue
            for i in ids:
                if i in candidates:
                    item = candidates.pop(i)
                    skipped.append({"path": item["path"], "reason": f"would trash every member of group {group.id}: "
                                    "no unchanged member would remain"})
                    changed = True
    moves = [*candidates.values(), *late, *(c for i in candidates for c in pair_of.get(i, ()))]
    return sorted(moves, key=lambda c: c["path"]), skipped


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


def _survives(row, verified: dict[int, bool]) -> bool:
    if row is None or row["status"] != "ok":
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
        if not (trash / JOURNAL_NAME).exists():
            if dry_run:  # the question "what would undo restore?" has an answer: nothing
                return summary
            raise BadInputError(f"nothing to undo: no journal in {trash}", hint="pass the --trash-dir that apply used")
    with Catalog(catalog, create=False) as cat, _locked(trash, create=False) as journal:
        if not dry_run:
            summary.recovered, unresolved = recover(journal, cat)
            summary.refused += unresolved
        entries = journal.entries()
        in_trash = _in_trash(entries)
        selected = _select(in_trash, paths, apply_id, summary, entries)
        summary.applies = sorted({e["apply"] for e in selected})
        for index, entry in enumerate(selected, 1):
            original, target = Path(entry["original"]), Path(entry["trash"])
            if os.path.lexists(original):
                reason = f"a file now exists at {original}; not overwritten"
            elif not target.is_file():
                reason = f"missing from the trash ({target})"
            elif file_md5(target) != entry["md5"]:
                reason = f"changed in the trash ({target}, md5 differs)"
            else:
                reason = None
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
            entries: Sequence[dict] = ()) -> list[dict]:
    if paths:
        chosen: list[dict] = []
        for path in paths:
            wanted = os.path.abspath(path)
            leads = {e.get("file_id") for e in entries if _names(e, wanted)} - {None}  # a lead back already
            hits = [e for e in in_trash if _names(e, wanted) or e.get("companion_of") in leads]
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
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
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


@contextmanager
def _locked(trash: Path, *, create: bool) -> Iterator[Journal]:
    """The trash folder's journal, held by one apply or undo at a time."""
    if not trash.exists() and not create:
        yield Journal(trash / JOURNAL_NAME)
        return
    try:
        if not trash.exists():
            trash.mkdir(parents=True)
            (trash / MARKER_NAME).write_text("photodedup trash: files moved by `photodedup apply`; "
                                             "restore them with `photodedup undo`.\n")
        lock = open(trash / ".lock", "a")  # noqa: SIM115 - held for the whole block below
    except OSError as error:
        raise BadInputError(f"cannot write to the trash folder {trash}: {error.strerror}",
                            hint="pass --trash-dir a writable folder on a disk with room") from error
    with lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise SafetyError(f"another apply or undo is using {trash}", hint="wait for it to finish") from error
        yield Journal(trash / JOURNAL_NAME)


def _journaled_move(journal: Journal, op: str, apply_id: str, item: dict, dest: Path, index: int,
                    *, source: Path | None = None) -> str:
    """Journal ``begin``, move, journal ``done``. ``op`` trash: path -> dest; restore: source -> dest."""
    original = item.get("original") or item["path"]
    trash = str(dest) if op == "trash" else item["trash"]
    common = {"op": op, "apply": apply_id, "original": original, "trash": trash, "md5": item["md5"],
              "size": item["size"], "file_id": item["file_id"]} | _pair_key(item)
    journal.append(state="begin", **common)
    checkpoint("begun", index)
    try:
        method = _move(Path(source or original), dest, item["md5"], index)
    except (OSError, SafetyError) as error:  # rolled back: the file is where it was
        try:
            journal.append(state="aborted", reason=_reason(error), **common)
        except OSError:  # (the next recover sees the source in place and aborts it then)
            pass
        raise
    checkpoint("moved", index)
    journal.append(state="done", method=method, **common)
    return method


def _move(src: Path, dst: Path, md5: str, index: int) -> str:
    """Move ``src`` to ``dst`` (which must not exist); return "link" or "copy".

    On any failure nothing has moved: ``src`` is where it was and nothing is left at ``dst``.
    """
    dst.parent.mkdir(parents=True, exist_ok=True)
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
            _remove_source(src, dst)
            return "link"
    partial = dst.with_name(dst.name + _PARTIAL)
    try:
        with open(src, "rb") as fin, open(partial, "xb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
        shutil.copystat(src, partial)
        checkpoint("copied", index)
        if file_md5(partial) != md5:
            raise SafetyError(f"the copy of {src} did not verify (md5 differs)")
        _put_in_place(partial, dst)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    _fsync_dir(dst.parent)
    checkpoint("linked", index)
    _remove_source(src, dst)
    return "copy"


def _put_in_place(partial: Path, dst: Path) -> None:
    """``partial`` becomes ``dst`` without ever replacing a file there: a hard link fails if ``dst``
    exists. A filesystem without hard links gets a check then a rename (a narrow race remains)."""
    try:
        os.link(partial, dst)
    except FileExistsError as error:
        raise SafetyError(f"{dst} appeared during the copy; not overwritten") from error
    except OSError as error:
        if error.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK):
            raise
        if os.path.lexists(dst):
            raise SafetyError(f"{dst} appeared during the copy; not overwritten") from None
        os.rename(partial, dst)
    else:
        os.unlink(partial)


def _remove_source(src: Path, dst: Path) -> None:
    """The last step of a move; when the source cannot be removed, take the new copy back out."""
    try:
        os.unlink(src)
    except OSError as error:
        try:
            os.unlink(dst)
            _fsync_dir(dst.parent)
        except OSError as undo_error:
            raise SafetyError(f"cannot remove it ({error.strerror}) and cannot take {dst} back out "
                              f"({undo_error.strerror}): it is now in both places") from error
        raise SafetyError(f"cannot remove it ({error.strerror}); rolled back") from error
    _fsync_dir(src.parent)


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
    for entry in journal.entries():
        key = (entry.get("op"), entry.get("apply"), entry.get("original"))
        if entry.get("state") == "begin":
            pending[key] = entry
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


def _recover_one(journal: Journal, cat: Catalog, entry: dict) -> int:
    """Resolve one pending entry; 1 when the move was finished, 0 when it was rolled back."""
    common = {k: entry[k] for k in ("op", "apply", "original", "trash", "md5", "size", "file_id")} | _pair_key(entry)
    src, dst = entry["original"], entry["trash"]
    if entry["op"] == "restore":
        src, dst = dst, src
    src_p, dst_p = Path(src), Path(dst)
    dst_p.with_name(dst_p.name + _PARTIAL).unlink(missing_ok=True)
    dst_ok = dst_p.is_file() and file_md5(dst_p) == entry["md5"]
    if dst_ok and src_p.exists() and (os.path.samefile(src_p, dst_p) or file_md5(src_p) == entry["md5"]):
        os.unlink(src_p)  # both copies exist and match: finish the move
        _fsync_dir(src_p.parent)
    if dst_ok and not src_p.exists():
        journal.append(state="done", method="recovered", **common)
        if entry["op"] == "trash":
            cat.mark_missing([entry["original"]], reason=f"in the trash: {entry['trash']}")
        else:
            _after_restore(cat, entry, journal.path.parent)
        return 1
    if src_p.exists():
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

