"""The ``http-service`` and ``auto`` backends against a real ``photodedup serve`` process.

Tolerances: the ``uint8`` payload sends the exact crops, so embeddings equal the local onnx backend's up
to float32 noise from a different batch composition (max |difference| <= 1e-5). The ``jpeg`` payload
re-encodes each crop (quality 95, no chroma subsampling), which changes pixels by a few levels: on the
photographs the sample library is made from, with the model whose embeddings separate images
(``separating_model.py``), cosine similarity to the local embedding stays >= 0.999 (measured: min
0.99923 over 19 photos; a quality-30 payload drops it to 0.953, and on random weights passed).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from helpers import cli_command, run_cli

from photodedup.backends import embed_batches, get_backend
from photodedup.backends.auto import AutoBackend
from photodedup.backends.base import RemoteBackend
from photodedup.backends.http_service import HttpServiceBackend
from photodedup.errors import BackendUnavailableError, BadInputError, ModelMismatchError
from photodedup.preprocess import crop_from_source
from photodedup.sample_library import source_photos

pytestmark = pytest.mark.slow


def crops(n: int, seed: int = 0) -> np.ndarray:
    """Smooth random crops (like photos, unlike white noise), so the JPEG payload behaves as it does in use."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (n, 14, 14, 3), dtype=np.uint8)
    return np.repeat(np.repeat(small, 16, axis=1), 16, axis=2)


def photo_crops() -> np.ndarray:
    """The model crops of the photographs the sample library is made from (colour and grey)."""
    return np.stack([crop_from_source(path) for path in source_photos()])


def start_service(model_dir, server_processes, *extra: str):
    port = server_processes.free_port()
    cmd = cli_command("serve", "--model-dir", model_dir, "--port", port, *extra)
    return server_processes.start(cmd, f"http://127.0.0.1:{port}/readyz", timeout=180), f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def service(onnx_model_dir, server_processes):
    server, url = start_service(onnx_model_dir, server_processes, "--max-images", "16")
    yield url
    server.stop()


