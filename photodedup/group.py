"""``photodedup group``: turn hashes and embeddings into duplicate groups a person can act on.

Evidence: exact (same MD5), perceptual (pHash Hamming distance <= ``hash_threshold``) and semantic
(cosine >= ``cosine`` for one model's embeddings). Embeddings of random-weight models are never
evidence unless ``allow_random`` is set. Clustering is complete link by default (no chaining: every
member is within the thresholds of every other), single link on request; see ``photodedup.cluster``.
Each group names a suggested keeper with the reason (``photodedup.keeper``: the camera original
first), and every other member why it is not the keeper. Nothing is deleted or moved here.

Groups are stored in the catalog (tables ``group_runs``, ``groups``, ``group_members``); the latest
run is the current one, read back with ``photodedup.groups.load_groups``.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from photodedup import cluster as clu
from photodedup import keeper
from photodedup.catalog import Catalog, display, open_catalog
from photodedup.errors import BadInputError
from photodedup.groups import Group, Member
from photodedup.progress import ProgressCallback, no_progress

log = logging.getLogger(__name__)

EVIDENCE = ("exact", "perceptual", "semantic")
#: pHash bits that may differ. Measured on the sample library (docs/BENCHMARKS.md "Grouping quality"):
#: re-encodes, resizes, format conversions, EXIF rotations and brightening differ by <= 4 bits,
#: burst neighbours by <= 6, crops by 10-18, unrelated photos by >= 20.
DEFAULT_HASH_THRESHOLD = 12
#: Immich's near-duplicate default for ViT-B-32 (cosine distance 0.01). Not calibrated here: this
#: machine has no pretrained weights (see docs/DECISIONS.md "Grouping").
DEFAULT_COSINE = 0.99


@dataclass(frozen=True)
class GroupParams:
    """Everything that decides the grouping (stored with each run)."""

    evidence: tuple[str, ...] = EVIDENCE
    hash_threshold: int = DEFAULT_HASH_THRESHOLD
    cosine: float = DEFAULT_COSINE
    model: str | None = None
    allow_random: bool = False
    method: str = "complete"
    search: str = "auto"
    keeper_rules: tuple[str, ...] = keeper.expand_rules(keeper.DEFAULT_RULES)
    prefer: tuple[str, ...] = ()   # reference folders (absolute): their files always win, never trashed

    def __post_init__(self) -> None:
        object.__setattr__(self, "keeper_rules", keeper.expand_rules(self.keeper_rules))
        unknown = sorted(set(self.evidence) - set(EVIDENCE))
        if unknown:
            raise BadInputError(f"unknown evidence {', '.join(unknown)}", hint=f"choose from: {', '.join(EVIDENCE)}")
        if self.method not in clu.METHODS:
            raise BadInputError(f"unknown clustering method {self.method!r}",
                                hint=f"choose one of: {', '.join(clu.METHODS)}")
        if self.search not in ("auto", "exact", "faiss"):
            raise BadInputError(f"unknown search {self.search!r}", hint="choose one of: auto, exact, faiss")
        if not 0 <= self.hash_threshold <= 64:
            raise BadInputError(f"--hash-threshold must be between 0 and 64, got {self.hash_threshold}")
        if not -1.0 <= self.cosine <= 1.0:
            raise BadInputError(f"--cosine must be between -1 and 1, got {self.cosine}")


@dataclass
class GroupResult:
    groups: list[Group]
    params: GroupParams
    files: int
    edges: dict[str, int]
    model: str | None
    warnings: list[str]
    seconds: float
    run_id: int | None = None

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "params": asdict(self.params), "files": self.files,
                "model": self.model, "edges": self.edges, "warnings": self.warnings,
                "seconds": round(self.seconds, 3),
                "duplicates": sum(len(g.members) - 1 for g in self.groups),
                "groups": [g.as_dict() for g in self.groups]}

    def render(self, limit: int = 20) -> str:
        lines = [f"{len(self.groups)} duplicate groups among {self.files} files "
                 f"({sum(len(g.members) - 1 for g in self.groups)} candidates to remove; "
                 f"{self.params.method} link; evidence: {', '.join(self._used())}) in {self.seconds:.1f}s"]
        for g in self.groups[:limit]:
            lines.append(f"[{g.id}] {g.kind}, {len(g.members)} files; keep {g.keeper_path} ({g.keeper_reason})")
            for m in g.members:
                if m.file_id != g.keeper:
                    lines.append(f"    {m.evidence:<10} {m.score:.3f}  {m.path}  [{m.note}]")
                lines += [f"    {'pair':<10} {'':5}  + {c.path}" for c in m.companions]
        if len(self.groups) > limit:
            lines.append(f"... and {len(self.groups) - limit} more groups (use --json, --csv or --html)")
        return "\n".join(lines)

    def _used(self) -> list[str]:
        used = [e for e in self.params.evidence if e != "semantic"]
        if self.model:
            used.append(f"semantic ({self.model})")
        return used


# -- the library function --------------------------------------------------------------------------
def group(catalog: Path | str | Catalog | None = None, *, roots: Sequence[Path | str] = (),
          params: GroupParams | None = None, store: bool = True,
          progress: ProgressCallback | None = None) -> GroupResult:
    """Group the catalog's OK files (only those under ``roots`` when given) and store the run."""
    params = params or GroupParams()
    progress = progress or no_progress
    started = time.perf_counter()
    with open_catalog(catalog) as cat:
        rows = select_files(cat, roots)
        progress(0, 3)
        model, warnings = pick_model(cat, params)
        vectors = semantic_vectors(cat, rows, model) if model else None
        parts = find_edges(rows, vectors, params)
        progress(1, 3)
        groups = build_groups(rows, clu.combine(*parts.values()), params, pairs=cat.raw_pairs())
        progress(2, 3)
        counts = {kind: len(edges) for kind, edges in parts.items()}
        result = GroupResult(groups, params, len(rows), counts, model, warnings, time.perf_counter() - started)
        if store and cat.readonly:
            warnings.append(f"the catalog {cat.path} is read-only: these groups are not stored, so review "
                            "and apply do not see them")
        elif store:
            result.run_id = store_groups(cat, result)
        progress(3, 3)
    return result


