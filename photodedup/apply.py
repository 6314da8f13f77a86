"""``photodedup apply`` and ``photodedup undo``: move the files marked trash into a trash folder, and back.

Nothing is ever deleted. This module is the policy (``plan``: which trash decisions are safe to carry
out now, and why others are not) and the apply/undo runs; the journalled moves, the locked trash folder
and the recovery of interrupted moves are ``photodedup.moves``.

Apply and undo hold the catalog (``Catalog.writer``, as scan and embed do) for their whole run.

A RAW+JPEG pair moves as one: the decision is on the RAW, the JPEG follows it (its journal entries say
``companion_of``: the RAW's file id), both or neither, and undo restores both. So do a Live Photo's
video and a photo's sidecars (``photodedup.media``): companions of their lead.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePath

from photodedup import config
from photodedup.catalog import Catalog, in_trash
from photodedup.duplicate_groups import current_groups
from photodedup.errors import BadInputError, SafetyError
from photodedup.keeper import human_size
from photodedup.moves import (
    JOURNAL_NAME,
    after_restore,
    check_is_folder,
    check_outside_library,
    file_md5,
    journaled_move,
    locked,
    recover,
    trash_folder,
    why_failed,
)
from photodedup.paths import canonical_path
from photodedup.progress import ProgressCallback, no_progress
from photodedup.text import printable

log = logging.getLogger(__name__)

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
    trash = trash_folder(trash_dir)
    apply_id = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(2)
    summary = ApplySummary(apply_id, str(trash), str(trash / JOURNAL_NAME), dry_run)
    with Catalog(catalog, create=False) as cat, nullcontext() if dry_run else cat.writer("apply"):
        check_outside_library(cat, trash)
        with locked(trash, create=not dry_run) as journal:
            if not dry_run:
                summary.recovered, summary.failed = recover(journal, cat)
            todo, summary.skipped = plan(cat, progress=progress, trash=trash)
            for index, item in enumerate(todo, 1):
                target = trash / apply_id / PurePath(item["path"]).relative_to(PurePath(item["path"]).anchor)
                entry = item | {"trash": str(target)}
                if not dry_run:
                    try:
                        entry["method"] = journaled_move(journal, "trash", apply_id, item, target, index)
                    except (OSError, SafetyError) as error:
                        summary.failed.append({"path": item["path"], "reason": why_failed(error)})
                        continue
                    cat.mark_trashed(item["path"], target)
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
                    late.append(_move_item(half, live[0].id if live else None, companion_of=row["id"]))
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


def _move_item(row, group_id: int | None, companion_of: int | None = None) -> dict:
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
    trash = trash_folder(trash_dir)
    summary = UndoSummary(str(trash), dry_run)
    with Catalog(catalog, create=False) as cat:  # no catalog: the same error (exit 4) as every command
        check_is_folder(trash)
        if not (trash / JOURNAL_NAME).exists():
            if dry_run:  # the question "what would undo restore?" has an answer: nothing
                return summary
            raise BadInputError(f"nothing to undo: no journal in {trash}", hint="pass the --trash-dir that apply used")
    with (Catalog(catalog, create=False) as cat, nullcontext() if dry_run else cat.writer("undo"),
          locked(trash, create=False) as journal):
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
                    journaled_move(journal, "restore", entry["apply"], entry, original, index, source=target)
                except (OSError, SafetyError) as error:
                    summary.refused.append({"path": str(original),
                                            "reason": f"could not be restored: {why_failed(error)}"})
                    continue
                after_restore(cat, entry, trash)
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
