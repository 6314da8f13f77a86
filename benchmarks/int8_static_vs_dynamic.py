"""Static (QDQ, calibrated) vs dynamic int8 quantisation of the ViT-B/32 export, side by side.

    PYTHONPATH=. .venv/bin/python benchmarks/int8_static_vs_dynamic.py [--weights random] [--repeats 3]

Prints images/s at batch 32 (median of --repeats) and the minimum cosine to the fp32 export on 32
photo crops. Why dynamic int8 is what `export-onnx --precision int8` makes: see docs/DECISIONS.md.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from photodedup.export_onnx import export_onnx
from photodedup.exports import sample_crops, session_options


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="random")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    crops = sample_crops(32)
    fp32 = export_onnx(args.weights, precision="fp32") / "model.onnx"
    dynamic = export_onnx(args.weights, precision="int8") / "model.onnx"
    work = Path(tempfile.mkdtemp(prefix="photodedup-int8-"))
    name = ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]).get_inputs()[0].name

    class Calibration(CalibrationDataReader):
        def __init__(self) -> None:
            self.batches = iter([{name: crops[i : i + 8]} for i in range(0, len(crops), 8)])

        def get_next(self):
            return next(self.batches, None)

    quant_pre_process(str(fp32), str(work / "pre.onnx"), skip_symbolic_shape=True)
    static = work / "static.onnx"
    quantize_static(str(work / "pre.onnx"), str(static), Calibration(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                    op_types_to_quantize=["MatMul", "Gemm", "Conv"])

    def run(path: Path) -> tuple[float, np.ndarray]:
        session = ort.InferenceSession(str(path), session_options(), providers=["CPUExecutionProvider"])
        out = session.run(None, {name: crops})[0]  # warm-up
        rates = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            out = session.run(None, {name: crops})[0]
            rates.append(len(crops) / (time.perf_counter() - start))
        return statistics.median(rates), out

    _, reference = run(fp32)
    for label, path in [("dynamic int8 (export-onnx)", dynamic), ("static QDQ int8, calibrated", static)]:
        rate, out = run(path)
        cosine = np.sum(out * reference, 1) / np.linalg.norm(out, axis=1) / np.linalg.norm(reference, axis=1)
        print(f"{label:<30} {rate:6.1f} images/s at batch 32, min cosine to fp32 {cosine.min():.5f}")


if __name__ == "__main__":
    main()