def select_files(cat: Catalog, roots: Sequence[Path | str] = ()) -> list:
    """OK file rows (under ``roots`` when given), ordered by path."""
    if not roots:
        return cat.files("ok")
    rows = {}
    for root in roots:
        for row in cat.files("ok", under=str(Path(root).expanduser().resolve())):
            rows[row["id"]] = row
    return sorted(rows.values(), key=lambda r: r["path"])


def pick_model(cat: Catalog, params: GroupParams) -> tuple[str | None, list[str]]:
    """The model whose embeddings are semantic evidence (or None), and warnings to show."""
    if "semantic" not in params.evidence:
        return None, []
    models = {row["id"]: row for row in cat.models() if row["embedded"]}
    if params.model:
        row = models.get(params.model)
        if row is None:
            raise BadInputError(f"no embeddings for model {params.model!r} in the catalog",
                                hint=f"run `photodedup embed` first; models with embeddings: "
                                     f"{', '.join(models) or 'none'}")
        if row["is_random"] and not params.allow_random:
            raise BadInputError(f"the model {params.model} has random weights: its embeddings carry no meaning",
                                hint="pass --allow-random to use them anyway (to test the mechanics only)")
        chosen = row
    else:
        real = [row for row in models.values() if not row["is_random"]]
        randoms = [row for row in models.values() if row["is_random"]]
        if real:
            chosen = max(real, key=lambda r: (r["embedded"], r["created_at"]))
        elif randoms and params.allow_random:
            chosen = max(randoms, key=lambda r: (r["embedded"], r["created_at"]))
        elif randoms:
            message = (f"semantic evidence skipped: the only embeddings ({', '.join(r['id'] for r in randoms)}) "
                       "come from random weights and carry no meaning (--allow-random uses them anyway)")
            log.warning(message)
            return None, [message]
        else:
            return None, ["semantic evidence skipped: no embeddings in the catalog (run `photodedup embed`)"]
    warnings = []
    if chosen["is_random"]:
        message = (f"USING RANDOM-WEIGHT EMBEDDINGS ({chosen['id']}) AS EVIDENCE: they carry no meaning, "
                   "so semantic groups are noise; use this only to test the mechanics")
        log.warning(message)
        warnings.append(message)
    return chosen["id"], warnings


