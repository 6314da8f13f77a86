"""The triton-* backends against a real tritonserver (nvidia-pytriton's, CPU, Python-backend variant).

Two servers: ``triton_server`` (conftest, session) runs ``photodedup serve --engine triton`` on the real
ViT-B/32 export; ``small_server`` (this module) runs a tiny hand-made ONNX model, so the error cases
(a mismatched model, a too-large batch, a stopped server) cost seconds.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import run_cli

from photodedup.backends import embed_batches, get_backend
from photodedup.backends.onnx import OnnxBackend
from photodedup.errors import BackendUnavailableError, InferenceError, ModelMismatchError, ModelNotFoundError
from photodedup.preprocess import DEFAULT_PREPROCESS, crop_from_source
from photodedup.triton import config as tc
from photodedup.triton.config import CPU_MODEL, TritonSettings
from photodedup.triton.server import TritonServer
from photodedup.triton_config import triton_config

pytestmark = pytest.mark.slow
BACKENDS = [("triton-http", "http"), ("triton-grpc", "grpc")]
#: Same onnxruntime, same CPU, same fp32 graph as the onnx backend; only the batch composition differs
#: (Triton's dynamic batcher joins requests). Measured here: max |difference| 0.0. Other CPUs or
#: onnxruntime builds may pick batch-size-dependent GEMM kernels (float summation order, ~1e-7);
#: 1e-5 on unit vectors allows that and nothing a real fault (wrong input, layout, model) would give.
ATOL = 1e-5


@pytest.fixture(scope="module")
def crops(tmp_path_factory) -> np.ndarray:
    from photodedup.sample_library import make_library

    library = make_library(tmp_path_factory.mktemp("lib") / "lib", originals=3, megapixels=0.3, seed=0)
    images = []
    for path in sorted(Path(library["root"]).rglob("*")):
        try:
            images.append(crop_from_source(path))
        except Exception:  # noqa: BLE001 - the library's broken files and truth.json are skipped
            continue
    assert len(images) >= 8
    return np.stack(images[:12])


@pytest.fixture(scope="module")
def expected(onnx_model_dir, crops) -> np.ndarray:
    backend = OnnxBackend(onnx_model_dir)
    try:
        return backend.embed_batch(crops)
    finally:
        backend.close()


@pytest.mark.parametrize("name, protocol", BACKENDS)
def test_embeddings_equal_the_onnx_backend(triton_server, onnx_model_dir, crops, expected, name, protocol):
    with get_backend(name, url=triton_server[protocol]) as backend:
        assert (backend.model_name, backend.max_batch_size) == (CPU_MODEL, 64)
        assert backend.model_id == json.loads((onnx_model_dir / "metadata.json").read_text())["model_id"]
        assert backend.is_random and backend.server == "triton"  # the export's is_random, a config parameter
        results = list(embed_batches(backend, [crops[:5], crops[5:]], in_flight=2))
    got = np.concatenate([result.embeddings for result in results])
    assert got.dtype == np.float32 and got.shape == (len(crops), 512)
    np.testing.assert_allclose(got, expected, atol=ATOL, rtol=0)


def test_concurrent_requests_are_batched_by_triton(triton_server, crops, expected):
    singles = [crops[i : i + 1] for i in range(len(crops))] * 2
    with get_backend("triton-grpc", url=triton_server["grpc"]) as backend:
        before = backend.statistics()
        results = list(embed_batches(backend, singles, in_flight=8))
        # Triton updates its statistics just after it answers: poll briefly for the last ones.
        deadline = time.monotonic() + 300  # only guards a hang: a busy server updates them late
        after = backend.statistics()
        while after["inference_count"] - before["inference_count"] < len(singles) and time.monotonic() < deadline:
            time.sleep(0.05)
            after = backend.statistics()
    inferences = after["inference_count"] - before["inference_count"]
    executions = after["execution_count"] - before["execution_count"]
    assert inferences == len(singles)
    assert executions < inferences, f"no dynamic batching: {executions} executions for {inferences} images"
    assert after["compute_infer_ns"] > before["compute_infer_ns"]
    np.testing.assert_allclose(np.concatenate([r.embeddings for r in results]), np.concatenate([expected] * 2),
                               atol=ATOL, rtol=0)


@pytest.mark.parametrize("name, protocol", BACKENDS)
def test_missing_model(triton_server, name, protocol):
    url = triton_server[protocol]
    with pytest.raises(ModelNotFoundError) as error:
        get_backend(name, url=url, model="openclip_vit_h14")
    assert str(error.value) == f"Triton at {protocol}://{url} has no model 'openclip_vit_h14' (it has: {CPU_MODEL})"


def test_trt_backend_needs_the_trt_model(triton_server):
    with pytest.raises(ModelNotFoundError) as error:
        get_backend("triton-trt", url=triton_server["grpc"])
    assert str(error.value) == (f"Triton at grpc://{triton_server['grpc']} has no model 'openclip_vit_b32_trt' "
                                f"(it has: {CPU_MODEL})")


def test_embed_command_through_triton(triton_server, tiny_library, tmp_path):
    env = {"PHOTODEDUP_TRITON_URL": triton_server["http"]}
    catalog = str(tmp_path / "catalog.sqlite")
    scan = run_cli("scan", tiny_library["root"], "--catalog", catalog, "--json", "-q", env=env)
    assert scan.returncode == 0, scan.stderr
    embed = run_cli("embed", "--backend", "triton-http", "--catalog", catalog, "--json", "-q", env=env)
    assert embed.returncode == 0, embed.stderr
    summary = json.loads(embed.stdout)
    assert (summary["backend"], summary["errors"]) == ("triton-http", 0)
    assert summary["embedded"] == json.loads(scan.stdout)["files"] - json.loads(scan.stdout)["errors"]


# -- a small server on a tiny model, for the error cases ---------------------------------------------
def tiny_export(out: Path, dim: int = 512) -> Path:
    """A stand-in export: uint8 [N,224,224,3] -> mean over pixel groups -> [N,dim], L2-normalised."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    out.mkdir(parents=True)
    image = helper.make_tensor_value_info("images", TensorProto.UINT8, ["n", 224, 224, 3])
    embeddings = helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["n", dim])
    shape = numpy_helper.from_array(np.array([-1, 224 * 224 * 3 // dim, dim], dtype=np.int64), "shape")
    nodes = [helper.make_node("Cast", ["images"], ["x"], to=TensorProto.FLOAT),
             helper.make_node("Reshape", ["x", "shape"], ["r"]),
             helper.make_node("ReduceMean", ["r"], ["m"], axes=[1], keepdims=0),
             helper.make_node("LpNormalization", ["m"], ["embeddings"], axis=1, p=2)]
    model = helper.make_model(helper.make_graph(nodes, "tiny", [image], [embeddings], [shape]),
                              opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, out / "model.onnx")
    DEFAULT_PREPROCESS.save(out / "preprocess.json")
    (out / "metadata.json").write_text(json.dumps({
        "model_id": "tiny/test", "input_name": "images", "input_dtype": "uint8", "input_shape": [-1, 224, 224, 3],
        "output_name": "embeddings", "output_shape": [-1, 512], "sha256": ""}))
    return out


@pytest.fixture(scope="module")
def small_repository(tmp_path_factory) -> Path:
    """The tiny model as the CPU variant (max batch 2), plus ``wrong_output``: a 256-d model."""
    root = tmp_path_factory.mktemp("small")
    repository = root / "repo"
    triton_config(tiny_export(root / "tiny"), repository, variants=(CPU_MODEL,),
                  options=TritonSettings(max_batch_size=2, warmup=False))
    wrong = repository / "wrong_output"
    (wrong / "1").mkdir(parents=True)
    for file in (repository / CPU_MODEL / "1").iterdir():
        (wrong / "1" / file.name).write_bytes(file.read_bytes())
    tiny_export(root / "wide", dim=256)
    (wrong / "1" / "model.onnx").write_bytes((root / "wide" / "model.onnx").read_bytes())
    config = tc.parse_config(repository / CPU_MODEL / "config.pbtxt")
    config.name = "wrong_output"
    config.output[0].dims[:] = [256]
    (wrong / "config.pbtxt").write_text(tc.text_format.MessageToString(config))
    return repository


def start_small(repository: Path, server_processes, **kwargs) -> TritonServer:
    ports = {f"{kind}_port": server_processes.free_port() for kind in ("http", "grpc", "metrics")}
    return TritonServer(repository, **ports, **kwargs)


@pytest.fixture(scope="module")
def small_server(small_repository, server_processes):
    with start_small(small_repository, server_processes) as server:
        yield server


def test_served_model_metadata_is_checked(small_server):
    assert sorted(small_server.models) == [CPU_MODEL, "wrong_output"]
    with pytest.raises(ModelMismatchError) as error:
        get_backend("triton-http", url=small_server.http_url, model="wrong_output")
    assert str(error.value) == (f"model 'wrong_output' on Triton at http://{small_server.http_url}: expected output "
                                "FP32 [-1, 512], served 'embeddings' FP32 [-1, 256]")


@pytest.mark.parametrize("name, protocol", BACKENDS)
def test_a_failed_request_is_an_inference_error(small_server, crops, name, protocol):
    url = getattr(small_server, f"{protocol}_url")
    with get_backend(name, url=url) as backend:
        assert backend.max_batch_size == 2
        with pytest.raises(InferenceError) as error:
            backend.embed_batch(crops[:3])
        assert str(error.value).startswith(f"Triton '{CPU_MODEL}' at {protocol}://{url} failed a batch of 3: ")
        # embed_batches splits to the served max batch size, so the same images go through
        (result,) = embed_batches(backend, [crops[:3]])
    assert result.embeddings.shape == (3, 512)


@pytest.mark.parametrize("name, protocol", BACKENDS)
def test_a_stopped_server(small_repository, server_processes, crops, name, protocol):
    server = start_small(small_repository, server_processes, models=[CPU_MODEL], exit_timeout=1)
    with server:
        url = getattr(server, f"{protocol}_url")
        backend = get_backend(name, url=url)
        assert backend.embed_batch(crops[:2]).shape == (2, 512)
        # Triton drains for at most exit_timeout (open HTTP keep-alive connections count), then exits
        assert server.stop() is not None
        assert not server.alive()
        with pytest.raises(BackendUnavailableError) as during:
            backend.embed_batch(crops[:2])
        backend.close()
    assert str(during.value).startswith(f"Triton at {protocol}://{url} is not reachable (inference: ")
    with pytest.raises(BackendUnavailableError) as connecting:
        get_backend(name, url=url)
    assert str(connecting.value).startswith(f"Triton at {protocol}://{url} is not reachable (health check: ")
    assert connecting.value.hint == "start one with: photodedup serve --engine triton (see docs/TRITON.md)"


def test_a_server_that_dies_reports_its_output(small_repository, server_processes, tmp_path):
    broken = tmp_path / "repo"
    (broken / CPU_MODEL / "1").mkdir(parents=True)
    (broken / CPU_MODEL / "config.pbtxt").write_text((small_repository / CPU_MODEL / "config.pbtxt").read_text())
    (broken / CPU_MODEL / "1" / "model.py").write_text(
        (small_repository / CPU_MODEL / "1" / "model.py").read_text())  # no model.onnx, no metadata.json
    server = start_small(broken, server_processes)
    with pytest.raises(BackendUnavailableError) as error:
        with server:
            pass
    assert str(error.value).startswith("tritonserver exited with code 1 before it was ready; its output:\n")
    assert "metadata.json" in str(error.value)
    assert not server.alive()
