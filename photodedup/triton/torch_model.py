"""Triton Python-backend model: ViT-B/32 in PyTorch on the instance's GPU (``photodedup.gpu``).

``photodedup triton-config --variant openclip_vit_b32_torch`` copies this file to
``model_repository/openclip_vit_b32_torch/1/model.py``. Unlike the onnxruntime model beside it, it
imports photodedup: the stub's Python must find photodedup, torch and open_clip (``PYTHONPATH``), which
is how a GPU machine without NVIDIA's container runs a GPU model on nvidia-pytriton's tritonserver.

Each model instance (``instance_group``) is one stub process with its own copy of the model: on a
``KIND_GPU`` instance it runs on ``cuda:<the instance's device id>``, on a ``KIND_CPU`` one on the
``device`` parameter. The model is built from the ``weights``, ``seed``, ``precision`` and ``mode``
parameters and warmed up (every CUDA-graph bucket) before the instance reports ready. Triton's dynamic
batcher hands ``execute`` several requests; they are joined into one model call. Tensors cross the
stub through DLPack, never through numpy conversions.
"""

import json

import torch
import triton_python_backend_utils as pb_utils
from torch.utils.dlpack import from_dlpack, to_dlpack


class TritonPythonModel:
    def initialize(self, args):
        from photodedup.backends import get_backend

        config = json.loads(args["model_config"])
        params = {key: value["string_value"] for key, value in config.get("parameters", {}).items()}
        if args.get("model_instance_kind") == "GPU":
            device = f"cuda:{args['model_instance_device_id']}"
        else:
            device = params.get("device", "cpu")
        self.input_name = config["input"][0]["name"]
        self.output_name = config["output"][0]["name"]
        self.backend = get_backend(
            "torch-local", weights=params["weights"], seed=int(params.get("seed", "0")), device=device,
            precision=params.get("precision", "fp16"), mode=params.get("mode", "auto"),
            max_batch_size=int(config["max_batch_size"]), warm_up=True)
        expected = params.get("model_id")
        if expected and expected != self.backend.model_id:
            raise pb_utils.TritonModelException(
                f"config.pbtxt says model {expected} but the weights give {self.backend.model_id}; "
                "regenerate with photodedup triton-config")
        pb_utils.Logger.log_info(
            f"loaded {self.backend.model_id} on {device} ({self.backend.precision}, {self.backend.mode}) "
            f"with torch {torch.__version__}")

    def execute(self, requests):
        tensors = [from_dlpack(pb_utils.get_input_tensor_by_name(request, self.input_name).to_dlpack())
                   for request in requests]
        try:
            batch = tensors[0] if len(tensors) == 1 else torch.cat(tensors)
            embeddings = torch.from_numpy(self.backend.encoder.embed(batch))
        except Exception as error:  # noqa: BLE001 - every failure becomes an error response
            message = f"PyTorch failed on a batch of {sum(len(t) for t in tensors)}: {error}"
            return [pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))
                    for _ in requests]
        responses, start = [], 0
        for tensor in tensors:
            rows = embeddings[start : start + len(tensor)].contiguous()
            start += len(tensor)
            output = pb_utils.Tensor.from_dlpack(self.output_name, to_dlpack(rows))
            responses.append(pb_utils.InferenceResponse(output_tensors=[output]))
        return responses

    def finalize(self):
        if self.backend is not None:
            self.backend.close()
        self.backend = None
