"""photodedup embed: exact counts, incremental and resumed runs (a real kill), errors, CLI."""

from __future__ import annotations

import json
import os
import signal
import sqlite3

import numpy as np
import pytest
from helpers import run_cli, start_cli, wait_paused, write_photo

from photodedup.backends.onnx import OnnxBackend
from photodedup.catalog import Catalog
from photodedup.embed import embed
from photodedup.scan import scan


@pytest.fixture(scope="module")
def backend(onnx_model_dir):
    engine = OnnxBackend(onnx_model_dir)
    yield engine
    engine.close()


def _rows(catalog):
    with sqlite3.connect(catalog) as conn:
        return conn.execute("SELECT file_id, vector IS NOT NULL, error, created_at FROM embeddings "
                            "ORDER BY file_id").fetchall()


def test_embeds_every_ok_file_then_nothing(tiny_library, tmp_path, backend):
    catalog = tmp_path / "c.sqlite"
    scanned = scan([tiny_library["root"]], catalog=catalog, workers=1)
    ok = scanned.new - scanned.errors
    seen = []
    summary = embed(backend, catalog=catalog, batch_size=4, progress=lambda done, total: seen.append((done, total)))
    assert (summary.embedded, summary.skipped, summary.errors) == (ok, 0, 0)
    assert (summary.from_crops, summary.from_originals) == (ok, 0)
    assert summary.backend == "onnx" and summary.model == "ViT-B-32/random-seed0" and summary.is_random
    assert seen[0] == (0, ok) and seen[-1] == (ok, ok)
    with Catalog(catalog) as cat:
        ids, vectors = cat.embeddings("ViT-B-32/random-seed0")
        assert len(ids) == ok and vectors.shape == (ok, 512)
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        (model,) = cat.models()
        assert (model["id"], model["weights"], model["is_random"], model["embedded"]) == (
            "ViT-B-32/random-seed0", "random", 1, ok)
    again = embed(backend, catalog=catalog)
    assert (again.embedded, again.skipped, again.errors) == (0, ok, 0)


@pytest.mark.parametrize("decode", ["pil", "torchvision"])
def test_new_files_missing_crops_and_broken_files(tmp_path, backend, decode):
    """The same counts and errors whether originals and crops are decoded by PIL worker processes or in
    batches by torchvision on the backend's device (here the CPU; nvJPEG on a GPU)."""
    root = tmp_path / "lib"
    for i in range(3):
        write_photo(root / f"p{i}.jpg", size=(400, 300), pattern=i)
    catalog = tmp_path / "c.sqlite"
    scan([root], catalog=catalog, workers=1)
    first = embed(backend, catalog=catalog)
    assert (first.embedded, first.errors) == (3, 0)
    with Catalog(catalog) as cat:
        stored = dict(zip(*cat.embeddings(backend.model_id), strict=True))

    write_photo(root / "p3.jpg", size=(300, 400), pattern=3)
    write_photo(root / "p4.jpg", size=(500, 300), pattern=4)
    scan([root], catalog=catalog, workers=1)
    with Catalog(catalog) as cat:
        by_path = {os.path.basename(r["path"]): r["id"] for r in cat.files()}
        # p3: no stored crop, decode the original; p4: became unreadable after the scan
        cat.conn.execute("DELETE FROM crops WHERE file_id IN (?, ?)", (by_path["p3.jpg"], by_path["p4.jpg"]))
        cat.conn.execute("DELETE FROM embeddings WHERE file_id = ?", (by_path["p0.jpg"],))
    (root / "p4.jpg").write_bytes(b"\xff\xd8\xff garbage")
    second = embed(backend, catalog=catalog, workers=2, decode=decode)
    assert second.decoder == ("pil" if decode == "pil" else "torchvision on cpu")
    assert (second.embedded, second.skipped, second.errors) == (2, 2, 1)
    assert (second.from_crops, second.from_originals) == (1, 1)
    with Catalog(catalog) as cat:
        ids, vectors = cat.embeddings(backend.model_id)
        assert len(ids) == 4
        now = dict(zip(ids, vectors, strict=True))
        np.testing.assert_allclose(now[by_path["p0.jpg"]], stored[by_path["p0.jpg"]], atol=1e-6)
        error = cat.conn.execute("SELECT error FROM embeddings WHERE file_id = ?",
                                 (by_path["p4.jpg"],)).fetchone()[0]
    assert error.startswith("cannot decode: ")
    third = embed(backend, catalog=catalog)
    assert (third.embedded, third.skipped, third.errors) == (0, 5, 0)


def test_cli_json_and_random_warning(tiny_library, tmp_path, onnx_model_dir):
    catalog = tmp_path / "c.sqlite"
    scanned = scan([tiny_library["root"]], catalog=catalog, workers=1)
    result = run_cli("embed", "--model-dir", str(onnx_model_dir), "--catalog", str(catalog), "--json",
                  "--batch-size", "8")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {k: data[k] for k in ("embedded", "skipped", "errors", "backend", "model")} == {
        "embedded": scanned.new - scanned.errors, "skipped": 0, "errors": 0, "backend": "onnx",
        "model": "ViT-B-32/random-seed0"}
    assert data["images_per_second"] > 0
    assert "Warning: model weights are random (--weights random): its embeddings carry no meaning" in result.stderr


def test_cli_missing_export_and_bad_device(tmp_path, onnx_model_dir):
    result = run_cli("embed", "--weights", "random", "--catalog", str(tmp_path / "c.sqlite"))
    home = os.environ["PHOTODEDUP_HOME"]
    assert result.returncode == 7
    assert result.stderr == (
        f"Error: no ONNX export in {home}/models/ViT-B-32-random-seed0-uint8-int8\n"  # the default: int8 on a CPU
        "Hint: run `photodedup export-onnx --weights random --precision int8` first, or point --model-dir "
        "(PHOTODEDUP_MODEL_DIR) at an export\n")
    bad = run_cli("embed", "--model-dir", onnx_model_dir, "--device", "cuda", "--catalog", tmp_path / "c.sqlite")
    assert bad.returncode == 5
    assert "Error: onnxruntime has no CUDAExecutionProvider here (--device cuda); available providers:" in bad.stderr


@pytest.mark.slow
def test_killed_run_resumes_without_redoing_or_losing_work(tmp_path, onnx_model_dir):
    root = tmp_path / "lib"
    for i in range(40):
        write_photo(root / f"p{i:02d}.png", size=(240, 240), pattern=i, fmt="PNG")
    catalog = tmp_path / "c.sqlite"
    scan([root], catalog=catalog, workers=1)
    command = ("embed", "--model-dir", onnx_model_dir, "--catalog", catalog, "--batch-size", "1",
               "--threads", "1", "--quiet")
    process = start_cli(*command, env={"PHOTODEDUP_TEST_PAUSE": "add_embeddings:3"})
    wait_paused(process)  # three single-image batches are committed; the kill lands before the fourth
    process.send_signal(signal.SIGKILL)
    process.wait()
    before = _rows(catalog)
    assert len(before) == 3 and all(has_vector for _, has_vector, _, _ in before)

    result = run_cli("embed", "--model-dir", str(onnx_model_dir), "--catalog", str(catalog), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert (data["embedded"], data["skipped"], data["errors"]) == (40 - len(before), len(before), 0)
    after = _rows(catalog)
    assert len(after) == 40
    assert [row for row in after if row[0] in {r[0] for r in before}] == before  # nothing redone
