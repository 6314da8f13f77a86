"""``photodedup triton-config``: generated configs parse with Triton's schema and match the options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import run_cli

from photodedup.errors import BadInputError
from photodedup.triton import config as tc
from photodedup.triton.config import CPU_MODEL, CUDA_MODEL, TRT_MODEL, TritonSettings, build_config, parse_config
from photodedup.triton.server import servable_models
from photodedup.triton_config import triton_config

ROOT = Path(__file__).resolve().parent.parent
mc = tc.mc


def metadata(input_dtype: str = "uint8") -> dict:
    shape = [-1, 224, 224, 3] if input_dtype == "uint8" else [-1, 3, 224, 224]
    return {"model_id": "ViT-B-32/random-seed0", "sha256": "abc", "input_name": "images", "input_dtype": input_dtype,
            "input_shape": shape, "output_name": "embeddings", "output_shape": [-1, 512]}


def test_configs_parse_back_and_match_the_options(onnx_model_dir, tmp_path):
    options = TritonSettings(max_batch_size=48, max_queue_delay_us=500, preferred_batch_sizes=(4, 16),
                            instance_count=2, gpus=(0, 1), cpu_instance_count=3, cpu_threads=1,
                            trt_cache_dir="/cache/trt")
    summary = triton_config(onnx_model_dir, tmp_path / "repo", options=options)

    assert sorted(summary.variants) == sorted([CUDA_MODEL, TRT_MODEL, CPU_MODEL])
    configs = {name: parse_config(tmp_path / "repo" / name / "config.pbtxt") for name in summary.variants}
    for name, config in configs.items():
        assert config.name == name
        assert config.max_batch_size == 48
        assert list(config.dynamic_batching.preferred_batch_size) == [4, 16]
        assert config.dynamic_batching.max_queue_delay_microseconds == 500
        (tensor_in,), (tensor_out,) = config.input, config.output
        assert (tensor_in.name, tensor_in.data_type, list(tensor_in.dims)) == ("images", mc.TYPE_UINT8, [224, 224, 3])
        assert (tensor_out.name, tensor_out.data_type, list(tensor_out.dims)) == ("embeddings", mc.TYPE_FP32, [512])
        assert config.parameters["model_id"].string_value == "ViT-B-32/random-seed0"
        assert config.parameters["is_random"].string_value == "true"  # as the export's metadata.json says
        version = tmp_path / "repo" / name / "1"
        for file in ("model.onnx", "metadata.json", "preprocess.json"):
            assert (version / file).is_symlink() and (version / file).resolve() == (onnx_model_dir / file).resolve()

    for name in (CUDA_MODEL, TRT_MODEL):
        config = configs[name]
        assert (config.platform, config.backend) == ("onnxruntime_onnx", "onnxruntime")
        assert [(g.count, g.kind, list(g.gpus)) for g in config.instance_group] == [
            (2, mc.ModelInstanceGroup.KIND_GPU, [0]), (2, mc.ModelInstanceGroup.KIND_GPU, [1])]
        assert [(w.batch_size, w.inputs["images"].zero_data) for w in config.model_warmup] == [(1, True), (48, True)]
    (cuda,) = configs[CUDA_MODEL].optimization.execution_accelerators.gpu_execution_accelerator
    assert cuda.name == "cuda"
    (trt,) = configs[TRT_MODEL].optimization.execution_accelerators.gpu_execution_accelerator
    assert trt.name == "tensorrt"
    assert trt.parameters["precision_mode"] == "FP16"
    assert trt.parameters["trt_engine_cache_enable"] == "1"
    assert trt.parameters["trt_engine_cache_path"] == "/cache/trt"
    assert trt.parameters["trt_profile_min_shapes"] == "images:1x224x224x3"
    assert trt.parameters["trt_profile_opt_shapes"] == "images:16x224x224x3"
    assert trt.parameters["trt_profile_max_shapes"] == "images:48x224x224x3"

    cpu = configs[CPU_MODEL]
    assert (cpu.backend, cpu.platform) == ("python", "")
    assert [(g.count, g.kind) for g in cpu.instance_group] == [(3, mc.ModelInstanceGroup.KIND_CPU)]
    assert cpu.parameters["intra_op_thread_count"].string_value == "1"
    assert [w.batch_size for w in cpu.model_warmup] == [1]
    assert (tmp_path / "repo" / CPU_MODEL / "1" / "model.py").read_text() == (
        ROOT / "photodedup" / "triton" / "python_model.py").read_text()


def test_defaults_and_fp32_input():
    config = build_config(TRT_MODEL, metadata("float32"), TritonSettings(max_batch_size=12, warmup=False))
    assert list(config.dynamic_batching.preferred_batch_size) == [8]  # 16 and 32 are above the max batch
    assert [(g.count, list(g.gpus)) for g in config.instance_group] == [(1, [])]  # one group over all GPUs
    (tensor_in,) = config.input
    assert (tensor_in.data_type, list(tensor_in.dims)) == (mc.TYPE_FP32, [3, 224, 224])
    (trt,) = config.optimization.execution_accelerators.gpu_execution_accelerator
    assert trt.parameters["trt_profile_max_shapes"] == "images:12x3x224x224"
    assert not config.model_warmup


def test_copy_puts_real_files_in_the_repository(onnx_model_dir, tmp_path):
    triton_config(onnx_model_dir, tmp_path / "repo", variants=(CPU_MODEL,), copy=True)
    version = tmp_path / "repo" / CPU_MODEL / "1"
    assert not (version / "model.onnx").is_symlink()
    assert (version / "model.onnx").read_bytes()[:64] == (onnx_model_dir / "model.onnx").read_bytes()[:64]
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == [CPU_MODEL]


@pytest.mark.parametrize("text, problem", [
    ('name: "m"\nbackend: "python"\nmax_batch_size: 8\nbogus_field: 1\n', "bogus_field"),
    ('name: "m"\nbackend: "python"\ninput { name: "x" data_type: TYPE_NOPE dims: 3 }\n', "TYPE_NOPE"),
    ('name: "m"\nbackend: "python"\nmax_batch_size: 8\ndynamic_batching { preferred_batch_size: 16 }\n'
     'input { name: "x" data_type: TYPE_UINT8 dims: 3 }\noutput { name: "y" data_type: TYPE_FP32 dims: 2 }\n',
     "preferred batch size 16 is outside 1..8"),
    ('name: "m"\nmax_batch_size: 8\ninput { name: "x" data_type: TYPE_UINT8 dims: 3 }\n'
     'output { name: "y" data_type: TYPE_FP32 dims: 2 }\n', "neither platform nor backend is set"),
])
def test_invalid_configs_are_errors_here(text, problem):
    with pytest.raises(BadInputError) as error:
        parse_config(text)
    assert problem in str(error.value)


def test_only_models_with_an_available_backend_are_served(onnx_model_dir, tmp_path):
    triton_config(onnx_model_dir, tmp_path / "repo")
    load, skipped = servable_models(tmp_path / "repo", {"python"})
    assert load == [CPU_MODEL]
    assert skipped == {CUDA_MODEL: "this tritonserver has no 'onnxruntime' backend",
                       TRT_MODEL: "this tritonserver has no 'onnxruntime' backend"}
    assert servable_models(tmp_path / "repo", {"python", "onnxruntime"})[0] == [CUDA_MODEL, CPU_MODEL, TRT_MODEL]


def test_committed_repository_is_valid_and_matches_the_export_names(onnx_model_dir):
    exported = json.loads((onnx_model_dir / "metadata.json").read_text())
    for name in (CUDA_MODEL, TRT_MODEL, CPU_MODEL):
        config = parse_config(ROOT / "model_repository" / name / "config.pbtxt")
        assert config.name == name
        assert [t.name for t in config.input] == [exported["input_name"]]
        assert [t.name for t in config.output] == [exported["output_name"]]
    assert (ROOT / "model_repository" / CPU_MODEL / "1" / "model.py").read_text() == (
        ROOT / "photodedup" / "triton" / "python_model.py").read_text()


def test_cli_writes_the_repository(onnx_model_dir, tmp_path):
    result = run_cli("triton-config", "--model-dir", str(onnx_model_dir), "--out", str(tmp_path / "repo"),
                     "--variant", CPU_MODEL, "--max-batch-size", "16", "--preferred-batch-size", "4", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert list(summary["variants"]) == [CPU_MODEL]
    assert summary["variants"][CPU_MODEL]["max_batch_size"] == 16
    config = parse_config(tmp_path / "repo" / CPU_MODEL / "config.pbtxt")
    assert list(config.dynamic_batching.preferred_batch_size) == [4]


def test_cli_errors(onnx_model_dir, tmp_path):
    missing = run_cli("triton-config", "--model-dir", str(tmp_path / "nothing"), "--out", str(tmp_path / "repo"))
    assert missing.returncode == 7
    assert missing.stderr.splitlines()[0] == (
        f"Error: no ONNX export in {tmp_path / 'nothing'} (missing model.onnx, metadata.json, preprocess.json)")

    too_big = run_cli("triton-config", "--model-dir", str(onnx_model_dir), "--out", str(tmp_path / "repo"),
                      "--max-batch-size", "8", "--preferred-batch-size", "16")
    assert too_big.returncode == 3
    assert too_big.stderr.splitlines()[0] == "Error: preferred batch sizes [16] are outside 1..8 (the max batch size)"

    wrong_input = run_cli("triton-config", "--model-dir", str(onnx_model_dir), "--out", str(tmp_path / "repo"),
                          "--input", "fp32")
    assert wrong_input.returncode == 3
    assert wrong_input.stderr.splitlines()[0] == (
        f"Error: --input fp32 was asked for, but {onnx_model_dir.resolve()} takes uint8")
    assert not (tmp_path / "repo").exists()
