"""Shared fixtures. Expensive ones (the ONNX export) are session-scoped and cached across runs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def test_cache() -> Path:
    """Where expensive, rebuildable test artefacts (exports) are kept between runs."""
    path = Path(os.environ.get("PHOTODEDUP_TEST_CACHE", Path.home() / ".cache" / "photodedup-tests"))
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own PHOTODEDUP_HOME, so nothing touches the user's catalog or models."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("PHOTODEDUP_HOME", str(home))
    monkeypatch.delenv("PHOTODEDUP_CATALOG", raising=False)
    monkeypatch.delenv("PHOTODEDUP_MODEL_DIR", raising=False)


@pytest.fixture(scope="session")
def onnx_model_dir(test_cache) -> Path:
    """A real export of random-weight ViT-B/32 (uint8 input, fp32), verified against PyTorch."""
    from photodedup.export_onnx import export_onnx

    return export_onnx("random", precision="fp32", input_kind="uint8", out=test_cache / "vit-b-32-random-uint8-fp32")


@pytest.fixture
def tiny_library(tmp_path) -> dict:
    """A small generated library: 4 originals with near-duplicates, exact copies, unrelated and broken files."""
    from photodedup.sample_library import make_library

    return make_library(tmp_path / "lib", originals=4, megapixels=0.3, seed=0)