@pytest.fixture(scope="module")
def local(onnx_model_dir):
    backend = get_backend("onnx", model_dir=onnx_model_dir)
    yield backend
    backend.close()


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.sum(a * b, axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_uint8_payload_equals_the_local_backend(service, local):
    images = crops(40, seed=1)
    remote = HttpServiceBackend(service, payload="uint8", in_flight=4)
    try:
        assert (remote.model_id, remote.max_batch_size) == ("ViT-B-32/random-seed0", 16)
        results = list(embed_batches(remote, [images[:25], images[25:]], in_flight=remote.in_flight))
    finally:
        remote.close()
    out = np.concatenate([r.embeddings for r in results])
    assert [r.backend for r in results] == ["http-service", "http-service"]
    np.testing.assert_allclose(out, local.embed_batch(images), atol=1e-5)


def test_jpeg_payload_is_within_its_tolerance(separating_model_dir, server_processes):
    """Photo crops through the jpeg payload against the same crops embedded locally, with the model
    whose embeddings separate images (on random weights a quality-30 payload also passed)."""
    images = photo_crops()
    server, url = start_service(separating_model_dir, server_processes)
    remote = HttpServiceBackend(url, payload="jpeg")
    try:
        out = remote.embed_batch(images)
    finally:
        remote.close()
        server.stop()
    with get_backend("onnx", model_dir=separating_model_dir) as separating:
        similarity = cosine(out, separating.embed_batch(images))
    assert similarity.min() >= 0.999, similarity


def test_the_service_says_whether_its_weights_are_random(service):
    """The export's ``is_random`` travels through ``/v1/model`` to the client, a ``RemoteBackend``."""
    remote = HttpServiceBackend(service)
    assert (remote.info["model"], remote.info["is_random"], remote.is_random) == ("ViT-B-32/random-seed0", True, True)
    assert isinstance(remote, RemoteBackend) and (remote.url, remote.server) == (service, "photodedup")
    remote.close()


def test_a_served_model_that_is_not_the_expected_one_is_refused(service):
    with pytest.raises(ModelMismatchError) as caught:
        HttpServiceBackend(service, expected_model="ViT-B-32/laion2b_s34b_b79k")
    assert str(caught.value) == (f"the service at {service} serves 'ViT-B-32/random-seed0', "
                                 "expected 'ViT-B-32/laion2b_s34b_b79k'")


def test_an_unreachable_service_is_unavailable_after_retries(server_processes, caplog):
    url = f"http://127.0.0.1:{server_processes.free_port()}"
    with caplog.at_level(logging.WARNING), pytest.raises(BackendUnavailableError) as caught:
        HttpServiceBackend(url, retries=2, backoff=0.01)
    assert str(caught.value).startswith(f"cannot reach the service at {url}: ")
    assert caught.value.hint == "start it with `photodedup serve`, or pass --url"
    assert sum("retrying in" in record.message for record in caplog.records) == 2


def test_a_missing_token_is_a_clear_error(onnx_model_dir, server_processes):
    server, url = start_service(onnx_model_dir, server_processes, "--token", "tok")
    try:
        with pytest.raises(BadInputError) as caught:
            HttpServiceBackend(url, token="")
        assert caught.value.hint == "pass --token or set PHOTODEDUP_TOKEN"
        remote = HttpServiceBackend(url, token="tok")
        assert remote.embed_batch(crops(1)).shape == (1, 512)
        remote.close()
    finally:
        server.stop()


def test_auto_uses_the_service_then_falls_back_when_it_stops(onnx_model_dir, server_processes, local, caplog):
    server, url = start_service(onnx_model_dir, server_processes)
    images = crops(6, seed=3)
    auto = AutoBackend(url, model_dir=onnx_model_dir, payload="uint8")
    try:
        first = list(embed_batches(auto, [images[:3]], in_flight=2))
        assert first[0].backend == "http-service"
        server.stop()
        with caplog.at_level(logging.WARNING):
            second = list(embed_batches(auto, [images[3:]]))
        assert second[0].backend == "onnx"  # switched mid-run
        assert any("embedding locally from now on" in record.message for record in caplog.records)
        out = np.concatenate([first[0].embeddings, second[0].embeddings])
        np.testing.assert_allclose(out, local.embed_batch(images), atol=1e-5)
    finally:
        auto.close()

    caplog.clear()
    with caplog.at_level(logging.WARNING):
        stopped = AutoBackend(url, model_dir=onnx_model_dir, health_timeout=0.5)
    try:
        assert f"no embedding service is ready at {url}; embedding locally with the onnx backend" in caplog.text
        assert stopped.model_id == "ViT-B-32/random-seed0"
        result = next(embed_batches(stopped, [images]))
        assert result.backend == "onnx"
    finally:
        stopped.close()


def test_embed_cli_reports_which_backend_embedded(tiny_library, service, onnx_model_dir, tmp_path,
                                                  server_processes):
    import json

    for catalog in (tmp_path / "remote.sqlite", tmp_path / "fallback.sqlite"):
        assert run_cli("scan", tiny_library["root"], "--catalog", catalog, "--quiet").returncode == 0
    run = run_cli("embed", "--backend", "http-service", "--url", service, "--payload", "jpeg",
                     "--catalog", tmp_path / "remote.sqlite", "--json", "--quiet")
    assert run.returncode == 0, run.stderr
    remote = json.loads(run.stdout)
    assert remote["embedded"] > 0 and remote["backends"] == {"http-service": remote["embedded"]}

    dead = f"http://127.0.0.1:{server_processes.free_port()}"
    run = run_cli("embed", "--backend", "auto", "--url", dead, "--model-dir", onnx_model_dir,
                     "--catalog", tmp_path / "fallback.sqlite", "--json", "--quiet")
    assert run.returncode == 0, run.stderr
    local = json.loads(run.stdout)
    assert local["backend"] == "auto" and local["backends"] == {"onnx": remote["embedded"]}
    assert f"no embedding service is ready at {dead}; embedding locally with the onnx backend" in run.stderr
