"""export-onnx: a real export of random-weight ViT-B/32, its metadata, variants, reuse and checks."""

from __future__ import annotations

import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from helpers import run_cli

from photodedup.backends.onnx import OnnxBackend
from photodedup.errors import BadInputError, ExportError
from photodedup.export_onnx import OPSET, export_onnx, verify_export
from photodedup.exports import MODEL_FILES, SESSION_CACHE, default_export_dir, read_metadata, sample_crops
from photodedup.model import file_sha256, load_model


def test_export_directory_and_metadata(onnx_model_dir):
    # and the onnx backend's cache of the optimised graph, once a session was opened on it
    assert sorted(p.name for p in onnx_model_dir.iterdir() if p.name != SESSION_CACHE) == sorted(MODEL_FILES)
    meta = read_metadata(onnx_model_dir)
    assert {k: meta[k] for k in ("model_id", "weights", "is_random", "precision", "opset", "input_name",
                                 "input_dtype", "input_shape", "output_name", "output_shape")} == {
        "model_id": "ViT-B-32/random-seed0", "weights": "random", "is_random": True, "precision": "fp32",
        "opset": OPSET, "input_name": "images", "input_dtype": "uint8", "input_shape": [-1, 224, 224, 3],
        "output_name": "embeddings", "output_shape": [-1, 512]}
    assert meta["sha256"] == file_sha256(onnx_model_dir / "model.onnx")
    assert meta["verification"]["min_cosine_random"] >= 0.9999
    assert meta["verification"]["min_cosine_photos"] >= 0.9999
    model = onnx.load(str(onnx_model_dir / "model.onnx"), load_external_data=False)
    assert [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")] == [OPSET]
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "batch" and [d.dim_value for d in dims[1:]] == [224, 224, 3]


def test_dynamic_batch_axis(onnx_model_dir):
    session = ort.InferenceSession(str(onnx_model_dir / "model.onnx"), providers=["CPUExecutionProvider"])
    for n in (1, 3):
        out = session.run(["embeddings"], {"images": np.zeros((n, 224, 224, 3), np.uint8)})[0]
        assert out.shape == (n, 512) and out.dtype == np.float32


def test_default_export_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("PHOTODEDUP_HOME", str(tmp_path))
    assert default_export_dir("random", "int8", "uint8") == tmp_path / "models/ViT-B-32-random-seed0-uint8-int8"
    assert default_export_dir() == tmp_path / "models/ViT-B-32-laion2b_s34b_b79k-uint8-fp32"


def test_rerun_reuses_the_export(onnx_model_dir):
    before = (onnx_model_dir / "model.onnx").stat().st_mtime_ns
    assert export_onnx("random", precision="fp32", input_kind="uint8", out=onnx_model_dir) == onnx_model_dir
    assert (onnx_model_dir / "model.onnx").stat().st_mtime_ns == before


def test_a_failed_check_fails_the_export(onnx_model_dir):
    """The export of seed 0 checked against the model with seed 1 must not pass."""
    with pytest.raises(ExportError, match=r"the fp32 export does not match PyTorch: minimum cosine"):
        verify_export(onnx_model_dir / "model.onnx", load_model("random", seed=1), "uint8", "fp32")


def test_bad_options(tmp_path):
    with pytest.raises(BadInputError, match="unknown precision 'fp8'"):
        export_onnx("random", precision="fp8")
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BadInputError, match="exists and is not a model directory; not overwriting it"):
        export_onnx("random", out=tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    result = run_cli("export-onnx", "--weights", "random", "--input", "int4")
    assert result.returncode == 3
    assert "Error: unknown input 'int4'\nHint: choose one of: uint8, float32" in result.stderr


@pytest.mark.slow
@pytest.mark.parametrize("precision,min_cosine", [("int8", 0.99), ("fp16", 0.999)])
def test_reduced_precision_exports(random_export, onnx_model_dir, precision, min_cosine):
    """int8 (dynamic quantisation) and fp16 stay close to fp32 on photo-like crops (random weights:
    measured 0.9998 for int8 and 1 - 1e-6 for fp16; real weights are measured by the benchmark).
    The exports are conftest's cached ones: made (and verified against PyTorch) once per precision."""
    out = random_export(precision)
    meta = read_metadata(out)
    assert meta["precision"] == precision and meta["input_dtype"] == "uint8"
    crops = sample_crops(4, seed=9)
    reduced = OnnxBackend(out).embed_batch(crops)
    full = OnnxBackend(onnx_model_dir).embed_batch(crops)
    assert np.min(np.sum(reduced * full, axis=1)) >= min_cosine
    size = (out / "model.onnx").stat().st_size
    assert size < (onnx_model_dir / "model.onnx").stat().st_size * (0.3 if precision == "int8" else 0.6)


@pytest.mark.slow
def test_cli_float32_input_export_and_reuse(random_export, onnx_model_dir):
    """The float32-input export is conftest's cached one (made by the library's export, verified against
    PyTorch, as the CLI's would be: the CLI calls that function); the CLI finds it, says what it is, and it
    embeds as the uint8 export does."""
    out = random_export("fp32", input_kind="float32")
    first = run_cli("export-onnx", "--weights", "random", "--input", "float32", "--precision", "fp32", "--out",
                    str(out), "--json")
    assert first.returncode == 0, first.stderr
    assert "Warning: model weights are random (--weights random): its embeddings carry no meaning" in first.stderr
    meta = json.loads(first.stdout)
    assert meta["model_dir"] == str(out) and meta["input_dtype"] == "float32"
    assert meta["input_shape"] == [-1, 3, 224, 224]
    crops = sample_crops(3, seed=4)
    np.testing.assert_allclose(OnnxBackend(out).embed_batch(crops), OnnxBackend(onnx_model_dir).embed_batch(crops),
                               atol=1e-4)
    mtime = (out / "model.onnx").stat().st_mtime_ns
    second = run_cli("export-onnx", "--weights", "random", "--input", "fp32", "--precision", "fp32", "--out", str(out))
    assert second.returncode == 0, second.stderr
    assert (out / "model.onnx").stat().st_mtime_ns == mtime
    assert second.stdout.startswith(f"ViT-B-32/random-seed0 (fp32, float32 input, opset {OPSET}) in {out}")
