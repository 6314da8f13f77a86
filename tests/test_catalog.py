import sqlite3

import numpy as np
import pytest

from photodedup.catalog import MIGRATIONS, SCHEMA_VERSION, Catalog
from photodedup.errors import CatalogError


def test_new_catalog_is_wal_and_versioned(tmp_path):
    with Catalog(tmp_path / "c.sqlite") as cat:
        assert cat.version == SCHEMA_VERSION
        assert cat.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with Catalog(tmp_path / "c.sqlite") as cat:  # reopening migrates nothing and keeps the version
        assert cat.version == SCHEMA_VERSION


def test_older_catalog_is_migrated_in_place(tmp_path):
    path = tmp_path / "c.sqlite"
    conn = sqlite3.connect(path)  # a catalog written by the first release: schema version 1
    conn.executescript("CREATE TABLE schema_version (version INTEGER NOT NULL); INSERT INTO schema_version VALUES (1);"
                       + MIGRATIONS[0])
    conn.execute("INSERT INTO files (path, status, scanned_at) VALUES ('/x/a.jpg', 'ok', 1.0)")
    conn.commit()
    conn.close()
    with Catalog(path) as cat:
        assert cat.version == SCHEMA_VERSION
        assert [r["path"] for r in cat.files()] == ["/x/a.jpg"]
        assert cat.conn.execute("SELECT count(*) FROM groups").fetchone()[0] == 0


def test_newer_catalog_is_refused(tmp_path):
    path = tmp_path / "c.sqlite"
    with Catalog(path) as cat:
        cat.conn.execute("UPDATE schema_version SET version = 999")
    with pytest.raises(CatalogError, match="has schema version 999, newer than this photodedup"):
        Catalog(path)


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "c.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(CatalogError, match="cannot open the catalog"):
        Catalog(path)


def test_missing_catalog_when_not_creating(tmp_path):
    with pytest.raises(CatalogError, match="no catalog at"):
        Catalog(tmp_path / "none.sqlite", create=False)


def test_failed_transaction_leaves_nothing(tmp_path):
    with Catalog(tmp_path / "c.sqlite") as cat:
        with pytest.raises(sqlite3.IntegrityError):
            with cat.transaction() as conn:
                conn.execute("INSERT INTO files (path, status, scanned_at) VALUES ('/a', 'ok', 1)")
                conn.execute("INSERT INTO files (path, status, scanned_at) VALUES ('/a', 'ok', 1)")
        assert cat.counts() == {}


def test_embeddings_round_trip(tmp_path):
    with Catalog(tmp_path / "c.sqlite") as cat:
        cat.record_files([{"path": f"/x/{i}.jpg", "status": "ok", "scanned_at": 1.0} for i in range(3)])
        ids = [r["id"] for r in cat.files()]
        cat.register_model("ViT-B-32/random-seed0", weights="random", is_random=True, dim=512)
        vectors = np.random.default_rng(0).standard_normal((2, 512)).astype(np.float32)
        cat.add_embeddings("ViT-B-32/random-seed0", ids[:2], vectors, backend="onnx", errors={ids[2]: "bad"})
        got_ids, got = cat.embeddings("ViT-B-32/random-seed0")
        assert got_ids.tolist() == ids[:2]
        np.testing.assert_array_equal(got, vectors)
        assert cat.files_without_embedding("ViT-B-32/random-seed0") == []  # the error counts as done
        assert cat.models()[0]["embedded"] == 2
