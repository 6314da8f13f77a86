"""Candidate pairs and clustering: the scalable core of ``photodedup group``, arrays in, arrays out.

Three kinds of evidence become one list of edges ``(i, j, kind, distance)`` over item indices:

- exact: equal MD5 (kind 0, distance 0);
- perceptual: Hamming distance of 64-bit hashes <= t (kind 1, distance = bits), found by brute force
  (numpy blocks, or faiss's binary index: ``hamming_cross``) over every dihedral variant
  (``dihedral_pairs``), plus bounded nearest candidates for verification (``near_pairs``);
- semantic: cosine >= t (kind 2, distance = 1 - cosine), found by an exact blocked matrix product
  for small inputs and a faiss IVF index (then rescored exactly) above ``EXACT_MAX``.

Clustering processes edges in one fixed order, ``(kind, distance, key_i, key_j)``, where ``keys`` are
stable item identities (file ids), so the result does not depend on the input order. The default,
complete link, joins two clusters only when every cross pair is an edge: no chaining, every member is
within the threshold of every other. Single link (connected components) is the option.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from itertools import combinations

import numpy as np

log = logging.getLogger(__name__)



@dataclass(frozen=True)
class Kind:
    """One kind of evidence: its name, its rank (lower is stronger; an edge's ``kind`` is the rank), what
    it means, and the category of group it makes (``duplicate``, or ``similar``: one scene, different
    captures, never trashed by bulk accept). The one registry that group, groups, the review page,
    the report and parquet read."""

    name: str
    rank: int
    description: str
    category: str = "duplicate"


KINDS: tuple[Kind, ...] = (
    Kind("exact", 0, "the same bytes (md5)"),
    Kind("perceptual", 1, "perceptual hashes within the threshold, confirmed by the pixels"),
    Kind("verified", 2, "local features agree on a crop or overlay, confirmed by the pixels"),
    Kind("semantic", 3, "image embeddings within the cosine threshold, confirmed by the pixels"),
    Kind("similar", 4, "one scene, another capture (burst, bracket, retake): not a duplicate", "similar"),
)
EXACT, PERCEPTUAL, VERIFIED, SEMANTIC, SIMILAR = (k.rank for k in KINDS)
KIND_NAMES = tuple(k.name for k in KINDS)
METHODS = ("complete", "single")
#: The grouping defaults, here (a light module) so that the CLI shows and passes the library's own.
DEFAULT_METHOD = "complete"
#: pHash bits that may differ. Measured on the sample library (docs/BENCHMARKS.md "Grouping quality"):
#: re-encodes, resizes, format conversions, EXIF rotations and brightening differ by <= 4 bits,
#: burst neighbours by <= 6, crops by 10-18, unrelated photos by >= 20.
DEFAULT_HASH_THRESHOLD = 12
#: Immich's near-duplicate default for ViT-B-32 (cosine distance 0.01). Not calibrated here: this
#: machine has no pretrained weights (see docs/DECISIONS.md "Grouping").
DEFAULT_COSINE = 0.99

#: Above this many vectors the semantic search uses faiss instead of the exact blocked product
#: (measured: benchmarks/group_scale.py, docs/BENCHMARKS.md "Grouping at scale").
EXACT_MAX = 10_000
#: Above this many hashes the Hamming searches use faiss's binary flat index (when installed).
BRUTE_MAX = 4096
#: Floats per block of the exact product (128 MiB of similarities at a time).
BLOCK_FLOATS = 32 * 1024 * 1024

_M1, _M2, _M4 = np.uint64(0x5555555555555555), np.uint64(0x3333333333333333), np.uint64(0x0F0F0F0F0F0F0F0F)
_H01 = np.uint64(0x0101010101010101)


@dataclass
class Edges:
    """Candidate pairs over item indices, ``i < j``; ``kind`` is the evidence kind (``KIND_NAMES``, strongest first).

    What joined a pair, beyond its kind and distance: ``variant`` (perceptual: the dihedral variant of
    item ``i`` that looks like item ``j``, ``photodedup.hashing.VARIANTS``; 0 = as is), ``bits`` (the
    pHash bits that differ, for every kind that has them), and for verified pairs ``inliers`` (local
    feature matches the geometry agrees on) and ``coverage`` (share of the smaller image the match covers).
    """

    i: np.ndarray
    j: np.ndarray
    kind: np.ndarray
    distance: np.ndarray
    variant: np.ndarray | None = None
    inliers: np.ndarray | None = None
    coverage: np.ndarray | None = None
    #: The pixel check of each pair (``photodedup.confirm.Confirmation``; None: not checked), objects.
    confirmation: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.i)
        if self.confirmation is None:
            self.confirmation = np.full(n, None, dtype=object)
        if self.variant is None:
            self.variant = np.zeros(n, np.int8)
        if self.inliers is None:
            self.inliers = np.zeros(n, np.int32)
        if self.coverage is None:
            self.coverage = np.zeros(n, np.float32)

    @classmethod
    def empty(cls) -> Edges:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8), np.zeros(0, np.float64))

    @classmethod
    def of(cls, i, j, kind: int, distance, *, variant=None, inliers=None, coverage=None, confirmation=None) -> Edges:
        """Edges from index pairs in any order; a variant is turned around when its pair is."""
        i, j = np.asarray(i, np.int64), np.asarray(j, np.int64)
        lo, hi = np.minimum(i, j), np.maximum(i, j)
        if variant is not None:
            from photodedup.hashing import INVERSE

            variant = np.asarray(variant, np.int8)
            variant = np.where(i <= j, variant, np.asarray(INVERSE, np.int8)[variant]).astype(np.int8)
        return cls(lo, hi, np.full(len(lo), kind, np.int8), np.asarray(distance, np.float64).reshape(-1),
                   variant, None if inliers is None else np.asarray(inliers, np.int32),
                   None if coverage is None else np.asarray(coverage, np.float32),
                   None if confirmation is None else objects(confirmation))

    def __len__(self) -> int:
        return len(self.i)

    def moved(self, i: np.ndarray, j: np.ndarray) -> Edges:
        """The same evidence between new endpoints (self-loops dropped, variants turned round on a swap)."""
        from photodedup.hashing import INVERSE

        keep = i != j
        variant = np.where(i <= j, self.variant, np.asarray(INVERSE, np.int8)[self.variant]).astype(np.int8)
        return Edges(np.minimum(i, j)[keep], np.maximum(i, j)[keep], self.kind[keep], self.distance[keep],
                     variant[keep], self.inliers[keep], self.coverage[keep], self.confirmation[keep])

    def where(self, keep: np.ndarray) -> Edges:
        return Edges(self.i[keep], self.j[keep], self.kind[keep], self.distance[keep], self.variant[keep],
                     self.inliers[keep], self.coverage[keep], self.confirmation[keep])


def objects(values) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def to_uint64(values) -> np.ndarray:
    """Hashes stored as signed int64 (the catalog's form) as uint64, bit for bit."""
    return np.asarray(values, dtype=np.int64).view(np.uint64)


def popcount64(x: np.ndarray) -> np.ndarray:
    """Bits set in each uint64 (numpy < 2 has no ``bitwise_count``): the SWAR popcount."""
    x = np.asarray(x, dtype=np.uint64)
    x = x - ((x >> np.uint64(1)) & _M1)
    x = (x & _M2) + ((x >> np.uint64(2)) & _M2)
    x = (x + (x >> np.uint64(4))) & _M4
    return ((x * _H01) >> np.uint64(56)).astype(np.int64)


# -- candidate pairs -------------------------------------------------------------------------------
def exact_pairs(digests) -> Edges:
    """Every pair of items with the same digest (None / empty never match)."""
    classes: dict[str, list[int]] = {}
    for index, digest in enumerate(digests):
        if digest:
            classes.setdefault(digest, []).append(index)
    pairs = [p for members in classes.values() if len(members) > 1 for p in combinations(members, 2)]
    if not pairs:
        return Edges.empty()
    arr = np.asarray(pairs, dtype=np.int64)
    return Edges.of(arr[:, 0], arr[:, 1], EXACT, np.zeros(len(arr)))


def hamming_cross(queries: np.ndarray, base: np.ndarray, radius: int, *,
                  brute_max: int = BRUTE_MAX) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every ``(query index, base index, bits)`` with at most ``radius`` differing bits (uint64 hashes).

    Brute force either way: numpy in blocks for small inputs, faiss's binary flat index (popcount in
    C++, ~10x faster) above ``brute_max**2 / 16`` comparisons when faiss is installed. Its cost does not depend on
    the radius, unlike multi-index hashing (tried first: its probes grow as C(16, radius/4), and at the
    group thresholds it was the slower of the two).
    """
    queries, base = np.ascontiguousarray(queries, np.uint64), np.ascontiguousarray(base, np.uint64)
    empty = (np.zeros(0, np.int64),) * 3
    if not len(queries) or not len(base) or radius < 0:
        return empty
    if len(queries) * len(base) > brute_max * brute_max // 16:
        try:
            import faiss
        except ImportError:  # pragma: no cover - faiss is in the group extra
            faiss = None
        if faiss is not None:
            index = faiss.IndexBinaryFlat(64)
            index.add(base.view(np.uint8).reshape(-1, 8))
            out_q, out_b, out_d = [], [], []
            for start in range(0, len(queries), 50_000):
                chunk = queries[start:start + 50_000].view(np.uint8).reshape(-1, 8)
                lims, dist, labels = index.range_search(chunk, radius + 1)  # strict: bits < radius + 1
                out_q.append(np.repeat(np.arange(start, start + len(chunk), dtype=np.int64),
                                       np.diff(lims).astype(np.int64)))
                out_b.append(labels.astype(np.int64))
                out_d.append(dist.astype(np.int64))
            return np.concatenate(out_q), np.concatenate(out_b), np.concatenate(out_d)
    out_q, out_b, out_d = [], [], []
    step = max(1, (1 << 22) // len(base))
    for start in range(0, len(queries), step):
        rows = np.arange(start, min(len(queries), start + step))
        dist = popcount64(queries[rows, None] ^ base[None, :])
        qq, bb = np.nonzero(dist <= radius)
        out_q.append(rows[qq])
        out_b.append(bb)
        out_d.append(dist[qq, bb])
    return np.concatenate(out_q), np.concatenate(out_b), np.concatenate(out_d)


def dihedral_pairs(variants: np.ndarray, threshold: int, turned: int | None = None, *,
                   brute_max: int = BRUTE_MAX) -> Edges:
    """Perceptual pairs over items with 8 dihedral hashes each (``uint64 [n, 8]``, column 0 = as is).

    A pair is within ``threshold`` bits as is, or within ``turned`` bits (default: ``threshold``;
    negative: never) after turning/mirroring one of them: hash ``v`` of item i against hash 0 of item
    j. Each pair keeps its closest variant (as is on a tie); ``Edges.variant`` says which. Variant 5
    (turned 270) is never searched: it finds the pairs of variant 4 the other way round.
    """
    variants = np.asarray(variants, np.uint64).reshape(-1, 8)
    n = len(variants)
    if n < 2 or threshold < 0:
        return Edges.empty()
    turned = threshold if turned is None else turned
    parts = []
    for v in (0, 1, 2, 3, 4, 6, 7) if turned >= 0 else (0,):
        radius = threshold if v == 0 else turned
        qi, bj, dist = hamming_cross(variants[:, v], variants[:, 0], radius, brute_max=brute_max)
        keep = qi != bj if v else qi < bj
        parts.append(Edges.of(qi[keep], bj[keep], PERCEPTUAL, dist[keep], variant=np.full(int(keep.sum()), v)))
    return combine(*parts)


def near_pairs(hashes: np.ndarray, low: int, high: int, k: int, *, second: np.ndarray | None = None,
               second_max: int = 64, brute_max: int = BRUTE_MAX) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Candidate pairs beyond the strict threshold: ``low < bits <= high``, each item's ``k`` nearest.

    With ``second`` (another 64-bit hash per item), pairs must also be within ``second_max`` bits of it,
    and "nearest" ranks by the sum of both distances (two independent hashes rank a crop above a chance
    neighbour far better than one). Bounded: at most ``k`` pairs per item whatever the library holds.
    Returns ``(i, j, bits)`` with ``i < j``.
    """
    hashes = np.asarray(hashes, np.uint64)
    n = len(hashes)
    if n < 2 or k < 1 or high <= low:
        return (np.zeros(0, np.int64),) * 3
    second = None if second is None else np.asarray(second, np.uint64)
    codes, bits = [], []
    # Queries in chunks, each reduced to its k best at once: memory stays O(chunk + n k). Every pair is
    # seen from both of its items, so "among the k best of either item" needs nothing more.
    for start in range(0, n, 8192):
        qi, bj, dist = hamming_cross(hashes[start:start + 8192], hashes, high, brute_max=brute_max)
        qi = qi + start
        keep = (qi != bj) & (dist > low)
        qi, bj, dist = qi[keep], bj[keep], dist[keep]
        rank = dist.copy()
        if second is not None:
            other = popcount64(second[qi] ^ second[bj])
            keep = other <= second_max
            qi, bj, dist, rank = qi[keep], bj[keep], dist[keep], dist[keep] + other[keep]
        order = np.lexsort((bj, rank, qi))
        qi, bj, dist = qi[order], bj[order], dist[order]
        best = (np.arange(len(qi)) - np.searchsorted(qi, qi, "left")) < k
        lo, hi = np.minimum(qi[best], bj[best]), np.maximum(qi[best], bj[best])
        codes.append(lo * n + hi)
        bits.append(dist[best])
    if not codes:
        return (np.zeros(0, np.int64),) * 3
    codes, first = np.unique(np.concatenate(codes), return_index=True)
    return codes // n, codes % n, np.concatenate(bits)[first]


def bounded_radius(n: int, radius: int, per_item: int = 200) -> int:
    """The largest radius <= ``radius`` at which random 64-bit hashes of ``n`` items give at most
    ``per_item`` pairs per item on average: the range search's output stays O(n) as libraries grow."""
    total = 0.0
    for r in range(65):
        total += math.comb(64, r) / 2.0**64
        if r > radius or total * (n - 1) / 2 > per_item:
            return max(0, r - 1)
    return radius


def nearest_pairs(vectors: np.ndarray, k: int, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's ``k`` nearest other rows by inner product, those at ``threshold`` or above, among
    L2-normalised rows: ``(i, j, similarity)`` with ``i < j``, each pair once. Bounded: at most ``k``
    pairs per row whatever the rows hold (a library of screenshots that all look alike included).
    Exact (blocked product) up to ``EXACT_MAX`` rows, a faiss IVF index above (a candidate search: a
    pair it misses stays unproposed, as a hash neighbour beyond the radius does)."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(vectors)
    if n < 2 or k < 1:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    k = min(k, n - 1)
    if n <= EXACT_MAX:
        step = max(1, BLOCK_FLOATS // n)
        found = []
        for start in range(0, n, step):
            sims = vectors[start:start + step] @ vectors.T
            sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf  # not itself
            found.append(np.argpartition(-sims, k - 1, axis=1)[:, :k])
        labels = np.concatenate(found)
    else:
        import faiss

        nlist = max(1, min(n // 40, int(2 * np.sqrt(n))))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(vectors.shape[1]), vectors.shape[1], nlist,
                                   faiss.METRIC_INNER_PRODUCT)
        index.cp.niter = 10
        rng = np.random.default_rng(0)
        index.train(vectors[np.sort(rng.choice(n, size=min(n, 40 * nlist), replace=False))])
        index.add(vectors)
        index.nprobe = min(4, nlist)
        labels = np.concatenate([index.search(vectors[s:s + 20_000], k + 1)[1] for s in range(0, n, 20_000)])
    rows = np.repeat(np.arange(n, dtype=np.int64), labels.shape[1])
    labels = labels.reshape(-1).astype(np.int64)
    keep = (labels >= 0) & (labels != rows)
    lo, hi = np.minimum(rows[keep], labels[keep]), np.maximum(rows[keep], labels[keep])
    codes = np.unique(lo * n + hi)
    i, j = codes // n, codes % n
    sim = _rowwise_dot(vectors, i, j)
    keep = sim >= threshold
    return i[keep], j[keep], sim[keep]


def cosine_pairs(vectors: np.ndarray, threshold: float, *, method: str = "auto", nprobe: int = 4) -> Edges:
    """All pairs with cosine similarity >= ``threshold`` among L2-normalised rows.

    ``method``: ``exact`` (blocked matrix product, memory bounded by ``BLOCK_FLOATS``), ``faiss``
    (IVF index, candidates rescored exactly) or ``auto`` (exact up to ``EXACT_MAX`` rows).
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n = len(vectors)
    if n < 2:
        return Edges.empty()
    if method == "auto":
        method = "exact" if n <= EXACT_MAX else "faiss"
    if method == "exact":
        i, j = _cosine_exact(vectors, threshold)
    elif method == "faiss":
        i, j = _cosine_faiss(vectors, threshold, nprobe=nprobe)
    else:
        raise ValueError(f"unknown search method {method!r}")
    cos = _rowwise_dot(vectors, i, j)
    keep = cos >= threshold
    return Edges.of(i[keep], j[keep], SEMANTIC, 1.0 - cos[keep].astype(np.float64))


def _rowwise_dot(vectors: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Cosine of each pair, computed the same way whichever search found it (stable distances)."""
    out = np.empty(len(i), dtype=np.float32)
    for start in range(0, len(i), 65536):
        sl = slice(start, start + 65536)
        out[sl] = np.einsum("ij,ij->i", vectors[i[sl]], vectors[j[sl]])
    return out


def _cosine_exact(vectors: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    n = len(vectors)
    step = max(1, BLOCK_FLOATS // n)
    out_i, out_j = [], []
    slack = 1e-5  # keep borderline pairs; _rowwise_dot decides
    for start in range(0, n, step):
        stop = min(n, start + step)
        sims = vectors[start:stop] @ vectors[start:].T
        ii, jj = np.nonzero(sims >= threshold - slack)
        jj = jj + start
        keep = jj > ii + start
        out_i.append(ii[keep] + start)
        out_j.append(jj[keep])
    return np.concatenate(out_i).astype(np.int64), np.concatenate(out_j).astype(np.int64)


def _cosine_faiss(vectors: np.ndarray, threshold: float, *, nprobe: int) -> tuple[np.ndarray, np.ndarray]:
    import faiss

    n, dim = vectors.shape
    # IVF with 8-bit codes (a quarter of the memory of the vectors): 2*sqrt(n) lists, 10 k-means
    # iterations on 40 points a list, 4 lists probed: recall 0.9997 of planted pairs at 100k (measured).
    nlist = max(1, min(n // 40, int(2 * np.sqrt(n))))
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit,
                                          faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = 10
    rng = np.random.default_rng(0)
    sample = vectors[np.sort(rng.choice(n, size=min(n, 40 * nlist), replace=False))]
    index.train(sample)
    for start in range(0, n, 100_000):
        index.add(vectors[start:start + 100_000])
    index.nprobe = min(nprobe, nlist)
    radius = threshold - 0.01  # 8-bit codes err by ~1e-3; rescored exactly afterwards
    codes = []
    for start in range(0, n, 20_000):
        lims, _, labels = index.range_search(vectors[start:start + 20_000], radius)
        qi = np.repeat(np.arange(start, start + len(lims) - 1, dtype=np.int64), np.diff(lims).astype(np.int64))
        qj = labels.astype(np.int64)
        lo, hi = np.minimum(qi, qj), np.maximum(qi, qj)
        keep = lo < hi
        codes.append(np.unique(lo[keep] * n + hi[keep]))
    index.reset()
    codes = np.unique(np.concatenate(codes)) if codes else np.zeros(0, np.int64)
    return codes // n, codes % n


def combine(*parts: Edges) -> Edges:
    """One edge per pair: the strongest evidence (lowest rank, then lowest distance)."""
    parts = [p for p in parts if len(p)]
    if not parts:
        return Edges.empty()
    i = np.concatenate([p.i for p in parts])
    j = np.concatenate([p.j for p in parts])
    rank = np.concatenate([p.kind for p in parts])
    dist = np.concatenate([p.distance for p in parts])
    variant = np.concatenate([p.variant for p in parts])
    order = np.lexsort((variant, dist, rank, j, i))
    first = np.ones(len(i), dtype=bool)
    first[1:] = (i[order][1:] != i[order][:-1]) | (j[order][1:] != j[order][:-1])
    pick = order[first]
    return Edges(i[pick], j[pick], rank[pick], dist[pick], variant[pick],
                 np.concatenate([p.inliers for p in parts])[pick], np.concatenate([p.coverage for p in parts])[pick],
                 np.concatenate([p.confirmation for p in parts])[pick])


# -- clustering ------------------------------------------------------------------------------------
def cluster(n: int, edges: Edges, keys, *, method: str = "complete") -> list[list[int]]:
    """Partition items ``0..n-1`` into groups of two or more (singletons are left out).

    ``keys`` (one comparable value per item, e.g. the file id) break ties, so the result depends on
    the items and edges, never on their order. Groups are returned sorted, each sorted by key.
    """
    if method not in METHODS:
        raise ValueError(f"unknown clustering method {method!r}")
    keys = np.asarray(keys)
    ki, kj = keys[edges.i], keys[edges.j]
    lo, hi = np.minimum(ki, kj), np.maximum(ki, kj)
    order = np.lexsort((hi, lo, edges.distance, edges.kind))
    parent = list(range(n))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    edge_i, edge_j = edges.i[order].tolist(), edges.j[order].tolist()
    if method == "single":
        for a, b in zip(edge_i, edge_j, strict=True):
            ra, rb = find(a), find(b)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
    else:
        _complete_link(edge_i, edge_j, parent, find)
    groups: dict[int, list[int]] = {}
    for item in range(n):
        groups.setdefault(find(item), []).append(item)
    out = [sorted(g, key=lambda x: keys[x]) for g in groups.values() if len(g) > 1]
    return sorted(out, key=lambda g: keys[g[0]])


def _complete_link(edge_i: list[int], edge_j: list[int], parent: list[int], find) -> None:
    """Merge two clusters when the edge just read completes every cross pair between them.

    Edges arrive in increasing distance, so the merge happens at the largest cross distance: exactly
    complete-link agglomeration cut at the threshold (missing pairs are farther than it).
    """
    size = [1] * len(parent)
    links: dict[int, dict[int, int]] = {}  # cluster root -> {other root: cross edges seen}
    for a, b in zip(edge_i, edge_j, strict=True):
        ra, rb = find(a), find(b)
        if ra == rb:
            continue
        count = links.setdefault(ra, {}).get(rb, 0) + 1
        if count < size[ra] * size[rb]:
            links[ra][rb] = count
            links.setdefault(rb, {})[ra] = count
            continue
        keep, gone = (ra, rb) if size[ra] >= size[rb] else (rb, ra)
        parent[gone] = keep
        size[keep] += size[gone]
        kept_links = links.setdefault(keep, {})
        kept_links.pop(gone, None)
        for other, seen in links.pop(gone, {}).items():
            if other == keep:
                continue
            other_links = links[other]
            del other_links[gone]
            total = kept_links.get(other, 0) + seen
            kept_links[other] = total
            other_links[keep] = total
