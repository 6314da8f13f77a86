"""Model loading: random weights, a checkpoint file through the real loading path, offline tags."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from helpers import run_cli

from photodedup.errors import ModelNotFoundError
from photodedup.exports import sample_crops
from photodedup.model import (
    RANDOM_WARNING,
    embed_with_torch,
    file_sha256,
    image_encoder,
    load_model,
    model_id_for,
)


@pytest.fixture(scope="module")
def random1():
    return load_model("random", seed=1)


def test_model_ids(tmp_path):
    assert model_id_for("random") == "ViT-B-32/random-seed0"
    assert model_id_for("random", seed=7) == "ViT-B-32/random-seed7"
    assert model_id_for("random-seed3") == "ViT-B-32/random-seed3"
    assert model_id_for("laion2b_s34b_b79k") == "ViT-B-32/laion2b_s34b_b79k"
    checkpoint = tmp_path / "weights.pt"
    checkpoint.write_bytes(b"not really weights")
    assert model_id_for(str(checkpoint)) == f"ViT-B-32/file-{file_sha256(checkpoint)[:12]}"


@pytest.mark.slow
def test_random_weights_warn_and_follow_the_seed(random1, caplog):
    with caplog.at_level(logging.WARNING, logger="photodedup.model"):
        again = load_model("random", seed=1)
    assert RANDOM_WARNING in caplog.text
    assert again.model_id == "ViT-B-32/random-seed1" and again.is_random and again.weights == "random"
    crops = sample_crops(2)
    a = embed_with_torch(image_encoder(random1), crops)
    b = embed_with_torch(image_encoder(again), crops)
    np.testing.assert_array_equal(a, b)
    other = embed_with_torch(image_encoder(load_model("random", seed=2)), crops)
    assert np.max(np.abs(a - other)) > 1e-3
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)


@pytest.mark.slow
def test_checkpoint_file_loads_through_the_real_path(random1, tmp_path, caplog):
    """A state dict saved by the test loads with open_clip.load_checkpoint and reproduces the model."""
    import torch

    checkpoint = tmp_path / "open_clip_pytorch_model.bin"
    torch.save(random1.model.state_dict(), checkpoint)
    with caplog.at_level(logging.WARNING, logger="photodedup.model"):
        loaded = load_model(str(checkpoint))
    assert RANDOM_WARNING not in caplog.text
    assert loaded.model_id == f"ViT-B-32/file-{file_sha256(checkpoint)[:12]}"
    assert not loaded.is_random and loaded.weights == str(checkpoint.resolve())
    crops = sample_crops(2)
    np.testing.assert_array_equal(embed_with_torch(image_encoder(loaded), crops),
                                  embed_with_torch(image_encoder(random1), crops))


def test_a_file_that_is_not_a_checkpoint_is_a_clear_error(tmp_path):
    bad = tmp_path / "weights.bin"
    bad.write_bytes(b"garbage")
    with pytest.raises(ModelNotFoundError, match=r"cannot load ViT-B-32 weights from .*weights\.bin"):
        load_model(str(bad))


def test_missing_checkpoint_file(tmp_path):
    with pytest.raises(ModelNotFoundError) as info:
        load_model(str(tmp_path / "nope.pt"))
    assert str(info.value) == f"checkpoint file {tmp_path / 'nope.pt'} does not exist"


def test_offline_tag_with_nothing_cached_fails_fast(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError) as info:  # at once: no download tried, no retries waited out
        load_model("laion2b_s34b_b79k")
    assert str(info.value) == ("the weights ViT-B-32/laion2b_s34b_b79k are not cached here and cannot be "
                               "downloaded (offline)")
    assert "--weights /path/to/open_clip_pytorch_model.bin" in info.value.hint
    assert "--weights random" in info.value.hint


def test_unknown_tag():
    with pytest.raises(ModelNotFoundError, match="unknown weights 'no_such_tag' for ViT-B-32"):
        load_model("no_such_tag")


@pytest.mark.slow
def test_cli_offline_export_exit_code_and_message(tmp_path):

    result = run_cli("export-onnx", env={"HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(tmp_path / "hf")}, timeout=120)
    assert result.returncode == 7
    assert result.stderr.startswith(
        "Error: the weights ViT-B-32/laion2b_s34b_b79k are not cached here and cannot be downloaded (offline)\n"
        "Hint: on a machine with internet run `photodedup export-onnx --weights laion2b_s34b_b79k`")
