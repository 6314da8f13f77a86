"""Model-only throughput: torch eager fp32 vs onnxruntime fp32 / fp16 / int8, batch 1, 8 and 32.

Usage: PYTHONPATH=. .venv/bin/python benchmarks/model_only.py [--weights random] [--repeats 5]

Exports are made (or reused) under the photodedup home. Every variant runs on the same uint8 crops,
interleaved round by round so shared-machine noise hits all of them alike; the table shows the
median images/s over rounds and the ratio to torch eager. Accuracy: minimum cosine of each variant
to onnx fp32 on crops of the photographs shipped with scikit-image & co (sample_library's sources).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from photodedup.backends.onnx import OnnxBackend  # noqa: E402
from photodedup.backends.torch_local import TorchLocalBackend  # noqa: E402
from photodedup.export_onnx import export_onnx  # noqa: E402
from photodedup.preprocess import crop_from_source  # noqa: E402
from photodedup.sample_library import source_photos  # noqa: E402


def photo_crops(n: int) -> np.ndarray:
    crops = [crop_from_source(path, fast=False) for path in source_photos()]
    while len(crops) < n:
        crops += crops
    return np.stack(crops[:n])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default="random")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds per batch size")
    parser.add_argument("--batches", default="1,8,32")
    args = parser.parse_args()
    batch_sizes = [int(b) for b in args.batches.split(",")]

    variants = {"torch eager fp32": TorchLocalBackend(weights=args.weights)}
    for precision in ("fp32", "fp16", "int8"):
        variants[f"onnx {precision}"] = OnnxBackend(export_onnx(args.weights, precision=precision))
    crops = photo_crops(max(batch_sizes))

    reference = variants["onnx fp32"].embed_batch(crops)
    torch_ref = variants["torch eager fp32"].embed_batch(crops)
    cosines = {name: float(np.min(np.sum(b.embed_batch(crops) * reference, axis=1))) for name, b in variants.items()}
    cosines["torch eager fp32"] = float(np.min(np.sum(torch_ref * reference, axis=1)))

    rates: dict[tuple[str, int], list[float]] = {(name, b): [] for name in variants for b in batch_sizes}
    for batch in batch_sizes:
        x = crops[:batch]
        for backend in variants.values():  # warm-up
            backend.embed_batch(x)
        for _ in range(args.repeats):
            for name, backend in variants.items():
                loops = max(1, 8 // batch)
                start = time.perf_counter()
                for _ in range(loops):
                    backend.embed_batch(x)
                rates[(name, batch)].append(batch * loops / (time.perf_counter() - start))

    columns = " | ".join(f"batch {b} img/s (x torch)" for b in batch_sizes)
    print(f"| variant | {columns} | min cosine to onnx fp32 |")
    print("|" + "---|" * (len(batch_sizes) + 2))
    for name in variants:
        cells = []
        for b in batch_sizes:
            median = statistics.median(rates[(name, b)])
            base = statistics.median(rates[("torch eager fp32", b)])
            cells.append(f"{median:.1f} ({median / base:.2f}x)")
        print(f"| {name} | " + " | ".join(cells) + f" | {cosines[name]:.5f} |")
    print(f"\nweights: {args.weights}; {len(crops)} photo crops; {args.repeats} rounds; "
          f"onnxruntime threads: {variants['onnx fp32'].threads}")


if __name__ == "__main__":
    main()
