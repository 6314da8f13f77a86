"""Review state: the current groups with their files and decisions, the decisions, and label export.

A decision is ``keep`` or ``trash`` for one file (with the md5 it was made on, so a changed file is
not trashed), or "not duplicates" for a group, stored as every pair of its distinct contents (md5),
so it survives re-scans, moves and regrouping: a later group whose contents were all said to be
pairwise distinct comes back *dismissed*; one that gained a new content comes back open.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path

from photodedup.catalog import Catalog
from photodedup.errors import BadInputError

ACTIONS = ("keep", "trash")
KINDS = ("exact", "perceptual", "semantic", "mixed")


@dataclass
class Member:
    """One file of a group, with what the page shows about it."""

    file_id: int
    path: str
    evidence: str
    score: float
    keeper: bool
    decision: str | None
    size: int | None
    width: int | None
    height: int | None
    format: str | None
    taken_at: str | None
    camera: str | None
    md5: str | None
    status: str
    in_trash: bool


@dataclass
class Group:
    """A current group and the state of its review."""

    id: int
    kind: str
    keeper: int
    keeper_reason: str
    dismissed: bool
    members: list[Member] = field(default_factory=list)

    @property
    def state(self) -> str:
        """dismissed | applied | reviewed | partial | open."""
        if self.dismissed:
            return "dismissed"
        if any(m.in_trash for m in self.members):
            return "applied"
        decided = sum(m.decision is not None for m in self.members)
        return "reviewed" if decided == len(self.members) else "partial" if decided else "open"

    @property
    def reclaimable(self) -> int:
        """Bytes that trashing would free: the files marked trash, else every member but the keeper."""
        if self.dismissed:
            return 0
        marked = [m for m in self.members if m.decision == "trash" and not m.in_trash]
        if any(m.decision for m in self.members):
            return sum(m.size or 0 for m in marked)
        return sum(m.size or 0 for m in self.members if not m.keeper and m.status == "ok")

    def summary(self) -> dict:
        return {"id": self.id, "kind": self.kind, "state": self.state, "count": len(self.members),
                "keeper": self.keeper, "keeper_reason": self.keeper_reason, "reclaimable": self.reclaimable,
                "size": sum(m.size or 0 for m in self.members),
                "score": min((m.score for m in self.members if m.file_id != self.keeper), default=1.0),
                "evidence": sorted({m.evidence for m in self.members if not m.keeper}),
                "files": [m.file_id for m in self.members]}

    def detail(self) -> dict:
        return self.summary() | {"members": [asdict(m) for m in self.members]}


def current_groups(cat: Catalog) -> list[Group]:
    """The groups of the latest ``photodedup group`` run, joined with files and decisions."""
    from photodedup.group import load_groups

    files = {row["id"]: row for row in cat.files(status=None)}
    decisions = cat.decisions()
    pairs = cat.not_duplicate_pairs()
    out = []
    for group in load_groups(cat):
        members = []
        for m in group.members:
            row = files[m.file_id]
            decision = decisions.get(m.file_id)
            members.append(Member(
                file_id=m.file_id, path=row["path"], evidence=m.evidence, score=float(m.score),
                keeper=m.file_id == group.keeper, decision=decision["action"] if decision else None,
                size=row["size"], width=row["width"], height=row["height"], format=row["format"],
                taken_at=row["taken_at"], camera=row["camera"], md5=row["md5"], status=row["status"],
                in_trash=row["status"] == "missing" and (row["reason"] or "").startswith("in the trash")))
        out.append(Group(group.id, group.kind, group.keeper, group.keeper_reason,
                         _dismissed([m.md5 for m in members], pairs), members))
    return out


def _dismissed(md5s: list[str | None], pairs: set[tuple[str, str]]) -> bool:
    distinct = sorted({m for m in md5s if m})
    return len(distinct) > 1 and all(pair in pairs for pair in combinations(distinct, 2))


def find_group(cat: Catalog, group_id: int) -> Group:
    for group in current_groups(cat):
        if group.id == group_id:
            return group
    raise BadInputError(f"no group {group_id} in the current grouping", hint="reload the page")


def overview(cat: Catalog, *, kind: str | None = None, sort: str = "size") -> dict:
    """Groups (summaries) filtered by evidence kind and sorted by reclaimable size or score, with totals."""
    if kind and kind not in KINDS:
        raise BadInputError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if sort not in ("size", "score"):
        raise BadInputError(f"unknown sort {sort!r}; choose size or score")
    groups = current_groups(cat)
    shown = [g for g in groups if not kind or g.kind == kind
             or (kind != "mixed" and any(m.evidence == kind for m in g.members if not m.keeper))]
    summaries = [g.summary() for g in shown]
    if sort == "size":
        summaries.sort(key=lambda s: (-s["reclaimable"], -s["size"], s["id"]))
    else:
        summaries.sort(key=lambda s: (s["score"], s["id"]))
    reviewed = sum(g.state in ("reviewed", "dismissed", "applied") for g in groups)
    marked = sum(m.size or 0 for g in groups if not g.dismissed for m in g.members
                 if m.decision == "trash" and not m.in_trash)
    return {"groups": summaries,
            "totals": {"groups": len(groups), "shown": len(shown), "reviewed": reviewed,
                       "files": sum(len(g.members) for g in groups),
                       "reclaimable": sum(g.reclaimable for g in groups), "marked_trash": marked,
                       "kinds": {k: sum(g.kind == k for g in groups) for k in KINDS}}}


# -- decisions ------------------------------------------------------------------------------------
def keep_one(cat: Catalog, group_id: int, file_id: int) -> Group:
    """Keep ``file_id`` and mark every other member of its group trash."""
    group = find_group(cat, group_id)
    _member(group, file_id)
    cat.set_not_duplicates([m.md5 for m in group.members if m.md5], value=False)
    cat.set_decisions({m.file_id: "keep" if m.file_id == file_id else "trash"
                       for m in group.members if not m.in_trash}, group_id=group_id)
    return find_group(cat, group_id)


def decide(cat: Catalog, group_id: int, file_id: int, action: str | None) -> Group:
    """Set (or with None clear) one member's decision."""
    if action is not None and action not in ACTIONS:
        raise BadInputError(f"unknown action {action!r}; choose keep, trash or null")
    group = find_group(cat, group_id)
    member = _member(group, file_id)
    if member.in_trash:
        raise BadInputError(f"{member.path} is in the trash; undo restores it")
    if group.dismissed and action is not None:
        cat.set_not_duplicates([m.md5 for m in group.members if m.md5], value=False)
    cat.set_decisions({file_id: action}, group_id=group_id)
    return find_group(cat, group_id)


