"""Grouping: turn hashes and embeddings into duplicate groups a person can act on (the domain of ``photodedup
group``, which runs it over the catalog and stores the run: ``photodedup.group``; ``eval`` and ``parquet`` use it too).

Evidence (each kind can be turned off with ``evidence``):

- ``exact``: same MD5;
- ``perceptual``: pHash Hamming distance <= ``hash_threshold``; with ``dihedral`` also after turning
  (90/180/270) or mirroring one of the two (the scan stores the 8 variant hashes; the pair says which);
- ``verified``: a pair beyond the threshold, among each file's ``verify_neighbours`` nearest hashes
  within ``verify_radius`` bits, that local features confirm (``photodedup.verify``: ORB matches, a
  RANSAC homography, the match covering most of the smaller picture): crops, overlays, borders. With
  it on, perceptual pairs beyond ``confirm_above`` bits must also not be refuted by local features;
- ``semantic``: cosine >= ``cosine`` for one model's embeddings.

Every member says what joined it to the keeper (``Member.match``; in words: ``match["how"]``).
Embeddings of random-weight models are never evidence unless ``allow_random`` is set. Clustering is
complete link by default (no chaining: every
member is within the thresholds of every other), single link on request; see ``photodedup.cluster``.
Each group names a suggested keeper with the reason (``photodedup.keeper``: the camera original
first), and every other member why it is not the keeper. Nothing is deleted or moved here.

``photodedup.group`` stores them in the catalog (tables ``group_runs``, ``groups``, ``group_members``); the
latest run is the current one, read back with ``photodedup.duplicate_groups.load_groups``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from photodedup import cluster as clu
from photodedup import confirm, difference, hashing, keeper, verify
from photodedup.catalog import PICTURE_KINDS, Catalog
from photodedup.duplicate_groups import Group, Member
from photodedup.errors import BadInputError
from photodedup.text import printable

log = logging.getLogger(__name__)

EVIDENCE = ("exact", "perceptual", "dihedral", "verified", "semantic")
#: Verification candidates: each file's nearest hashes beyond the threshold, up to this many bits
#: (measured: 6-18% crops move the pHash by 6-34 bits, overlays by 4-16; docs/BENCHMARKS.md), fewer in
#: large libraries (``cluster.bounded_radius``: 24 bits at 10,000 files, 20 at 100,000).
DEFAULT_VERIFY_RADIUS = 32
#: Turned/mirrored matches must be closer than plain ones: seven more comparisons per pair mean seven
#: more chances of a coincidence, and the copies measured differ by 0-2 bits (docs/BENCHMARKS.md).
DEFAULT_DIHEDRAL_THRESHOLD = 4
#: With verified evidence on, perceptual pairs (as is) beyond this many bits must not be refuted by
#: local features (two different photos with one watermark hash this close; docs/BENCHMARKS.md).
DEFAULT_CONFIRM_ABOVE = 8
#: ... and at most this many of them per file (the bound that keeps 100,000 files in minutes).
DEFAULT_VERIFY_NEIGHBOURS = 4
#: ... whose dHashes differ by at most this many bits (sample library: true candidates at 0-20, 25
#: once, a 20% crop at 23; chance neighbours at 12-44, 86% of them above 24).
DEFAULT_VERIFY_DHASH = 24
#: With the pixel check on, each file's this many nearest colour signatures (``verify.colour_signature``)
#: are proposed to it too: one-corner crops, small marks and flat pictures no hash brings close. Four, not
#: three: dark pictures crowd each other's colours (the sample library's star field had three other dark
#: photos nearer than each of its copies; docs/BENCHMARKS.md "Issue 21, recall, session 5").
DEFAULT_PROPOSE_NEIGHBOURS = 4
#: ... at least this similar (Bhattacharyya coefficient of the colour histograms; measured on the second
#: set: crops 0.87-0.99 against their originals, colour edits aside; docs/BENCHMARKS.md).
DEFAULT_PROPOSE_SIMILARITY = 0.85
DEFAULT_HASH_THRESHOLD, DEFAULT_COSINE = clu.DEFAULT_HASH_THRESHOLD, clu.DEFAULT_COSINE  # (the CLI's too)


@dataclass(frozen=True)
class GroupSettings:
    """Everything that decides the grouping (stored with each run)."""

    evidence: tuple[str, ...] = EVIDENCE
    hash_threshold: int = DEFAULT_HASH_THRESHOLD
    cosine: float = DEFAULT_COSINE
    model: str | None = None
    allow_random: bool = False
    method: str = clu.DEFAULT_METHOD
    search: str = "auto"
    dihedral_threshold: int = DEFAULT_DIHEDRAL_THRESHOLD
    confirm_above: int = DEFAULT_CONFIRM_ABOVE
    verify_radius: int = DEFAULT_VERIFY_RADIUS
    verify_neighbours: int = DEFAULT_VERIFY_NEIGHBOURS
    verify_dhash: int = DEFAULT_VERIFY_DHASH
    verify: verify.VerifySettings = verify.VerifySettings()   # what a verified pair must show
    #: Every candidate pair but exact copies must pass the pixel check (``photodedup.confirm``); pairs that
    #: fail but are one scene become similar shots. Off: the groups of before (hashes, features, embeddings).
    check_pixels: bool = True
    propose_neighbours: int = DEFAULT_PROPOSE_NEIGHBOURS   # colour proposals per file (0: none)
    propose_similarity: float = DEFAULT_PROPOSE_SIMILARITY
    pixel_check: confirm.ConfirmSettings = confirm.ConfirmSettings()
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
        if not 0 <= self.verify_radius <= 64 or self.verify_neighbours < 0:
            raise BadInputError("--verify-radius must be between 0 and 64 and --verify-neighbours >= 0")
        if not 0 <= self.hash_threshold <= 64:
            raise BadInputError(f"--hash-threshold must be between 0 and 64, got {self.hash_threshold}")
        if not -1.0 <= self.cosine <= 1.0:
            raise BadInputError(f"--cosine must be between -1 and 1, got {self.cosine}")


@dataclass
class GroupResult:
    groups: list[Group]
    params: GroupSettings
    files: int
    edges: dict[str, int]
    model: str | None
    warnings: list[str]
    seconds: float
    run_id: int | None = None
    #: Files found under several paths (hard links, a folder reached by two paths): ``{paths, note}``.
    same_files: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"run_id": self.run_id, "params": asdict(self.params), "files": self.files,
                "model": self.model, "edges": self.edges, "warnings": self.warnings,
                "seconds": round(self.seconds, 3),
                "duplicates": sum(len(g.members) - 1 for g in self.groups if g.category == "duplicate"),
                "similar_groups": sum(g.category == "similar" for g in self.groups),
                "groups": [g.as_dict() for g in self.groups], "same_files": self.same_files}

    def render(self, limit: int = 20) -> str:
        duplicates = [g for g in self.groups if g.category == "duplicate"]
        similar = len(self.groups) - len(duplicates)
        lines = [f"{len(duplicates)} duplicate groups among {self.files} files "
                 f"({sum(len(g.members) - 1 for g in duplicates)} candidates to remove; "
                 f"{self.params.method} link; evidence: {', '.join(self._used())}) in {self.seconds:.1f}s"
                 + (f"; {similar} groups of similar shots (not duplicates: nothing suggested for the trash)"
                    if similar else "")]
        for g in self.groups[:limit]:
            if g.category != "duplicate":
                lines.append(f"[{g.id}] similar shots, {len(g.members)} files; best shot {printable(g.keeper_path)} "
                             f"({printable(g.keeper_reason)})")
            else:
                lines.append(f"[{g.id}] {g.kind}, {len(g.members)} files; keep {printable(g.keeper_path)} "
                             f"({printable(g.keeper_reason)})")
            for m in g.members:
                if m.file_id != g.keeper:
                    how = f"  ({printable(m.match['how'])})" if m.match.get("how") else ""
                    lines.append(f"    {m.evidence:<10} {m.score:.3f}  {printable(m.path)}{how}  [{printable(m.note)}]")
                lines += [f"    {'pair':<10} {'':5}  + {printable(c.path)}" for c in m.companions]
                lines += [f"    {'same file':<10} {'':5}  = {printable(name)}  (another name of {printable(m.path)}: "
                          f"nothing to free)" for name in m.other_names]
        if len(self.groups) > limit:
            lines.append(f"... and {len(self.groups) - limit} more groups (use --json, --csv or --html)")
        lines += [f"same file: {' = '.join(map(printable, same['paths']))} ({same['kind']}: nothing to free)"
                  for same in self.same_files[:limit]]
        if len(self.same_files) > limit:
            lines.append(f"... and {len(self.same_files) - limit} more files with several names (use --json)")
        return "\n".join(lines)

    def _used(self) -> list[str]:
        used = [e for e in self.params.evidence if e != "semantic"]
        if self.model:
            used.append(f"semantic ({self.model})")
        return used


def select_files(cat: Catalog, roots: Sequence[Path | str] = ()) -> list:
    """OK file rows (under ``roots`` when given), ordered by path."""
    if not roots:
        return cat.files("ok", kinds=PICTURE_KINDS)
    rows = {}
    for root in roots:
        for row in cat.files("ok", under=str(Path(root).expanduser().resolve()), kinds=PICTURE_KINDS):
            rows[row["id"]] = row
    return sorted(rows.values(), key=lambda r: r["path"])


def one_per_file(rows: Sequence) -> tuple[list, dict[int, list[str]]]:
    """``(rows, names)``: one row per file, and each kept row's other paths (by file id).

    A file is its device and inode, not its path: hard links, and one folder reached by two paths
    (a symlink or a bind mount scanned as another root by an earlier version), are several paths
    of one file. They are never duplicates of each other (trashing one name frees nothing, or takes
    the other with it), so the file takes part in grouping once, under its first path. Rows without
    a device and inode (scanned before they were kept) stand for themselves.
    """
    if not len(rows) or "dev" not in rows[0].keys():
        return rows, {}
    first: dict[tuple[int, int], object] = {}
    out: list = []
    names: dict[int, list[str]] = {}
    for row in rows:
        key = (row["dev"], row["ino"])
        if key[0] is None or key[1] is None:
            out.append(row)
        elif key in first:
            names.setdefault(first[key]["id"], []).append(row["path"])
        else:
            first[key] = row
            out.append(row)
    if not names:
        return rows, {}
    return out, names


def same_files(rows: Sequence, names: dict[int, list[str]]) -> list[dict]:
    """Each file with several paths: ``{paths, kind, note}``; kind ``hard links`` when the file says so
    now (more than one link), else ``one file reached by two paths``."""
    out = []
    for row in rows:
        if row["id"] not in names:
            continue
        paths = [row["path"], *names[row["id"]]]
        try:
            linked = os.lstat(row["path"]).st_nlink > 1
        except OSError:
            linked = False
        kind = "hard links" if linked else "one file reached by two paths"
        out.append({"paths": paths, "kind": kind, "note": f"the same file ({kind}): nothing to free"})
    return out


def pick_model(cat: Catalog, params: GroupSettings) -> tuple[str | None, list[str]]:
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


def find_edges(rows: Sequence, vectors: tuple[np.ndarray, np.ndarray] | None, params: GroupSettings, *,
               thumbs: Callable[[int], bytes | None] | None = None) -> dict[str, clu.Edges]:
    """Candidate pairs of every enabled evidence kind, by kind (``cluster.combine`` merges them).

    ``thumbs(file id)`` gives a file's stored thumbnail, for verified evidence (skipped without it).
    """
    parts: dict[str, clu.Edges] = {}
    if "exact" in params.evidence:
        parts["exact"] = clu.exact_pairs([row["md5"] for row in rows])
    if not {"perceptual", "verified"} & set(params.evidence):  # no hash evidence: skip reading the hashes
        index, variants = np.zeros(0, np.int64), np.zeros((0, 8), np.uint64)
    else:
        index = np.array([k for k, row in enumerate(rows) if row["phash"] is not None], dtype=np.int64)
        variants = _variant_hashes([rows[k] for k in index.tolist()])
    if "perceptual" in params.evidence:
        turned = min(params.dihedral_threshold, params.hash_threshold) if "dihedral" in params.evidence else -1
        found = clu.dihedral_pairs(variants, params.hash_threshold, turned)
        parts["perceptual"] = clu.Edges.of(index[found.i], index[found.j], clu.PERCEPTUAL, found.distance,
                                           variant=found.variant)
        if thumbs is not None:
            parts["perceptual"] = clu.combine(parts["perceptual"], framed_edges(
                rows, index, variants[:, 0], params.hash_threshold, _pixel_source(rows, thumbs)))
    if "verified" in params.evidence and thumbs is not None:
        pixels = _pixel_source(rows, thumbs)
        if "perceptual" in parts:
            parts["perceptual"] = confirmed(parts["perceptual"], params, pixels)
        dhashes = clu.to_uint64([rows[k]["dhash"] if rows[k]["dhash"] is not None else 0 for k in index.tolist()])
        parts["verified"] = verified_edges(index, variants[:, 0], dhashes, parts, params, pixels)
    if vectors is not None and len(vectors[0]):
        index, vecs = vectors
        found = clu.cosine_pairs(vecs, params.cosine, method=params.search)
        parts["semantic"] = clu.Edges.of(index[found.i], index[found.j], clu.SEMANTIC, found.distance)
    if params.check_pixels and thumbs is not None:
        pixels = _pixel_source(rows, thumbs)
        signatures, proposed = None, clu.Edges.empty()
        if "verified" in params.evidence and params.propose_neighbours > 0:
            signatures = colour_signatures(rows, pixels)
            proposed = proposed_edges(signatures, parts, params)
            parts["verified"] = clu.combine(parts.get("verified", clu.Edges.empty()), proposed)
        checked = clu.combine(*parts.values())
        parts = _without(confirmed_by_pixels(rows, parts, params, pixels), "similar", proposed)
        parts = _closed(rows, parts, checked, signatures, params, pixels)
    return parts


def framed_edges(rows: Sequence, index: np.ndarray, hashes: np.ndarray, threshold: int, pixels) -> clu.Edges:
    """Perceptual pairs of a framed copy whose trim stopped at its frame: a frame around a picture with a
    uniform margin of its own (a page, a receipt, a screen's plain bar) is two borders, and the scan trims
    one (the frame; the original's scan trims its margin). For each file with a border, its content on the
    thumbnail is trimmed again until nothing more goes, hashed, and matched as is against every file's
    content hash (``index``: the rows of ``hashes``) within ``threshold`` bits."""
    from PIL import Image

    queries, found = [], []
    for k, row in zip(index.tolist(), (rows[k] for k in index.tolist()), strict=True):
        if not row["content_width"] or (row["content_width"], row["content_height"]) == (row["width"], row["height"]):
            continue  # no border: nothing the scan stopped at
        thumb = pixels(k)
        grey = None if thumb is None else thumb.gray()
        if grey is None:
            continue
        box = (0, 0, grey.shape[1], grey.shape[0])
        for _ in range(4):  # the frame's remnant at the thumbnail's scale, the margin, the margin's own edge
            left, top, right, bottom = hashing.trim_box(grey[box[1]:box[3], box[0]:box[2]])
            if (left, top, right, bottom) == (0, 0, box[2] - box[0], box[3] - box[1]):
                break
            box = (box[0] + left, box[1] + top, box[0] + right, box[1] + bottom)
        if (box[2] - box[0]) * (box[3] - box[1]) < 0.9 * grey.size:  # a margin, not the frame's remnant
            inner = Image.fromarray(np.ascontiguousarray(grey[box[1]:box[3], box[0]:box[2]]))
            queries.append(hashing.dihedral_phashes(inner)[0])
            found.append(k)
    if not queries:
        return clu.Edges.empty()
    qi, bj, dist = clu.hamming_cross(np.array(queries, np.uint64), hashes, threshold)
    a, b = np.array(found, np.int64)[qi], index[bj]
    keep = a != b
    return clu.Edges.of(a[keep], b[keep], clu.PERCEPTUAL, dist[keep], variant=np.zeros(int(keep.sum()), np.int8))


def _pairs(edges: clu.Edges) -> set[tuple[int, int]]:
    """The ``(i, j)`` pairs of ``edges``, for membership tests."""
    return set(zip(edges.i.tolist(), edges.j.tolist(), strict=True))


def _without(parts: dict[str, clu.Edges], kind: str, pairs: clu.Edges) -> dict[str, clu.Edges]:
    """``parts`` with the edges of ``kind`` between ``pairs`` dropped: a colour proposal that fails the
    pixel check is no similar shot (colour alone says nothing of one scene; a stretched half of a photo
    would be one), only a hash, feature or embedding neighbour is."""
    if kind not in parts or not len(pairs) or not len(parts[kind]):
        return parts
    drop = _pairs(pairs)
    edges = parts[kind]
    keep = np.array([p not in drop for p in zip(edges.i.tolist(), edges.j.tolist(), strict=True)], dtype=bool)
    return parts | {kind: edges.where(keep)}


def colour_signatures(rows: Sequence, pixels) -> tuple[np.ndarray, np.ndarray]:
    """``(colours float32 [n, 64], layouts uint8 [n, 2, 24, 24])`` of the rows (``verify.signatures``;
    zeros: none)."""
    side = verify.LAYOUT_SIDE
    colours = np.zeros((len(rows), verify.SIGNATURE_BINS ** 3), np.float32)
    layouts = np.zeros((len(rows), 2, side, side), np.uint8)
    # one "pair" per file, so that many files are decoded in the verification's worker processes
    found = verify.map_pairs([(k, k) for k in range(len(rows))], pixels, _signatures_chunk, None)
    for k, one in enumerate(found):
        if one is not None:
            colours[k], layouts[k] = one
    return colours, layouts


def _signatures_chunk(job) -> list:
    """``verify.signatures`` of each ``(k, k)`` item of a ``map_pairs`` chunk."""
    items, pixels, _ = job
    return [verify.signatures(pixels.get(k)) for k, _ in items]


def proposed_edges(signatures: tuple[np.ndarray, np.ndarray], found: dict[str, clu.Edges],
                   params: GroupSettings) -> clu.Edges:
    """Pairs no other evidence proposed, among each file's ``propose_neighbours`` nearest colour signatures
    at ``propose_similarity`` or above whose layouts agree (``verify.layouts_agree``: the middle of one
    found in the other, a crop of up to ~20% a side): a one-corner crop moves the pHash 20-34 bits and
    local features miss it on smooth pictures; a flat frame's hash is noise. Only the pixel check decides
    them (they are proposed with the check on only); kind ``verified``, no inliers, distance 1 - similarity."""
    colours, layouts = signatures
    have = np.nonzero(colours.any(axis=1))[0]
    i, j, sim = clu.nearest_pairs(colours[have], params.propose_neighbours, params.propose_similarity)
    i, j = have[i], have[j]
    known = clu.combine(*found.values())
    seen = _pairs(known)
    new = np.array([p not in seen and verify.layouts_agree(layouts[p[0]], layouts[p[1]])
                    for p in zip(i.tolist(), j.tolist(), strict=True)], dtype=bool)
    if not new.any():
        return clu.Edges.empty()
    return clu.Edges.of(i[new], j[new], clu.VERIFIED, 1.0 - sim[new].astype(np.float64))


#: The closure checks the untried pairs of a set of files that confirmed duplicates connect only up to this
#: many files (a larger set is left to the pairs its evidence proposed: its untried pairs grow as its square).
CLOSURE_FILES = 12


def _closed(rows: Sequence, parts: dict[str, clu.Edges], checked: clu.Edges,
            signatures: tuple[np.ndarray, np.ndarray] | None, params: GroupSettings, pixels) -> dict[str, clu.Edges]:
    """One round of closure: complete link needs every pair of a group, and no evidence proposes some of
    them (a crop found beside its original against the original's mirrored or grayscale copy: other colours,
    another layout, another hash). Within each set of files that confirmed duplicates connect (at most
    ``CLOSURE_FILES``), every pair not yet checked goes through the pixel check as any other, turned as a
    path of confirmed pairs between them says (``hashing.compose``), and so does a pair refused as another
    variant (a homography on a turned copy's crop leaves slivers a turn of the pixels does not)."""
    duplicates = clu.combine(*[e for kind, e in parts.items() if kind != "similar" and len(e)])
    if not len(duplicates):
        return parts
    confirmations = duplicates.confirmation
    partners: dict[int, dict[int, int]] = {}   # a -> {p: the variant of a that looks like p}
    for n, (a, b) in enumerate(zip(duplicates.i.tolist(), duplicates.j.tolist(), strict=True)):
        check = confirmations[n]
        variant = int(check.variant if check is not None else duplicates.variant[n])
        partners.setdefault(a, {})[b] = variant
        partners.setdefault(b, {})[a] = hashing.INVERSE[variant]
    done = _pairs(duplicates)
    # a pair checked and refused as one variant (a homography found the turn itself, or a hash said another)
    # is checked again when a path of confirmed pairs says it is turned otherwise
    tried = dict(zip(zip(checked.i.tolist(), checked.j.tolist(), strict=True), checked.variant.tolist(), strict=True))
    more: dict[tuple[int, int], int] = {}
    for members in clu.cluster(len(rows), duplicates, np.arange(len(rows)), method="single"):
        if len(members) > CLOSURE_FILES:
            continue
        for a in members:
            turns = {a: 0}   # p -> the variant of a that looks like p, along the first path found
            queue = [a]
            for u in queue:
                for p, variant in partners[u].items():
                    if p not in turns:
                        turns[p] = hashing.compose(turns[u], variant)
                        queue.append(p)
            for p, variant in turns.items():
                if a < p and (a, p) not in done and tried.get((a, p)) != variant:
                    more[a, p] = variant
    if not more:
        return parts
    pairs = sorted(more)
    if signatures is not None:
        colours = signatures[0]
        sims = np.einsum("ij,ij->i", colours[[p[0] for p in pairs]], colours[[p[1] for p in pairs]])
        distance = 1.0 - np.clip(sims, 0, 1).astype(np.float64)
    else:
        distance = np.ones(len(pairs))
    extra = clu.Edges.of([p[0] for p in pairs], [p[1] for p in pairs], clu.VERIFIED, distance,
                         variant=[more[p] for p in pairs])
    found = _without(confirmed_by_pixels(rows, {"verified": extra}, params, pixels), "similar", extra)
    out = dict(parts)
    for kind, edges in found.items():
        out[kind] = clu.combine(out[kind], edges) if kind in out and len(out[kind]) else edges
    return out


def confirmed_by_pixels(rows: Sequence, parts: dict[str, clu.Edges], params: GroupSettings,
                        pixels) -> dict[str, clu.Edges]:
    """Every candidate pair but exact copies through the pixel check (``photodedup.confirm``): duplicates
    stay in their kind (with the check attached), pairs from one scene become ``similar`` edges, the
    rest go. A pair whose thumbnails cannot be read is dropped (never trashed unchecked)."""
    exact = parts.get("exact", clu.Edges.empty())
    same = _pairs(exact)
    others = [edges for kind, edges in parts.items() if kind != "exact" and len(edges)]
    if not others:
        return parts
    merged = clu.combine(*others)
    merged = merged.where(np.array([p not in same for p in zip(merged.i.tolist(), merged.j.tolist(), strict=True)],
                                   dtype=bool))
    pairs = list(zip(merged.i.tolist(), merged.j.tolist(), strict=True))
    checks = confirm.confirm_pairs(pairs, merged.variant.tolist(), pixels, params.pixel_check)
    checks = _in_detail(rows, pairs, merged.variant.tolist(), checks, params.pixel_check)
    verdict = {}
    for (a, b), check in zip(pairs, checks, strict=True):
        if check is not None:
            verdict[a, b] = (confirm.classify(check, _meta(rows[a]), _meta(rows[b])), check)
    out = {}
    for kind, edges in parts.items():
        if kind == "exact" or not len(edges):
            out[kind] = edges
            continue
        keys = list(zip(edges.i.tolist(), edges.j.tolist(), strict=True))
        found = [verdict.get(p, (None, None)) for p in keys]
        edges.confirmation = clu.objects([check for _, check in found])
        out[kind] = edges.where(np.array([v == confirm.DUPLICATE for v, _ in found], dtype=bool))
    similar = [(p, check) for p, (v, check) in verdict.items() if v == confirm.SIMILAR]
    out["similar"] = clu.Edges.of([p[0] for p, _ in similar], [p[1] for p, _ in similar], clu.SIMILAR,
                                  [c.share for _, c in similar], confirmation=[c for _, c in similar]) \
        if similar else clu.Edges.empty()
    return out


def _in_detail(rows: Sequence, pairs: list[tuple[int, int]], variants: list[int], checks: list,
               settings: confirm.ConfirmSettings) -> list:
    """Duplicates between camera-less files (screenshots, documents, exports: small text, where a changed
    word in a corner looks like a mark at 320 px) checked again on the files themselves at ``detail_side``
    pixels. A file that cannot be read keeps the thumbnail's verdict."""
    cache: dict[int, np.ndarray | None] = {}

    def pixels(k: int) -> np.ndarray | None:
        if k not in cache:
            cache[k] = _file_pixels(rows[k], settings.detail_side)
        return cache[k]

    out = list(checks)
    for n, ((a, b), _variant, check) in enumerate(zip(pairs, variants, checks, strict=True)):
        if check is None or check.verdict != confirm.DUPLICATE or _meta(rows[a])["camera"] or _meta(rows[b])["camera"]:
            continue  # camera photos hold no small text to miss
        pa, pb = pixels(a), pixels(b)
        if check.mark and pa is not None and pb is not None and confirm.photo_like(pa) and confirm.photo_like(pb):
            continue  # a watermark on a photo: the thumbnails judged it (full resolution adds only noise)
        if pa is not None and pb is not None:
            again = confirm.confirm(pa, pb, variant=check.variant, settings=confirm.detailed(settings))
            if again.verdict != confirm.DUPLICATE:
                out[n] = again
    return out


def _file_pixels(row, side: int) -> np.ndarray | None:
    """The file's content (EXIF-oriented, borders cut) at most ``side`` pixels on the long side; None when it
    cannot be read (moved, changed, a RAW)."""
    from PIL import Image

    from photodedup.preprocess import load_oriented

    try:
        image = load_oriented(row["path"], shortest=side)
    except Exception:  # noqa: BLE001 - an unreadable file keeps the thumbnail's verdict
        return None
    box = verify.content_box(row, image.width, image.height)
    if box:
        image = image.crop(box)
    image.thumbnail((side, side), Image.Resampling.LANCZOS)
    return np.asarray(image.convert("RGB"))


def _meta(row) -> dict:
    keys = row.keys()
    return {name: row[name] if name in keys else None for name in ("camera", "taken_at")}


def _variant_hashes(rows: Sequence) -> np.ndarray:
    """``uint64 [n, 8]``: the stored dihedral pHashes (rows scanned before them: the pHash 8 times)."""
    out = np.empty((len(rows), 8), dtype=np.uint64)
    for k, row in enumerate(rows):
        stored = hashing.unpack(row["phashes"]) if "phashes" in row.keys() else None
        out[k] = stored if stored is not None and len(stored) == 8 else clu.to_uint64([row["phash"]] * 8)
    return out


def confirmed(perceptual: clu.Edges, params: GroupSettings, pixels) -> clu.Edges:
    """Perceptual pairs without those in the upper band (as is, more than ``confirm_above`` bits) that
    local features refute: enough features on both sides and no geometry that explains them. A shared
    watermark or a similar layout moves two different photos' hashes this close."""
    band = np.nonzero((perceptual.variant == 0) & (perceptual.distance > params.confirm_above))[0]
    pairs = list(zip(perceptual.i[band].tolist(), perceptual.j[band].tolist(), strict=True))
    verdicts = verify.verify_pairs(pairs, pixels, params.verify)
    keep = np.ones(len(perceptual), dtype=bool)
    keep[band] = [v is None or not v.refutes for v in verdicts]
    return perceptual.where(keep)


def verified_edges(index: np.ndarray, hashes: np.ndarray, dhashes: np.ndarray, found: dict[str, clu.Edges],
                   params: GroupSettings, pixels) -> clu.Edges:
    """Pairs beyond the hash threshold that local features confirm (``photodedup.verify``).

    Candidates: each file's ``verify_neighbours`` nearest files by pHash + dHash distance, among those
    within ``verify_radius`` pHash bits (less in large libraries: ``cluster.bounded_radius`` keeps the
    search's output O(n)) and ``verify_dhash`` dHash bits (a second, independent hash: crops and
    overlays keep it close, chance neighbours do not; it removes most of the ORB work). Then one
    round of closure: two files with a common partner (any evidence) but no edge of their own are
    checked too (complete link needs every pair), mirrored when the plain check fails (one of them may
    be a mirrored copy).
    """
    radius = clu.bounded_radius(len(hashes), params.verify_radius)
    ci, cj, _ = clu.near_pairs(hashes, params.hash_threshold, radius, params.verify_neighbours,
                               second=dhashes, second_max=params.verify_dhash)
    known = clu.combine(*found.values())
    have = _pairs(known)
    candidates = sorted({p for p in zip(index[ci].tolist(), index[cj].tolist(), strict=True)} - have)
    accepted = _verify(candidates, pixels, params.verify)
    partners: dict[int, set[int]] = {}
    for a, b in have | set(accepted):
        partners.setdefault(a, set()).add(b)
        partners.setdefault(b, set()).add(a)
    more = {(min(a, c), max(a, c)) for b, near in partners.items() for a in near for c in near if a != c}
    more -= have | set(candidates)
    accepted |= _verify(sorted(more), pixels, params.verify, mirrored=True)
    if not accepted:
        return clu.Edges.empty()
    pairs = sorted(accepted)
    verdicts = [accepted[p] for p in pairs]
    return clu.Edges.of([p[0] for p in pairs], [p[1] for p in pairs], clu.VERIFIED,
                        [1.0 - v.coverage for v in verdicts], inliers=[v.inliers for v in verdicts],
                        coverage=[v.coverage for v in verdicts])


def quality_source(rows: Sequence, thumbs: Callable[[int], bytes | None]) -> Callable[[int], dict | None]:
    def quality(k: int) -> dict | None:
        jpeg = thumbs(rows[k]["id"])
        rgb = None if jpeg is None else verify.Thumbnail.of(jpeg, rows[k]).rgb()
        return None if rgb is None else confirm.shot_quality(rgb)
    return quality


def _pixel_source(rows: Sequence, thumbs: Callable[[int], bytes | None]) -> Callable[[int], verify.Thumbnail | None]:
    def pixels(k: int) -> verify.Thumbnail | None:
        jpeg = thumbs(rows[k]["id"])
        return None if jpeg is None else verify.Thumbnail.of(jpeg, rows[k])
    return pixels


def _verify(pairs: list[tuple[int, int]], pixels, params: verify.VerifySettings, *,
            mirrored: bool = False) -> dict[tuple[int, int], verify.Verdict]:
    verdicts = verify.verify_pairs(pairs, pixels, params, mirrored=mirrored)
    return {p: v for p, v in zip(pairs, verdicts, strict=True) if v is not None and v.accepted}


def build_groups(rows: Sequence, edges: clu.Edges, params: GroupSettings | None = None,
                 pairs: dict[int, int] | Sequence[tuple[int, int]] | None = None,
                 names: dict[int, list[str]] | None = None,
                 quality: Callable[[int], dict | None] | None = None) -> list[Group]:
    """Cluster, then name each group's keeper and each member's evidence (ids are 1, 2, ...).

    ``pairs`` (RAW file id -> JPEG/HEIC file id, or ``(lead, companion)`` tuples: a Live Photo's still
    and its video too): each pair is one item, the lead with its companion, so a pair is never a group
    by itself and never split.

    Duplicate groups come from every edge but ``similar`` ones; similar groups (category ``similar``)
    from those, between single files and duplicate groups' keepers. ``quality(row index)`` gives a
    picture's sharpness and clipping (``confirm.shot_quality``) for a similar group's best-shot hint.
    """
    params = params or GroupSettings()
    edges, companions = _shots(rows, edges, pairs or {})
    similar = edges.where(edges.kind == clu.SIMILAR)
    edges = edges.where(edges.kind != clu.SIMILAR)
    keys = np.array([row["id"] for row in rows], dtype=np.int64)
    clusters = clu.cluster(len(rows), edges, keys, method=params.method)
    label = np.full(len(rows), -1, dtype=np.int64)
    for number, members in enumerate(clusters):
        label[members] = number
    inside = (label[edges.i] >= 0) & (label[edges.i] == label[edges.j])
    best: dict[tuple[int, int], tuple[int, float, int]] = {}  # (rank, distance, edge number)
    for number in np.nonzero(inside)[0].tolist():
        a, b = int(edges.i[number]), int(edges.j[number])
        best[(a, b)] = best[(b, a)] = (int(edges.kind[number]), float(edges.distance[number]), number)
    marks = _marks(edges, inside, rows)
    groups = []
    for members in clusters:
        out = [(k, Member.from_row(rows[k], evidence="", score=0.0, other_names=(names or {}).get(rows[k]["id"], [])))
               for k in members]
        for k, m in out:
            m.companions = [Member.from_row(rows[c], evidence=_companion_evidence(rows[c]), score=1.0)
                            for c in companions.get(k, ())]
            m.added_mark = marks.get(k)
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
                pair = (k, keeper_index) if (k, keeper_index) in best else min(
                    ((k, o) for o in members if (k, o) in best), key=best.__getitem__)
                rank, dist, number = best[pair]
                m.evidence, m.score = clu.KIND_NAMES[rank], round(_score(rank, dist), 6)
                m.match = describe(edges, number, towards=pair[0], other=rows[pair[1]]["path"],
                                   is_keeper=pair[1] == keeper_index)
        for _, m in out:
            if m.added_mark:  # stored with what joined it (the keeper rule reads it back)
                m.match["added_mark"] = m.added_mark
        ordered = sorted((m for _, m in out), key=lambda m: (m.evidence != "keeper", m.path))
        kinds = {m.evidence for m in ordered if m.evidence != "keeper"}
        groups.append(Group(0, kinds.pop() if len(kinds) == 1 else "mixed", choice.keeper, choice.reason, ordered))
    keepers = {next(k for k in members if rows[k]["id"] == g.keeper): members for g, members in zip(groups, clusters,
                                                                                                     strict=True)}
    groups += _similar_groups(rows, similar, keepers, companions, params, quality)
    groups.sort(key=lambda g: (g.category != "duplicate", g.keeper_path))
    for number, g in enumerate(groups, 1):
        g.id = number
    return groups


def _marks(edges: clu.Edges, inside: np.ndarray, rows: Sequence) -> dict[int, str]:
    """Row index -> the added mark (watermark, logo) the pixel check found on it against a group mate."""
    out = {}
    for number in np.nonzero(inside)[0].tolist():
        check = edges.confirmation[number]
        if check is not None and check.mark and difference.legible_mark(check.box, check.share):
            a, b = int(edges.i[number]), int(edges.j[number])
            marked, other = (a, b) if check.mark == "a" else (b, a)
            out[marked] = (f"an added mark (watermark or logo) {confirm.where(check.box)}, "
                           f"{confirm.percent(check.share)} of the picture, that "
                           f"{Path(rows[other]['path']).name} lacks")
    return out


def _similar_groups(rows: Sequence, edges: clu.Edges, keepers: dict[int, list[int]],
                    companions: dict[int, list[int]], params: GroupSettings,
                    quality: Callable[[int], dict | None] | None) -> list[Group]:
    """Groups of similar shots (one scene, other captures): a duplicate group takes part through its
    keeper. The suggested "keeper" is a hint (the best shot); nothing is suggested for the trash."""
    if not len(edges):
        return []
    lead = np.arange(len(rows), dtype=np.int64)
    for keeper_index, members in keepers.items():
        lead[members] = keeper_index
    edges = clu.combine(edges.moved(lead[edges.i], lead[edges.j]))
    keys = np.array([row["id"] for row in rows], dtype=np.int64)
    out = []
    for members in clu.cluster(len(rows), edges, keys, method=params.method):
        scores = {k: (quality(k) if quality else None) for k in members}
        best, reason, notes = confirm.best_shot(scores)
        group_members = []
        for k in members:
            m = Member.from_row(rows[k], evidence="keeper" if k == best else "similar", score=1.0)
            m.companions = [Member.from_row(rows[c], evidence=_companion_evidence(rows[c]), score=1.0)
                            for c in companions.get(k, ())]
            m.keeper, m.note = k == best, notes.get(k, "")
            if k != best:
                number = _edge_between(edges, k, best) if _edge_between(edges, k, best) is not None else next(
                    n for n in range(len(edges)) if k in (int(edges.i[n]), int(edges.j[n])))
                check = edges.confirmation[number]
                m.score = round(1.0 - float(edges.distance[number]), 6)
                words = f"another capture of the same scene: {check.reason}" if check else "another capture"
                m.match = {"kind": "similar", "how": words}
            group_members.append(m)
        group_members.sort(key=lambda m: (not m.keeper, m.path))
        out.append(Group(0, "similar", rows[best]["id"], reason, group_members, category="similar"))
    return out


def _edge_between(edges: clu.Edges, a: int, b: int) -> int | None:
    lo, hi = min(a, b), max(a, b)
    hit = np.nonzero((edges.i == lo) & (edges.j == hi))[0]
    return int(hit[0]) if len(hit) else None


def shots(cat: Catalog, every: Sequence, rows: Sequence, names: dict[int, list[str]]) -> list[tuple[int, int]]:
    """The shots that travel as one item (``build_groups``'s ``pairs``): RAW+JPEG pairs and Live Photos, by the
    file ids of ``rows`` (``one_per_file`` of ``every``)."""
    out = [*cat.raw_pairs().items(), *((lead, f) for f, lead, kind in cat.companions() if kind == "live")]
    if names:  # a lead named by another of its paths (a hard link first by path): its row stands for it
        kept = {(r["dev"], r["ino"]): r["id"] for r in rows}
        same = {r["id"]: kept.get((r["dev"], r["ino"]), r["id"]) for r in every}
        out = [(same.get(lead, lead), same.get(other, other)) for lead, other in out]
    return out


def _shots(rows: Sequence, edges: clu.Edges, pairs) -> tuple[clu.Edges, dict[int, list[int]]]:
    """Edges between shots: a pair's JPEG hands its edges to its RAW (the pair's own edge goes).

    Returns those edges and, by the RAW's row index, the row indices of its companions.
    """
    index = {row["id"]: k for k, row in enumerate(rows)}
    lead = np.arange(len(rows), dtype=np.int64)
    companions: dict[int, list[int]] = {}
    for raw_id, other_id in pairs.items() if isinstance(pairs, dict) else pairs:
        if raw_id in index and other_id in index:
            lead[index[other_id]] = index[raw_id]
            companions.setdefault(index[raw_id], []).append(index[other_id])
    if not companions:
        return edges, {}
    return clu.combine(edges.moved(lead[edges.i], lead[edges.j])), companions


def _companion_evidence(row) -> str:
    """``pair`` for a RAW+JPEG pair's other half, ``live`` for a Live Photo's video."""
    return "live" if "kind" in row.keys() and row["kind"] == "video" else "pair"


def _score(rank: int, distance: float) -> float:
    """1.0 exact, 1 - bits/64 perceptual, covered share verified, cosine semantic."""
    return 1.0 if rank == clu.EXACT else 1.0 - distance / 64 if rank == clu.PERCEPTUAL else 1.0 - distance


def describe(edges: clu.Edges, number: int, *, towards: int, other: str, is_keeper: bool) -> dict:
    """What joined edge ``number``'s item ``towards`` to its partner, as data and in words (``how``)."""
    rank, dist = int(edges.kind[number]), float(edges.distance[number])
    match: dict = {"kind": clu.KIND_NAMES[rank]}
    if rank == clu.EXACT:
        words = "exact copy (same bytes)"
    elif rank == clu.PERCEPTUAL:
        variant = int(edges.variant[number])
        if variant and int(edges.i[number]) == towards:  # the variant maps item i onto item j: turn it round
            variant = hashing.INVERSE[variant]
        name = hashing.variant_name(variant)
        match |= {"bits": int(dist), "variant": name or "as is"}
        words = f"perceptual{', ' + name if name else ''} ({int(dist)} of 64 pHash bits differ)"
    elif rank == clu.VERIFIED and not int(edges.inliers[number]):
        match |= {"inliers": 0, "coverage": 0.0, "colour": round(1.0 - dist, 4)}
        words = f"verified by the pixels alone (proposed by colour: signatures {1.0 - dist:.0%} alike)"
    elif rank == clu.VERIFIED:
        match |= {"inliers": int(edges.inliers[number]), "coverage": round(float(edges.coverage[number]), 4)}
        words = (f"verified: {match['inliers']} matching ORB features, the match covers "
                 f"{match['coverage']:.0%} of the smaller picture")
    else:
        match["cosine"] = round(1.0 - dist, 6)
        words = f"semantic (embedding cosine {1.0 - dist:.3f})"
    check = edges.confirmation[number]
    if check is not None:
        match["pixels"] = {key: value for key, value in check.as_dict().items() if key in ("verdict", "reason", "box",
                                                                                           "share", "how")}
        words += f"; pixels: {check.reason}"
    match["how"] = words + ("" if is_keeper else f" to {Path(other).name}")
    return match
