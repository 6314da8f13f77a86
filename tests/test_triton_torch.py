"""The torch variant of the Triton model (``openclip_vit_b32_torch``): its config, and the real
tritonserver (nvidia-pytriton's) running it here with ``KIND_CPU`` instances on the CPU; on a GPU the
same model.py runs on ``KIND_GPU`` instances (benchmarks/gpu_check.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from photodedup.backends import get_backend
from photodedup.exports import sample_crops
from photodedup.gpu import cosine_rows
from photodedup.triton import config as tc
from photodedup.triton.config import TORCH_MODEL, TritonSettings, parse_config
from photodedup.triton_config import triton_config

ROOT = Path(__file__).resolve().parent.parent
mc = tc.mc


def test_torch_variant_needs_no_export_and_says_how_to_build_the_model(tmp_path):
    options = TritonSettings(max_batch_size=256, instance_count=4, weights="random", seed=3, torch_precision="bf16",
                            torch_mode="eager")
    summary = triton_config(None, tmp_path / "repo", variants=(TORCH_MODEL,), options=options)
    assert summary.model_id == "ViT-B-32/random-seed3" and list(summary.variants) == [TORCH_MODEL]
    config = parse_config(tmp_path / "repo" / TORCH_MODEL / "config.pbtxt")
    assert (config.name, config.backend, config.max_batch_size) == (TORCH_MODEL, "python", 256)
    (group,) = config.instance_group
    assert (group.count, group.kind) == (4, mc.ModelInstanceGroup.KIND_GPU)
    params = {key: value.string_value for key, value in config.parameters.items()}
    assert params == {"weights": "random", "seed": "3", "precision": "bf16", "mode": "eager", "device": "cuda",
                      "model_id": "ViT-B-32/random-seed3", "weights_sha256": ""}
    assert config.HasField("dynamic_batching") and not config.model_warmup
    (tensor_in,), (tensor_out,) = config.input, config.output
    assert (tensor_in.name, tensor_in.data_type, list(tensor_in.dims)) == ("images", mc.TYPE_UINT8, [224, 224, 3])
    assert (tensor_out.name, list(tensor_out.dims)) == ("embeddings", [512])
    model_py = tmp_path / "repo" / TORCH_MODEL / "1" / "model.py"
    assert model_py.read_text() == (ROOT / "photodedup" / "triton" / "torch_model.py").read_text()
    assert sorted(p.name for p in model_py.parent.iterdir()) == ["model.py"]


def test_dynamic_batching_off_and_cpu_instances(tmp_path):
    options = TritonSettings(dynamic_batching=False, torch_device="cpu", instance_count=2, weights="random")
    triton_config(None, tmp_path / "repo", variants=(TORCH_MODEL,), options=options)
    config = parse_config(tmp_path / "repo" / TORCH_MODEL / "config.pbtxt")
    assert not config.HasField("dynamic_batching")
    (group,) = config.instance_group
    assert (group.count, group.kind) == (2, mc.ModelInstanceGroup.KIND_CPU)


def test_cli_writes_the_torch_variant(tmp_path):
    from helpers import run_cli

    result = run_cli("triton-config", "--variant", TORCH_MODEL, "--weights", "random", "--out", str(tmp_path / "r"),
                     "--instances", "2", "--no-dynamic-batching", "--torch-precision", "bf16", "--json")
    assert result.returncode == 0, result.stderr
    config = parse_config(tmp_path / "r" / TORCH_MODEL / "config.pbtxt")
    assert config.instance_group[0].count == 2 and not config.HasField("dynamic_batching")
    assert config.parameters["precision"].string_value == "bf16"


@pytest.mark.slow
def test_real_tritonserver_runs_the_torch_variant_over_http_and_grpc(tmp_path, server_processes):
    """Two KIND_CPU instances, fp32 eager on the CPU: the embeddings equal torch-local's (cosine >= 0.9999;
    the same PyTorch graph, only the batch composition differs)."""
    from helpers import cli_command

    repository = tmp_path / "repo"
    options = TritonSettings(max_batch_size=8, instance_count=2, weights="random", torch_device="cpu",
                            torch_precision="fp32", torch_mode="eager")
    triton_config(None, repository, variants=(TORCH_MODEL,), options=options)
    http, grpc, metrics = (server_processes.free_port() for _ in range(3))
    cmd = cli_command("serve", "--engine", "triton", "--model-repository", repository,
                      "--http-port", http, "--grpc-port", grpc, "--metrics-port", metrics)
    # one thread an instance (two instances, two cores): an OpenMP thread waiting for a busy core spins
    server = server_processes.start(cmd, f"http://127.0.0.1:{http}/v2/models/{TORCH_MODEL}/ready", timeout=300,
                                    env={"OMP_NUM_THREADS": "1"})
    crops = sample_crops(5, seed=4)
    local = get_backend("torch-local", weights="random", precision="fp32")
    want = local.embed_batch(crops)
    local.close()
    for name, url in (("triton-http", f"127.0.0.1:{http}"), ("triton-grpc", f"127.0.0.1:{grpc}")):
        backend = get_backend(name, url=url, model=TORCH_MODEL)
        try:
            assert backend.model_id == "ViT-B-32/random-seed0" and backend.max_batch_size == 8
            got = backend.embed_batch(crops)
            assert got.shape == (5, 512) and got.dtype == np.float32
            assert cosine_rows(got, want).min() >= 0.9999
        finally:
            backend.close()
    server.stop()