def not_duplicates(cat: Catalog, group_id: int, value: bool = True) -> Group:
    """Say the group's photos are not duplicates (or take that back); clears keep/trash decisions."""
    group = find_group(cat, group_id)
    md5s = {m.md5 for m in group.members if m.md5}
    if value and len(md5s) < 2:
        raise BadInputError("these files are byte-for-byte identical (same md5): they are duplicates")
    if value and any(m.in_trash for m in group.members):
        raise BadInputError("a member of this group is in the trash; undo restores it first")
    cat.set_not_duplicates(md5s, value=value)
    cat.set_decisions({m.file_id: None for m in group.members if not m.in_trash})
    return find_group(cat, group_id)


def reset(cat: Catalog, group_id: int) -> Group:
    """Forget every decision about this group (files in the trash keep theirs)."""
    group = find_group(cat, group_id)
    cat.set_not_duplicates([m.md5 for m in group.members if m.md5], value=False)
    cat.set_decisions({m.file_id: None for m in group.members if not m.in_trash})
    return find_group(cat, group_id)


def _member(group: Group, file_id: int) -> Member:
    for member in group.members:
        if member.file_id == file_id:
            return member
    raise BadInputError(f"file {file_id} is not in group {group.id}")


# -- labels ---------------------------------------------------------------------------------------
def labels(cat: Catalog, *, root: Path | None = None) -> dict:
    """Reviewed groups as labels in the sample library's truth.json format (``photodedup eval --truth``).

    ``groups``: the members of every group a person reviewed (each member kept or trashed);
    ``unrelated``: the files of groups marked not duplicates (identical copies among them still
    form a group). Paths are relative to ``root`` when given (files outside it are left out), else
    absolute. ``root`` is written too (else the folder all grouped files share), since ``eval`` scores
    the files under it. Unreviewed groups are left out: nobody has said anything about them.
    """
    def name(path: str) -> str | None:
        if root is None:
            return path
        try:
            return Path(path).relative_to(root).as_posix()
        except ValueError:
            return None

    groups = current_groups(cat)
    paths = [m.path for g in groups for m in g.members]
    common = Path(root) if root else Path(os.path.commonpath(paths)) if paths else None
    out: dict = {"groups": [], "unrelated": [], "root": str(common) if common else None,
                 "source": "photodedup review", "exported_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    for group in groups:
        if group.dismissed:
            by_content: dict[str, list[str]] = {}
            for m in group.members:
                by_content.setdefault(m.md5 or m.path, []).append(m.path)
            for paths in by_content.values():
                names = [n for n in map(name, paths) if n]
                if len(names) > 1:
                    out["groups"].append(sorted(names))
                elif names:
                    out["unrelated"].append(names[0])
        elif group.state in ("reviewed", "applied"):
            names = [n for n in (name(m.path) for m in group.members if m.decision) if n]
            if len(names) > 1:
                out["groups"].append(sorted(names))
    out["groups"].sort()
    out["unrelated"].sort()
    return out


def write_labels(out: Path, *, catalog: Path | None = None, root: Path | None = None) -> int:
    """Write ``labels()`` to ``out`` as JSON; returns how many labelled groups it holds."""
    with Catalog(catalog, create=False) as cat:
        data = labels(cat, root=root)
    out.write_text(json.dumps(data, indent=1) + "\n")
    return len(data["groups"])
