"""Duplicate groups and the decisions about them: the domain that ``group``, ``review`` and ``apply`` share.

This module is the model and its loading (:class:`Group`, :class:`Member`, :func:`current_groups`,
:func:`overview`); beside it, :mod:`.decisions` makes the decisions (the review page's buttons),
:mod:`.compare` says in words what differs between two members, and :mod:`.labels` exports reviewed
groups as labels for ``eval``. ``photodedup/group.py`` is the ``group`` command that makes the groups.

A :class:`Group` is what ``photodedup group`` stored (its members, the suggested keeper and why),
joined with what people decided since. Decisions:

- ``keep`` or ``trash`` for one file, stored with the md5 it was made on, so a changed file is
  never trashed;
- "not duplicates" for a group, stored as every pair of its distinct contents (md5), so it survives
  re-scans, moves and regrouping: a later group whose contents were all said to be pairwise
  distinct comes back *dismissed*; one that gained a new content comes back open;
- "not a duplicate of these" for one member: the pairs of its content with the others', so it
  leaves the group (and stays out after regrouping) while the rest stays;
- files under a reference folder (``group --prefer DIR``) are never marked trash.

A RAW+JPEG pair (one shot the camera wrote as two files, ``photodedup.raw.find_pairs``) is one
member: the RAW, with its JPEG or HEIC as a *companion*. The decision is made on the RAW and holds
for both; ``apply`` moves both halves and ``undo`` restores both. A Live Photo's video and a photo's
sidecars (.xmp, .aae, Takeout .json; ``photodedup.media.find_companions``) are companions the same
way (evidence ``live``, ``sidecar``).

All SQL lives in :mod:`photodedup.catalog`; this package holds no web and no file moving.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path

from photodedup import keeper as keeper_rules
from photodedup.catalog import Catalog, in_trash, open_catalog
from photodedup.cluster import KIND_NAMES
from photodedup.errors import BadInputError, NotFoundError

#: What the page's filter offers: every evidence kind of the registry (``cluster.KINDS``), and mixed.
KINDS = (*KIND_NAMES, "mixed")
#: duplicate: trashing all but one loses nothing; similar: one scene, other captures (only a person trashes).
CATEGORIES = ("duplicate", "similar")


@dataclass
class Member:
    """One file of a group: what joined it, what the scan knows of it, and what was decided."""

    file_id: int
    path: str
    evidence: str                    # keeper | exact | perceptual | semantic ...: what joined it to the group
    score: float                     # 1.0 exact, 1 - hamming/64 perceptual, cosine semantic
    width: int | None = None         # after EXIF orientation
    height: int | None = None
    size: int | None = None
    format: str | None = None
    taken_at: str | None = None
    camera: str | None = None
    md5: str | None = None
    mtime_ns: int | None = None
    content_width: int | None = None   # inside any uniform border (None: not measured)
    content_height: int | None = None
    grayscale: int | None = None       # 1 grayscale, 0 colour, None not measured
    jpeg_quality: int | None = None    # JPEG quality of its tables (100: a maximum-quality re-save)
    #: A watermark or logo on this file that another member lacks (the pixel check, ``confirm``, against a
    #: group mate; words that say where, e.g. "lower right, 3% of the picture"); None: not checked or none found.
    added_mark: str | bool | None = None
    motion: str | None = None          # a motion photo (a video inside the still): google | samsung
    status: str = "ok"
    keeper: bool = False
    note: str = ""                   # why it is not the keeper (the rule that decided)
    #: What joined it (not for the keeper): kind, and bits + variant ("mirrored", "turned 90", "as is") for
    #: perceptual, inliers + coverage for verified, cosine for semantic; ``how``: the same in words.
    match: dict = field(default_factory=dict)
    reference: bool = False          # under a reference folder (--prefer): never trashed
    decision: str | None = None      # keep | trash | None
    in_trash: bool = False
    #: Files that travel with this one (kept or trashed together): the JPEG of a RAW+JPEG pair (evidence
    #: ``pair``), a Live Photo's video (``live``), sidecars (``sidecar``).
    companions: list[Member] = field(default_factory=list)
    #: Other paths of this very file (same device and inode: hard links, or a folder reached by two
    #: paths). Never a duplicate of it: trashing one name frees nothing (``photodedup.grouping.one_per_file``).
    other_names: list[str] = field(default_factory=list)

    @classmethod
    def from_row(cls, row, *, evidence: str, score: float, **extra) -> Member:
        """A member from a ``files`` row (sqlite3.Row or dict); columns a catalog lacks stay None."""
        keys = set(row.keys())
        get = lambda name: row[name] if name in keys else None  # noqa: E731
        return cls(file_id=row["id"], path=row["path"], evidence=evidence, score=float(score),
                   width=get("width"), height=get("height"), size=get("size"), format=get("format"),
                   taken_at=get("taken_at"), camera=get("camera"), md5=get("md5"), mtime_ns=get("mtime_ns"),
                   content_width=get("content_width"), content_height=get("content_height"),
                   grayscale=get("grayscale"), jpeg_quality=get("jpeg_quality"), motion=get("motion"),
                   status=get("status") or "ok",
                   **({"match": json.loads(get("match"))} if get("match") else {}) | extra)

    def __post_init__(self) -> None:
        if not self.added_mark and self.match.get("added_mark"):
            self.added_mark = self.match["added_mark"]

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def files(self) -> list[Member]:
        """This file and its companions (the halves of a RAW+JPEG pair)."""
        return [self, *self.companions]

    @property
    def item_words(self) -> str:
        """What travels with this file, in words: ``RAW+JPEG pair``, ``Live Photo + sidecars``, ... ('' alone)."""
        kinds = {c.evidence for c in self.companions}
        return " + ".join(word for kind, word in (("pair", "RAW+JPEG pair"), ("live", "Live Photo"),
                                                  ("sidecar", "sidecars")) if kind in kinds)

    @property
    def total_size(self) -> int:
        return sum(m.size or 0 for m in self.files)


@dataclass
class Group:
    """A duplicate group, its suggested keeper and the state of its review."""

    id: int
    kind: str                        # exact | perceptual | semantic | mixed
    keeper: int                      # file id
    keeper_reason: str
    members: list[Member] = field(default_factory=list)
    dismissed: bool = False          # marked not duplicates
    removed: list[Member] = field(default_factory=list)  # taken out ("not a duplicate of these")
    #: duplicate, or similar (shots of one scene: nothing suggested for the trash, never bulk-accepted)
    category: str = "duplicate"

    @property
    def keeper_path(self) -> str:
        return next(m.path for m in self.members if m.file_id == self.keeper)

    @property
    def state(self) -> str:
        """dismissed | applied | reviewed | partial | open."""
        if self.dismissed:
            return "dismissed"
        if any(m.in_trash for m in self.members):
            return "applied"
        decided = sum(m.decision is not None for m in self.members)
        return "reviewed" if decided == len(self.members) else "partial" if decided else "open"

    def suggested(self) -> dict[int, str]:
        """The suggested decisions: keep the keeper and every reference file, trash the rest (similar
        shots: keep every one; only a person trashes one of them)."""
        return {m.file_id: "keep" if m.file_id == self.keeper or m.reference or self.category != "duplicate"
                else "trash" for m in self.members if not m.in_trash}

    @property
    def reclaimable(self) -> int:
        """Bytes that trashing would free: the files marked trash, else what the suggestion would trash."""
        if self.dismissed:
            return 0
        if any(m.decision for m in self.members):
            return sum(m.total_size for m in self.members if m.decision == "trash" and not m.in_trash)
        trash = {i for i, action in self.suggested().items() if action == "trash"}
        return sum(m.total_size for m in self.members if m.file_id in trash and m.status == "ok")

    @property
    def paths(self) -> list[str]:
        """Every file of the group, companions included."""
        return [f.path for m in self.members for f in m.files]

    def summary(self) -> dict:
        return {"id": self.id, "kind": self.kind, "category": self.category, "state": self.state,
                "count": len(self.members),
                "keeper": self.keeper, "keeper_reason": self.keeper_reason, "reclaimable": self.reclaimable,
                "size": sum(m.total_size for m in self.members),
                "score": min((m.score for m in self.members if m.file_id != self.keeper), default=1.0),
                "evidence": sorted({m.evidence for m in self.members if not m.keeper}),
                "files": [m.file_id for m in self.members], "removed": len(self.removed)}

    def detail(self) -> dict:
        return self.summary() | {"members": [m.as_dict() | {"evidence_words": evidence_words(m)} for m in self.members],
                                 "removed_members": [m.as_dict() for m in self.removed]}

    def as_dict(self) -> dict:
        """What ``photodedup group --json`` prints for a group."""
        return {"id": self.id, "kind": self.kind, "category": self.category, "keeper": self.keeper_path,
                "keeper_id": self.keeper,
                "keeper_reason": self.keeper_reason,
                "members": [{k: v for k, v in m.as_dict().items()
                             if k not in ("decision", "in_trash", "status", "companions", "other_names", "added_mark",
                                          "motion") or v}
                            for m in self.members]}


# -- reading -----------------------------------------------------------------------------------------
def load_groups(catalog: Path | str | Catalog | None = None, run_id: int | None = None) -> list[Group]:
    """The groups of the latest ``photodedup group`` run (or of ``run_id``), as stored (no decisions)."""
    with open_catalog(catalog) as cat:
        run = cat.group_run(run_id)
        if run is None:
            return []
        run_id, params = run
        prefer = tuple(params.get("prefer") or ())
        groups = {row["id"]: Group(row["id"], row["kind"], row["keeper_id"], row["keeper_reason"],
                                   category=row["category"] if "category" in row.keys() else "duplicate")
                  for row in cat.group_rows(run_id)}
        for row in cat.group_member_rows(run_id):
            group = groups[row["group_id"]]
            group.members.append(Member.from_row(
                row, evidence=row["evidence"], score=row["score"], keeper=row["id"] == group.keeper,
                note=row["note"], reference=keeper_rules.in_folders(row["path"], prefer), in_trash=in_trash(row)))
        travelling: dict[int, list[tuple[int, str]]] = {}
        for raw_id, other_id in cat.raw_pairs().items():
            travelling.setdefault(raw_id, []).append((other_id, "pair"))
        for file_id, lead_id, kind in cat.companions():
            travelling.setdefault(lead_id, []).append((file_id, kind))
        for group in groups.values():
            ids = {m.file_id for m in group.members}
            for m in group.members:
                for partner, kind in travelling.get(m.file_id, ()):
                    if partner not in ids:
                        row = cat.file(partner)
                        m.companions.append(Member.from_row(row, evidence=kind, score=1.0, keeper=m.keeper,
                                                            reference=m.reference, in_trash=in_trash(row)))
    return list(groups.values())


def current_groups(cat: Catalog) -> list[Group]:
    """The current groups with the decisions made since: keep/trash, not duplicates, members taken out."""
    decisions = cat.decisions()
    pairs = cat.not_duplicate_pairs()
    run = cat.group_run()
    params = run[1] if run else {}
    out = []
    for group in load_groups(cat):
        for m in group.members:
            decision = decisions.get(m.file_id)
            for f in m.files:  # one decision for both halves of a pair
                f.decision = decision["action"] if decision else None
        group.dismissed = _dismissed([m.md5 for m in group.members], pairs)
        if not group.dismissed:
            group.removed = [m for m in group.members if _taken_out(m, group.members, pairs)]
            group.members = [m for m in group.members if m not in group.removed]
            if any(m.keeper for m in group.removed):
                _choose_again(group, params)
        out.append(group)
    return out


def _choose_again(group: Group, params: dict) -> None:
    """The suggested keeper was taken out of its group: choose again among the members left."""
    for m in group.removed:
        m.keeper = False
    choice = keeper_rules.choose(group.members, params.get("keeper_rules") or keeper_rules.DEFAULT_RULES,
                                 tuple(params.get("prefer") or ()))
    group.keeper = choice.keeper
    group.keeper_reason = f"{choice.reason} (the first suggestion was taken out)".lstrip()
    for m in group.members:
        m.keeper = m.file_id == choice.keeper
        m.note = choice.notes.get(m.file_id, "")


def _dismissed(md5s: list[str | None], pairs: set[tuple[str, str]]) -> bool:
    distinct = sorted({m for m in md5s if m})
    return len(distinct) > 1 and all(pair in pairs for pair in combinations(distinct, 2))


def _taken_out(member: Member, members: list[Member], pairs: set[tuple[str, str]]) -> bool:
    others = {m.md5 for m in members if m.md5 and m.md5 != member.md5}
    return bool(member.md5 and others) and all(tuple(sorted((member.md5, o))) in pairs for o in others)


def find_group(cat: Catalog, group_id: int) -> Group:
    for group in current_groups(cat):
        if group.id == group_id:
            return group
    raise NotFoundError(f"no group {group_id} in the current grouping", hint="reload the page")


def overview(cat: Catalog, *, kind: str | None = None, sort: str = "size") -> dict:
    """Groups (summaries) filtered by evidence kind and sorted by reclaimable size or score, with totals."""
    if kind and kind not in KINDS:
        raise BadInputError(f"unknown kind {kind!r}; choose one of {', '.join(KINDS)}")
    if sort not in ("size", "score"):
        raise BadInputError(f"unknown sort {sort!r}; choose size or score")
    groups = current_groups(cat)
    shown = [g for g in groups if not kind or g.kind == kind
             or (kind != "mixed" and any(m.evidence == kind for m in g.members if not m.keeper))]
    if kind and kind != "similar":  # the evidence of duplicates: similar shots are their own category
        shown = [g for g in shown if g.category == "duplicate"]
    summaries = [g.summary() for g in shown]
    if sort == "size":
        summaries.sort(key=lambda s: (-s["reclaimable"], -s["size"], s["id"]))
    else:
        summaries.sort(key=lambda s: (s["score"], s["id"]))
    reviewed = sum(g.state in ("reviewed", "dismissed", "applied") for g in groups)
    marked = sum(m.total_size for g in groups if not g.dismissed for m in g.members  # with RAW+JPEG companions
                 if m.decision == "trash" and not m.in_trash)
    return {"groups": summaries,
            "totals": {"groups": len(groups), "shown": len(shown), "reviewed": reviewed,
                       "files": sum(len(g.members) for g in groups),
                       "reclaimable": sum(g.reclaimable for g in groups), "marked_trash": marked,
                       "kinds": {k: sum(g.kind == k for g in groups) for k in KINDS},
                       "categories": {c: sum(g.category == c for g in groups) for c in CATEGORIES}}}


def evidence_words(m: Member) -> str:
    """What joined a member to its group, in words (``match["how"]``, written by ``photodedup group``)."""
    if m.keeper or m.evidence == "keeper":
        return "the suggested keeper"
    if m.match.get("how"):
        return m.match["how"]
    if m.evidence == "exact":
        return "exact copy (same bytes)"
    if m.evidence == "perceptual":
        return f"perceptual ({round((1.0 - m.score) * 64)} of 64 pHash bits differ)"
    return f"{m.evidence} ({m.score:.3f})"