def semantic_vectors(cat: Catalog, rows: Sequence, model: str) -> tuple[np.ndarray, np.ndarray]:
    """``(row indices, vectors)`` of the rows that have an embedding for ``model``."""
    ids, vectors = cat.embeddings(model)
    position = {row["id"]: index for index, row in enumerate(rows)}
    keep = np.fromiter((fid in position for fid in ids.tolist()), dtype=bool, count=len(ids))
    index = np.fromiter((position[fid] for fid in ids[keep].tolist()), dtype=np.int64, count=int(keep.sum()))
    return index, vectors[keep]


def find_edges(rows: Sequence, vectors: tuple[np.ndarray, np.ndarray] | None,
               params: GroupParams) -> dict[str, clu.Edges]:
    """Candidate pairs of every enabled evidence kind, by kind (``cluster.combine`` merges them)."""
    parts: dict[str, clu.Edges] = {}
    if "exact" in params.evidence:
        parts["exact"] = clu.exact_pairs([row["md5"] for row in rows])
    if "perceptual" in params.evidence:
        index = np.array([k for k, row in enumerate(rows) if row["phash"] is not None], dtype=np.int64)
        hashes = clu.to_uint64([rows[k]["phash"] for k in index.tolist()])
        found = clu.hamming_pairs(hashes, params.hash_threshold)
        parts["perceptual"] = clu.Edges.of(index[found.i], index[found.j], clu.PERCEPTUAL, found.distance)
    if vectors is not None and len(vectors[0]):
        index, vecs = vectors
        found = clu.cosine_pairs(vecs, params.cosine, method=params.search)
        parts["semantic"] = clu.Edges.of(index[found.i], index[found.j], clu.SEMANTIC, found.distance)
    return parts


def build_groups(rows: Sequence, edges: clu.Edges, params: GroupParams | None = None,
                 pairs: dict[int, int] | None = None) -> list[Group]:
    """Cluster, then name each group's keeper and each member's evidence (ids are 1, 2, ...).

    ``pairs`` (RAW file id -> JPEG/HEIC file id): each RAW+JPEG pair is one item, the RAW with its
    JPEG as a companion, so a pair is never a group by itself and never split.
    """
    params = params or GroupParams()
    edges, companions = _shots(rows, edges, pairs or {})
    keys = np.array([row["id"] for row in rows], dtype=np.int64)
    clusters = clu.cluster(len(rows), edges, keys, method=params.method)
    label = np.full(len(rows), -1, dtype=np.int64)
    for number, members in enumerate(clusters):
        label[members] = number
    inside = (label[edges.i] >= 0) & (label[edges.i] == label[edges.j])
    best: dict[tuple[int, int], tuple[int, float]] = {}
    for a, b, rank, dist in zip(edges.i[inside].tolist(), edges.j[inside].tolist(),
                                edges.rank[inside].tolist(), edges.distance[inside].tolist(), strict=True):
        best[(a, b)] = best[(b, a)] = (rank, dist)
    groups = []
    for members in clusters:
        out = [(k, Member.from_row(rows[k], evidence="", score=0.0)) for k in members]
        for k, m in out:
            m.companions = [Member.from_row(rows[c], evidence="pair", score=1.0) for c in companions.get(k, ())]
        choice = keeper.choose([m for _, m in out], params.keeper_rules, params.prefer)
        keeper_index = next(k for k, m in out if m.file_id == choice.keeper)
        for k, m in out:
            m.keeper = k == keeper_index
            m.note = choice.notes.get(m.file_id, "")
            m.reference = keeper.in_folders(m.path, params.prefer)
            for c in m.companions:
                c.keeper, c.reference = m.keeper, m.reference
            if m.keeper:
                m.evidence, m.score = "keeper", 1.0
            else:
                # complete link: a direct edge to the keeper always exists; single link: the best edge
                link = best.get((k, keeper_index)) or min(best[(k, o)] for o in members if (k, o) in best)
                m.evidence, m.score = clu.KIND_NAMES[link[0]], round(_score(*link), 6)
        ordered = sorted((m for _, m in out), key=lambda m: (m.evidence != "keeper", m.path))
        kinds = {m.evidence for m in ordered if m.evidence != "keeper"}
        groups.append(Group(0, kinds.pop() if len(kinds) == 1 else "mixed", choice.keeper, choice.reason, ordered))
    groups.sort(key=lambda g: g.keeper_path)
    for number, g in enumerate(groups, 1):
        g.id = number
    return groups


