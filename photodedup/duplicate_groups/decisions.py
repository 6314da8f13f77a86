"""What people decide about duplicate groups (the review page's buttons): keep one, keep or trash a member,
"not duplicates", take a member out, accept the suggestions, and take each back.

Every command reads the group as it is now (:func:`photodedup.duplicate_groups.find_group`), checks the
decision may be made, stores it in the catalog and returns the group as it is after it.
"""

from __future__ import annotations

from photodedup.catalog import Catalog
from photodedup.duplicate_groups import Group, Member, current_groups, find_group
from photodedup.errors import BadInputError

ACTIONS = ("keep", "trash")


def keep_one(cat: Catalog, group_id: int, file_id: int) -> Group:
    """Keep ``file_id`` (and every reference file) and mark every other member of its group trash."""
    group = find_group(cat, group_id)
    _member(group, file_id)
    _not_dismissed(group)
    cat.set_not_duplicates([m.md5 for m in group.members if m.md5], value=False)
    cat.set_decisions({m.file_id: "keep" if m.file_id == file_id or m.reference else "trash"
                       for m in group.members if not m.in_trash}, group_id=group_id)
    return find_group(cat, group_id)


def decide(cat: Catalog, group_id: int, file_id: int, action: str | None) -> Group:
    """Set (or with None clear) one member's decision. A dismissed group must be reopened first."""
    if action is not None and action not in ACTIONS:
        raise BadInputError(f"unknown action {action!r}; choose keep, trash or null")
    group = find_group(cat, group_id)
    member = _member(group, file_id)
    if member.in_trash:
        raise BadInputError(f"{member.path} is in the trash; undo restores it")
    if action is not None:
        _not_dismissed(group)
    if action == "trash" and member.reference:
        raise BadInputError(f"{member.path} is in a reference folder (--prefer): it is never trashed")
    cat.set_decisions({file_id: action}, group_id=group_id)
    return find_group(cat, group_id)


def not_duplicates(cat: Catalog, group_id: int, value: bool = True) -> Group:
    """Say the group's photos are not duplicates (or take that back); clears keep/trash decisions."""
    group = find_group(cat, group_id)
    everyone = group.members + group.removed
    md5s = {m.md5 for m in everyone if m.md5}
    if value and len(md5s) < 2:
        raise BadInputError("these files are byte-for-byte identical (same md5): they are duplicates")
    if value and any(m.in_trash for m in group.members):
        raise BadInputError("a member of this group is in the trash; undo restores it first")
    cat.set_not_duplicates(md5s, value=value)
    cat.set_decisions({m.file_id: None for m in everyone if not m.in_trash})
    return find_group(cat, group_id)


def take_out(cat: Catalog, group_id: int, file_id: int, value: bool = True) -> Group:
    """Take one member out of its group ("not a duplicate of these"), or put it back; clears its decision."""
    group = find_group(cat, group_id)
    member = _member(group, file_id, removed=not value)
    if member.in_trash:
        raise BadInputError(f"{member.path} is in the trash; undo restores it")
    others = {m.md5 for m in group.members if m.md5 and m.md5 != member.md5 and m is not member}
    if value and not others:
        raise BadInputError(f"{member.path} is byte-for-byte identical to every other member: it is a duplicate")
    for other in others:
        cat.set_not_duplicates([member.md5, other], value=value)
    cat.set_decisions({file_id: None})
    return find_group(cat, group_id)


def accept_suggestions(cat: Catalog, group_ids: list[int], *, dry_run: bool = False) -> dict:
    """Mark the suggested keeper (and reference files) keep and the rest trash in each of these groups
    that nobody has decided on yet; groups with any decision, dismissed or applied are left alone, and
    so are groups of similar shots (not duplicates: only a person trashes one of them).

    Returns the groups marked (or, with ``dry_run``, that would be), the files marked trash and their bytes.
    """
    wanted = set(group_ids)
    done, trash = [], []
    for g in current_groups(cat):
        if g.id not in wanted or g.state != "open" or g.category != "duplicate":
            continue
        actions = g.suggested()
        if not dry_run:
            cat.set_decisions(actions, group_id=g.id)
        done.append(g.id)
        trash += [{"path": m.path, "size": m.size, "group": g.id}
                  for m in g.members if actions.get(m.file_id) == "trash"]
    return {"dry_run": dry_run, "groups": done, "skipped": sorted(wanted - set(done)), "files": len(trash),
            "bytes": sum(t["size"] or 0 for t in trash), "trash": trash}


def undo_accept(cat: Catalog, group_ids: list[int]) -> dict:
    """Take back ``accept_suggestions``: clear the decisions of these groups where they are still exactly the
    suggestion (a group decided otherwise since, or applied, is left alone and listed as skipped)."""
    wanted = set(group_ids)
    done = []
    for g in current_groups(cat):
        if g.id not in wanted or g.state == "applied" or g.dismissed:
            continue
        if {m.file_id: m.decision for m in g.members} == g.suggested():
            cat.set_decisions({m.file_id: None for m in g.members}, group_id=g.id)
            done.append(g.id)
    return {"groups": done, "skipped": sorted(wanted - set(done))}


def reset(cat: Catalog, group_id: int) -> Group:
    """Forget every decision about this group, members taken out included (files in the trash keep theirs)."""
    group = find_group(cat, group_id)
    everyone = group.members + group.removed
    cat.set_not_duplicates([m.md5 for m in everyone if m.md5], value=False)
    cat.set_decisions({m.file_id: None for m in everyone if not m.in_trash})
    return find_group(cat, group_id)


def _not_dismissed(group: Group) -> None:
    """Deciding keep/trash on a group marked not duplicates is refused: it must be reopened first."""
    if group.dismissed:
        raise BadInputError(f"group {group.id} is marked not duplicates; take that back before deciding",
                            hint="press d (or the Not duplicates button) again to reopen it")


def _member(group: Group, file_id: int, *, removed: bool = False) -> Member:
    for member in group.removed if removed else group.members:
        if member.file_id == file_id:
            return member
    raise BadInputError(f"file {file_id} is not {'taken out of' if removed else 'in'} group {group.id}")
