"""Parquet export, grouping from Parquet, and the sharded (memory-bounded) semantic search."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest
from helpers import run_cli

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

from photodedup import cluster as clu  # noqa: E402
from photodedup.parquet import cosine_pairs_streaming, export_parquet, read_vectors  # noqa: E402


def _cli(*args: str) -> subprocess.CompletedProcess:
    return run_cli(*args)


def _groups(result: subprocess.CompletedProcess) -> tuple[dict, list]:
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    return data, [(g["kind"], g["keeper"], [(m["path"], m["evidence"], m["score"]) for m in g["members"]])
                  for g in data["groups"]]


@pytest.fixture(scope="module")
def embedded_catalog(tmp_path_factory, onnx_model_dir):
    base = tmp_path_factory.mktemp("parquet")
    library, catalog = base / "lib", base / "catalog.sqlite"
    # 3 originals at 0.5 MP: exact, perceptual and semantic pairs, and pairs the pixel check refutes (was 6 at
    # 1 MP: the same kinds, 2.4x the catalog grouping's CPU; docs/BENCHMARKS.md "Suite time, session 6")
    assert _cli("sample-library", str(library), "--originals", "3", "--megapixels", "0.5").returncode == 0
    assert _cli("scan", str(library), "--catalog", str(catalog)).returncode == 0
    assert _cli("embed", "--model-dir", str(onnx_model_dir), "--catalog", str(catalog)).returncode == 0
    return catalog


def test_export_holds_every_ok_file_with_its_embedding(embedded_catalog, tmp_path):
    import sqlite3

    out = tmp_path / "lib.parquet"
    summary = export_parquet(embedded_catalog, out)
    conn = sqlite3.connect(embedded_catalog)
    ok = conn.execute("SELECT count(*) FROM files WHERE status = 'ok'").fetchone()[0]
    vectors = dict(conn.execute("SELECT f.path, e.vector FROM embeddings e JOIN files f ON f.id = e.file_id "
                                "WHERE e.vector IS NOT NULL"))
    table = pq.read_table(out)
    assert summary.files == table.num_rows == ok
    assert summary.embedded == len(vectors)
    assert table.schema.metadata[b"photodedup.model"].decode() == summary.model
    paths = table.column("path").to_pylist()
    got = {paths[r]: v for rows, batch in read_vectors(out) for r, v in zip(rows, batch, strict=True)}
    assert got.keys() == vectors.keys()
    for path, blob in vectors.items():  # float32 in, float32 out: bit for bit
        assert got[path].tobytes() == blob


def test_group_from_parquet_gives_the_catalog_groups(embedded_catalog, tmp_path):
    out = tmp_path / "lib.parquet"
    assert _cli("export-parquet", str(out), "--catalog", str(embedded_catalog)).returncode == 0
    options = ["--allow-random", "--cosine", "0.95", "--json", "--evidence", "exact", "--evidence", "perceptual",
               "--evidence", "semantic"]  # not verified: an export has no thumbnails
    catalog_data, from_catalog = _groups(_cli("group", "--catalog", str(embedded_catalog), *options))
    parquet_data, from_parquet = _groups(_cli("group", "--parquet", str(out), *options))
    # the same search; the catalog's pairs also pass the pixel check (an export has no thumbnails), which
    # only ever refutes: exact pairs agree, no other kind has more pairs from the catalog, and each catalog
    # group lies inside one group from the export
    assert parquet_data["edges"]["exact"] == catalog_data["edges"]["exact"]
    assert all(catalog_data["edges"][kind] <= parquet_data["edges"][kind] for kind in ("perceptual", "semantic"))
    exported = [{path for path, _, _ in members} for _, _, members in from_parquet]
    for _, _, members in from_catalog:
        assert any({path for path, _, _ in members} <= group for group in exported), members
    assert parquet_data["edges"]["semantic"] > 0


def test_group_parquet_errors_are_clear(tmp_path):
    missing = _cli("group", "--parquet", str(tmp_path / "nope.parquet"))
    assert missing.returncode == 3
    assert f"Error: no Parquet file at {tmp_path / 'nope.parquet'}" in missing.stderr
    (tmp_path / "bad.parquet").write_text("not parquet")
    bad = _cli("group", "--parquet", str(tmp_path / "bad.parquet"))
    assert bad.returncode == 3
    assert "cannot read" in bad.stderr
    html = _cli("group", "--parquet", str(tmp_path / "bad.parquet"), "--html", str(tmp_path / "r.html"))
    assert html.returncode == 3
    assert "Error: --parquet groups the whole file and has no thumbnails" in html.stderr


def _planted(path, n: int, dim: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dim), dtype=np.float32)
    copies = n // 10
    sources = rng.choice(n - copies, size=copies, replace=False)
    vectors[n - copies:] = vectors[sources] + 0.1 / np.sqrt(dim) * rng.standard_normal((copies, dim), np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    missing = np.zeros(n, bool)
    missing[::97] = True  # some files without an embedding
    offsets = np.concatenate([[0], np.cumsum(~missing * dim)]).astype(np.int32)
    embedding = pa.ListArray.from_arrays(pa.array(offsets), pa.array(vectors[~missing].reshape(-1)),
                                         mask=pa.array(missing))
    pq.write_table(pa.table({"id": np.arange(1, n + 1), "embedding": embedding}), path, row_group_size=1000)
    vectors[missing] = 0
    return vectors


def test_sharded_search_finds_the_exact_pairs_in_a_small_memory_budget(tmp_path):
    path = tmp_path / "planted.parquet"
    vectors = _planted(path, 6000, 32)
    exact = clu.cosine_pairs(vectors, 0.99, method="exact")
    budget = 6000 * 32 * 4 // 8  # an eighth of the vectors: sharded, several passes
    sharded = cosine_pairs_streaming(path, 0.99, memory_bytes=budget, bucket_size=200)
    truth = dict(zip(zip(exact.i.tolist(), exact.j.tolist(), strict=True), exact.distance.tolist(), strict=True))
    found = dict(zip(zip(sharded.i.tolist(), sharded.j.tolist(), strict=True), sharded.distance.tolist(),
                     strict=True))
    assert len(truth) > 400
    assert found.keys() <= truth.keys()  # never a pair the exact search does not have
    assert all(found[p] == pytest.approx(truth[p], abs=1e-6) for p in found)
    assert len(found) / len(truth) >= 0.98  # near duplicates share a bucket (two probes each)
    in_memory = cosine_pairs_streaming(path, 0.99, memory_bytes=10 * 6000 * 32 * 4)
    assert set(zip(in_memory.i.tolist(), in_memory.j.tolist(), strict=True)) == truth.keys()