def _shots(rows: Sequence, edges: clu.Edges, pairs: dict[int, int]) -> tuple[clu.Edges, dict[int, list[int]]]:
    """Edges between shots: a pair's JPEG hands its edges to its RAW (the pair's own edge goes).

    Returns those edges and, by the RAW's row index, the row indices of its companions.
    """
    index = {row["id"]: k for k, row in enumerate(rows)}
    lead = np.arange(len(rows), dtype=np.int64)
    companions: dict[int, list[int]] = {}
    for raw_id, other_id in pairs.items():
        if raw_id in index and other_id in index:
            lead[index[other_id]] = index[raw_id]
            companions.setdefault(index[raw_id], []).append(index[other_id])
    if not companions:
        return edges, {}
    i, j = lead[edges.i], lead[edges.j]
    keep = i != j
    moved = clu.Edges(np.minimum(i, j)[keep], np.maximum(i, j)[keep], edges.rank[keep], edges.distance[keep])
    return clu.combine(moved), companions


def _score(rank: int, distance: float) -> float:
    return 1.0 if rank == clu.EXACT else 1.0 - distance / 64 if rank == clu.PERCEPTUAL else 1.0 - distance


# -- persistence -----------------------------------------------------------------------------------
def store_groups(cat: Catalog, result: GroupResult) -> int:
    """Write one run with its groups in one transaction; returns the run id. Group ids become the stored ids."""
    params = asdict(result.params) | {"model_used": result.model}
    run_id, ids = cat.store_group_run(params, [
        (g.kind, g.keeper, g.keeper_reason, [(m.file_id, m.evidence, m.score, m.note) for m in g.members])
        for g in result.groups])
    for g, group_id in zip(result.groups, ids, strict=True):
        g.id = group_id
    return run_id


def write_csv(groups: Sequence[Group], out: Path | str) -> Path:
    """One row per file (a pair's JPEG has role ``pair``): group, kind, role, path, evidence, score,
    resolution, size, format, camera, capture time, reference, the keeper's reason and why this member
    is not the keeper."""
    out = Path(out)
    with out.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["group", "kind", "role", "path", "evidence", "score", "width", "height", "size",
                         "format", "camera", "taken_at", "reference", "keeper_reason", "why_not_keeper"])
        for g in groups:
            for m in g.members:
                for f in m.files:  # a RAW+JPEG pair: the JPEG follows its RAW, role "pair"
                    role = "pair" if f is not m else "keeper" if m.file_id == g.keeper else "candidate"
                    writer.writerow([g.id, g.kind, role, display(f.path), f.evidence, f.score, f.width, f.height,
                                     f.size, f.format, f.camera, f.taken_at, int(f.reference), g.keeper_reason, m.note])
    return out
