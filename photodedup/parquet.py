"""Hashes and embeddings as Parquet, and grouping from it, for libraries past what one SQLite file holds.

``export_parquet`` streams the catalog's OK files (every ``files`` column) with one model's embedding
(``embedding``: a list of float32, null where a file has none) into one Parquet file, in row
groups of ``ROW_GROUP`` rows; the model travels in the schema metadata. ``group_parquet`` groups such a
file like ``group`` groups the catalog (same evidence, clustering and keepers; nothing is stored).

The semantic search keeps memory bounded. Vectors that fit in ``memory_bytes`` are searched as ``group``
does (exact, or faiss IVF above 10,000). Larger inputs are sharded: a two-level tree of k-means
centroids (faiss) is trained on a sample, every vector is assigned to its ``probes`` nearest leaf
centroids within its two nearest cells (one streaming pass, ~3 sqrt(buckets) dot products a vector), and
buckets are searched exactly, a few at a time: each pass over the file gathers the vectors of as many
buckets as fit in ``memory_bytes``. Memory is the budget plus 8 bytes per vector; the file is read
``1 + soft-assigned bytes / budget`` times. Near duplicates (cosine >= 0.99) nearly always share a bucket;
recall is measured in docs/BENCHMARKS.md.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from photodedup import cluster as clu
from photodedup.catalog import Catalog, open_catalog
from photodedup.config import GB
from photodedup.errors import BackendUnavailableError, BadInputError
from photodedup.grouping import GroupResult, GroupSettings, build_groups, find_edges, one_per_file, same_files
from photodedup.text import printable, private_file

log = logging.getLogger(__name__)

ROW_GROUP = 65_536
#: Vectors per bucket of the sharded search (k-means clusters = vectors / this).
BUCKET_SIZE = 500
DEFAULT_MEMORY_BYTES = 2 * GB
_META_MODEL, _META_RANDOM, _META_DIM = b"photodedup.model", b"photodedup.model_is_random", b"photodedup.dim"
_SQL_TYPES = {"INTEGER": "int64", "REAL": "float64", "TEXT": "string", "BLOB": "binary"}


def _pa():
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as error:
        raise BackendUnavailableError("Parquet needs the pyarrow package", hint="pip install 'photodedup[ray]'") \
            from error
    return pa, pq


@dataclass
class ExportSummary:
    out: str
    files: int
    embedded: int
    model: str | None
    bytes: int
    seconds: float

    def as_dict(self) -> dict:
        return asdict(self)

    def render(self) -> str:
        return (f"Wrote {self.files} files ({self.embedded} with embeddings of {self.model or 'no model'}) "
                f"to {printable(self.out)} ({self.bytes / 1e6:.1f} MB) in {self.seconds:.1f}s")


def export_parquet(catalog: Path | str | Catalog | None, out: Path | str, *, model: str | None = None) -> ExportSummary:
    """Write the catalog's OK files with ``model``'s embeddings (default: the model with the most) to ``out``."""
    pa, pq = _pa()
    started = time.perf_counter()
    out = Path(out)
    with open_catalog(catalog) as cat:
        models = {row["id"]: row for row in cat.models()}
        if model is None and models:
            model = max(models.values(), key=lambda r: (r["embedded"], r["created_at"]))["id"]
        if model is not None and model not in models:
            raise BadInputError(f"no model {model!r} in the catalog", hint=f"models: {', '.join(models) or 'none'}")
        dim = models[model]["dim"] if model else 0
        columns = [(row[1], _SQL_TYPES.get(str(row[2]).upper(), "string"))
                   for row in cat.conn.execute("PRAGMA table_info(files)")]
        columns.append(("raw_pair_of", "int64"))  # a RAW's JPEG (catalog table raw_pairs)
        fields = [pa.field(name, getattr(pa, kind)()) for name, kind in columns]
        if model:  # a variable-size list: Parquet writers here cannot store null fixed-size lists
            fields.append(pa.field("embedding", pa.list_(pa.float32())))
        metadata = {_META_MODEL: (model or "").encode(), _META_DIM: str(dim).encode(),
                    _META_RANDOM: b"1" if model and models[model]["is_random"] else b"0"}
        schema = pa.schema(fields, metadata=metadata)
        cursor = cat.conn.execute(
            "SELECT f.*, rp.other_id, e.vector FROM files f LEFT JOIN raw_pairs rp ON rp.raw_id = f.id "
            "LEFT JOIN embeddings e ON e.file_id = f.id AND e.model_id = ? AND e.vector IS NOT NULL "
            "WHERE f.status = 'ok' ORDER BY f.id", (model or "",))
        files = embedded = 0
        with private_file(out, "wb") as sink, pq.ParquetWriter(sink, schema) as writer:
            while batch := cursor.fetchmany(ROW_GROUP):
                arrays = [pa.array([row[k] for row in batch], type=f.type) for k, f in enumerate(fields[:len(columns)])]
                if model:
                    blobs = [row[len(columns)] for row in batch]
                    have = np.array([b is not None for b in blobs])
                    values = np.frombuffer(b"".join(b for b in blobs if b is not None), np.float32)
                    offsets = np.concatenate([[0], np.cumsum(have * dim)]).astype(np.int32)
                    arrays.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(values),
                                                           mask=pa.array(~have)))
                    embedded += int(have.sum())
                writer.write_table(pa.Table.from_arrays(arrays, schema=schema), row_group_size=ROW_GROUP)
                files += len(batch)
    return ExportSummary(str(out), files, embedded, model, out.stat().st_size, time.perf_counter() - started)


# -- reading ---------------------------------------------------------------------------------------
class ParquetRows(Sequence):
    """The file rows of a Parquet export, read lazily: ``rows[k]["path"]`` like a catalog row."""

    def __init__(self, table) -> None:
        self.table = table
        self.names = [n for n in table.column_names if n != "embedding"]
        self.ids = table.column("id").to_numpy()
        self._columns: dict[str, list] = {}

    def value(self, name: str, k: int):
        """One cell; a column becomes a Python list on first use (one pass over every row reads it fast)."""
        column = self._columns.get(name)
        if column is None:
            column = self._columns[name] = self.table.column(name).to_pylist()
        return column[k]

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, k):
        if isinstance(k, slice):
            raise TypeError("ParquetRows does not slice")
        if not 0 <= k < len(self.ids):
            raise IndexError(k)
        return _Row(self, k)


class _Row:
    __slots__ = ("rows", "k")

    def __init__(self, rows: ParquetRows, k: int) -> None:
        self.rows, self.k = rows, k

    def keys(self) -> list[str]:
        return self.rows.names

    def __getitem__(self, name: str):
        if name == "id":
            return int(self.rows.ids[self.k])
        return self.rows.value(name, self.k)


def _open(path: Path | str):
    pa, pq = _pa()
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"no Parquet file at {path}", hint="write one with `photodedup export-parquet OUT`")
    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as error:
        raise BadInputError(f"cannot read {path} as Parquet: {error}") from error


def read_vectors(path: Path | str, batch_rows: int = ROW_GROUP) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(row numbers, float32 [n, dim])`` of the rows with an embedding, one batch at a time."""
    start = 0
    for batch in _open(path).iter_batches(batch_size=batch_rows, columns=["embedding"]):
        column = batch.column(0)
        valid = ~np.asarray(column.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        if column.null_count:
            column = column.filter(valid)
        rows = np.nonzero(valid)[0]
        values = column.flatten().to_numpy()
        yield rows + start, np.ascontiguousarray(values.reshape(len(rows), -1), dtype=np.float32)
        start += len(batch)


def group_parquet(path: Path | str, *, params: GroupSettings | None = None,
                  memory_bytes: int = DEFAULT_MEMORY_BYTES) -> GroupResult:
    """Group the files of a Parquet export (exact, perceptual, semantic evidence); stores nothing."""
    params = params or GroupSettings()
    started = time.perf_counter()
    handle = _open(path)
    meta = handle.schema_arrow.metadata or {}
    has_vectors = "embedding" in handle.schema_arrow.names
    table = ParquetRows(handle.read(columns=[n for n in handle.schema_arrow.names if n != "embedding"]))
    rows, names = one_per_file(table)  # a file under several paths (hard links) is one item
    parts = find_edges(rows, None, params)  # no thumbnails here: no verified evidence
    model, warnings = (meta.get(_META_MODEL, b"").decode() or None), []
    if "verified" in params.evidence:
        warnings.append("verified evidence skipped: a Parquet export carries no thumbnails")
    if model and meta.get(_META_RANDOM) == b"1" and not params.allow_random:
        warnings.append(f"semantic evidence skipped: the embeddings ({model}) come from random weights and carry "
                        "no meaning (--allow-random uses them anyway)")
        model = None
    if "semantic" in params.evidence and model and has_vectors:
        parts["semantic"] = cosine_pairs_streaming(path, params.cosine, memory_bytes=memory_bytes,
                                                   method=params.search)
        if names:  # row numbers of the file -> items (a file's other names stand for it)
            at = _items(table, rows)
            parts["semantic"] = clu.combine(parts["semantic"].moved(at[parts["semantic"].i], at[parts["semantic"].j]))
    else:
        model = None
    pairs = {}
    if "raw_pair_of" in table.names:
        other = table.table.column("raw_pair_of").to_numpy(zero_copy_only=False)
        have = np.nonzero(~np.isnan(other))[0] if other.dtype.kind == "f" else np.arange(len(other))
        pairs = {int(table.ids[k]): int(other[k]) for k in have}
    groups = build_groups(rows, clu.combine(*parts.values()), params, pairs=pairs, names=names)
    counts = {kind: len(edges) for kind, edges in parts.items()}
    return GroupResult(groups, params, len(rows), counts, model, warnings, time.perf_counter() - started,
                       same_files=same_files(rows, names))


def _items(table: ParquetRows, rows: Sequence) -> np.ndarray:
    """For each row number of the file, the index of its file in ``rows`` (``one_per_file``'s list)."""
    by_id = {row["id"]: k for k, row in enumerate(rows)}
    by_file = {(row["dev"], row["ino"]): k for k, row in enumerate(rows) if row["dev"] is not None}
    return np.array([by_id[i] if i in by_id else by_file[(table.value("dev", k), table.value("ino", k))]
                     for k, i in enumerate(table.ids.tolist())], dtype=np.int64)


# -- the memory-bounded semantic search --------------------------------------------------------------
def cosine_pairs_streaming(path: Path | str, threshold: float, *, memory_bytes: int = DEFAULT_MEMORY_BYTES,
                           method: str = "auto", probes: int = 2, bucket_size: int = BUCKET_SIZE) -> clu.Edges:
    """Pairs of rows (row numbers of the file) with cosine >= ``threshold``, in bounded memory."""
    handle = _open(path)
    n_rows = handle.metadata.num_rows
    kind = handle.schema_arrow.field("embedding").type
    meta = handle.schema_arrow.metadata or {}
    dim = getattr(kind, "list_size", None) or int(meta.get(_META_DIM) or next(read_vectors(path))[1].shape[1])
    present = n_rows - _nulls(handle, handle.schema_arrow.names.index("embedding"))
    if present * dim * 4 <= memory_bytes / 2:  # fits: the in-memory search, as `group` does it
        batches = list(read_vectors(path))
        index = np.concatenate([b[0] for b in batches]) if batches else np.zeros(0, np.int64)
        vectors = np.concatenate([b[1] for b in batches]) if batches else np.zeros((0, dim), np.float32)
        found = clu.cosine_pairs(vectors, threshold, method=method)
        return clu.Edges.of(index[found.i], index[found.j], clu.SEMANTIC, found.distance)
    return _sharded(path, n_rows, dim, threshold, memory_bytes=memory_bytes, probes=probes,
                    buckets=max(2, present // bucket_size))


def _kmeans(points: np.ndarray, k: int, seed: int) -> np.ndarray:
    """``k`` unit centroids of ``points`` (spherical k-means, 8 iterations); points are reused when few."""
    import faiss

    if len(points) <= k:
        out = np.zeros((k, points.shape[1]), np.float32)
        out[:len(points)] = points  # unused rows stay zero: nothing is ever nearest to them
        return out
    kmeans = faiss.Kmeans(points.shape[1], k, niter=8, spherical=True, seed=seed, max_points_per_centroid=64,
                          min_points_per_centroid=1)
    kmeans.train(np.ascontiguousarray(points))
    return kmeans.centroids


def _train_tree(sample: np.ndarray, k1: int, k2: int) -> tuple[np.ndarray, np.ndarray]:
    coarse = _kmeans(sample, k1, seed=0)
    cell = np.argmax(sample @ coarse.T, axis=1)
    fine = np.stack([_kmeans(sample[cell == c], k2, seed=c + 1) for c in range(k1)])
    return coarse, fine


def _assign(vectors: np.ndarray, coarse: np.ndarray, fine: np.ndarray, probes: int) -> np.ndarray:
    """Bucket ids (``cell * k2 + centroid``) of the ``probes`` best fine centroids in the 2 nearest cells."""
    k1, k2 = fine.shape[:2]
    cells = np.argsort(-(vectors @ coarse.T), axis=1)[:, :2]
    sims = np.empty((len(vectors), 2 * k2), np.float32)
    ids = np.empty((len(vectors), 2 * k2), np.int32)
    for p in range(2):
        for c in np.unique(cells[:, p]):
            rows = np.nonzero(cells[:, p] == c)[0]
            sims[rows, p * k2:(p + 1) * k2] = vectors[rows] @ fine[c].T
            ids[rows, p * k2:(p + 1) * k2] = c * k2 + np.arange(k2)
    best = np.argpartition(-sims, probes - 1, axis=1)[:, :probes]
    return np.take_along_axis(ids, best, axis=1)


def _nulls(handle, column: int) -> int:
    """Null count of a column from the row-group statistics (0 when a writer left them out)."""
    total = 0
    for g in range(handle.num_row_groups):
        stats = handle.metadata.row_group(g).column(column).statistics
        total += stats.null_count if stats is not None and stats.has_null_count else 0
    return total


def _sharded(path, n_rows: int, dim: int, threshold: float, *, memory_bytes: int, probes: int,
             buckets: int) -> clu.Edges:
    started = time.perf_counter()
    # 1. a two-level tree of spherical k-means centroids (k1 cells of k2 each), trained on a strided sample
    k1 = k2 = max(2, int(np.ceil(np.sqrt(buckets))))
    want = min(n_rows, 32 * k1 * k2)
    stride = max(1, n_rows // want)
    sample = np.concatenate([v[(r % stride) == 0] for r, v in read_vectors(path)])[:want]
    coarse, fine = _train_tree(sample, k1, k2)
    del sample
    # 2. every vector to its `probes` nearest fine centroids among its 2 nearest cells (int32: 8 bytes a vector)
    assign = np.full((n_rows, probes), -1, dtype=np.int32)
    for rows, vectors in read_vectors(path):
        assign[rows] = _assign(vectors, coarse, fine, probes)
    buckets = k1 * k2
    log.info("sharded search: %d buckets trained and assigned in %.1fs", buckets, time.perf_counter() - started)
    # 3. passes: consecutive buckets whose members fit in the budget, searched exactly bucket by bucket
    sizes = np.bincount(assign[assign >= 0], minlength=buckets)
    per_pass = max(1, memory_bytes // (dim * 4))
    codes, dists = [], []
    first = 0
    while first < buckets:
        last, total = first, 0
        while last < buckets and (last == first or total + sizes[last] <= per_pass):
            total += sizes[last]
            last += 1
        inside = (assign >= first) & (assign < last)
        members = np.nonzero(inside.any(axis=1))[0]
        position = np.full(n_rows, -1, dtype=np.int64)
        position[members] = np.arange(len(members))
        gathered = np.empty((len(members), dim), dtype=np.float32)
        for rows, vectors in read_vectors(path):
            keep = position[rows] >= 0
            gathered[position[rows[keep]]] = vectors[keep]
        owner_rows, owner_probe = np.nonzero(inside[members])
        bucket_of = assign[members[owner_rows], owner_probe]
        order = np.argsort(bucket_of, kind="stable")
        owner_rows, bucket_of = owner_rows[order], bucket_of[order]
        bounds = np.searchsorted(bucket_of, np.arange(first, last + 1))
        for b in range(last - first):
            local = owner_rows[bounds[b]:bounds[b + 1]]  # positions in `gathered`, ascending row numbers
            if len(local) < 2:
                continue
            found = clu.cosine_pairs(gathered[local], threshold, method="exact")
            codes.append(members[local[found.i]] * n_rows + members[local[found.j]])
            dists.append(found.distance)
        first = last
    if not codes:
        return clu.Edges.empty()
    codes, keep = np.unique(np.concatenate(codes), return_index=True)
    distance = np.concatenate(dists)[keep]
    return clu.Edges.of(codes // n_rows, codes % n_rows, clu.SEMANTIC, distance)
