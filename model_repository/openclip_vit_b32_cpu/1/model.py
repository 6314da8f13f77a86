"""Triton Python-backend model: the exported OpenCLIP image tower through onnxruntime on CPU.

``photodedup triton-config`` copies this file to ``model_repository/openclip_vit_b32_cpu/1/model.py``.
It runs inside Triton's Python backend stub, so it imports nothing from photodedup: it reads what
it needs from the files beside it (``model.onnx``, ``metadata.json``, ``preprocess.json``) and from
its ``config.pbtxt`` (passed in ``args["model_config"]``).

Triton's dynamic batcher hands ``execute`` several requests at once; they are joined into one
onnxruntime call and the rows are split back per request, so batching on the server is real.
"""

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils

_NUMPY = {"TYPE_UINT8": np.uint8, "TYPE_FP32": np.float32}


class TritonPythonModel:
    """One instance per Triton model instance (``instance_group``), each with its own session."""

    def initialize(self, args):
        config = json.loads(args["model_config"])
        version_dir = Path(args["model_repository"]) / args["model_version"]
        metadata = json.loads((version_dir / "metadata.json").read_text())
        self.preprocess = json.loads((version_dir / "preprocess.json").read_text())
        self.input_name = metadata["input_name"]
        self.output_name = metadata["output_name"]
        (config_input,) = config["input"]
        (config_output,) = config["output"]
        if (config_input["name"], config_output["name"]) != (self.input_name, self.output_name):
            raise pb_utils.TritonModelException(
                f"config.pbtxt tensors ({config_input['name']}, {config_output['name']}) do not match "
                f"metadata.json ({self.input_name}, {self.output_name}); regenerate with photodedup triton-config")
        self.input_dtype = _NUMPY[config_input["data_type"]]
        if np.dtype(self.input_dtype).name != metadata["input_dtype"]:
            raise pb_utils.TritonModelException(
                f"config.pbtxt input is {config_input['data_type']} but the export takes {metadata['input_dtype']}")
        parameters = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(parameters.get("intra_op_thread_count", "0"))
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(version_dir / "model.onnx"), options, providers=["CPUExecutionProvider"])
        pb_utils.Logger.log_info(
            f"loaded {metadata.get('model_id')} ({metadata['input_dtype']} input, crop {self.preprocess.get('size')}) "
            f"with onnxruntime {ort.__version__} on CPU")

    def execute(self, requests):
        arrays = [pb_utils.get_input_tensor_by_name(request, self.input_name).as_numpy() for request in requests]
        try:
            batch = np.ascontiguousarray(np.concatenate(arrays), dtype=self.input_dtype)
            embeddings = self.session.run([self.output_name], {self.input_name: batch})[0]
        except Exception as error:  # noqa: BLE001 - every failure becomes an error response
            message = f"onnxruntime failed on a batch of {sum(len(a) for a in arrays)}: {error}"
            return [pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))
                    for _ in requests]
        responses = []
        start = 0
        for array in arrays:
            rows = np.ascontiguousarray(embeddings[start : start + len(array)], dtype=np.float32)
            start += len(array)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(self.output_name, rows)]))
        return responses

    def finalize(self):
        self.session = None
