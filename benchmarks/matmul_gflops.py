"""The fp32 compute ceiling of this CPU: one ViT-B/32-sized MatMul in onnxruntime and in torch.

    PYTHONPATH=. .venv/bin/python benchmarks/matmul_gflops.py [--repeats 20]

``[1600, 768] x [768, 3072]`` (a batch of 32 images x 50 tokens through an MLP's first layer), the
same inputs in both runtimes, in one run; prints GFLOP/s (2*M*K*N per multiply, median of the repeats).
ViT-B/32 costs about 8.8 GFLOP an image, so GFLOP/s / 8.8 bounds any fp32 runtime's images/s here.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

M, K, N = 1600, 768, 3072


def rate(run, repeats: int) -> float:
    run()  # warm up
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
    return 2 * M * K * N / statistics.median(seconds) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K), dtype=np.float32)
    b = rng.standard_normal((K, N), dtype=np.float32)

    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("MatMul", ["a", "b"], ["c"])], "matmul",
                              [helper.make_tensor_value_info("a", TensorProto.FLOAT, [M, K]),
                               helper.make_tensor_value_info("b", TensorProto.FLOAT, [K, N])],
                              [helper.make_tensor_value_info("c", TensorProto.FLOAT, [M, N])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    from photodedup.exports import session_options

    session = ort.InferenceSession(model.SerializeToString(), session_options(), providers=["CPUExecutionProvider"])
    onnx.checker.check_model(model)
    print(f"onnxruntime: {rate(lambda: session.run(None, {'a': a, 'b': b}), args.repeats):.0f} GFLOP/s")

    import torch

    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    with torch.inference_mode():
        print(f"torch:       {rate(lambda: ta @ tb, args.repeats):.0f} GFLOP/s ({torch.get_num_threads()} threads)")


if __name__ == "__main__":
    main()
