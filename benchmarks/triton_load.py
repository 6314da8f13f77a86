"""Local Triton (HTTP and gRPC) against our service and the in-process onnx backend, same load.

    PYTHONPATH=. .venv/bin/python benchmarks/triton_load.py --model-dir DIR --concurrency 1,8,32

Starts ``photodedup serve`` and the local tritonserver (the CPU Python-backend variant, the one that
runs on a machine without a GPU) on the same export, then drives every target with the same closed
loop of single-image uint8 requests (``photodedup.bench``: the same code as ``photodedup bench
--all``) and prints images/s, latency and, for the servers, where the time went per request
(Triton's statistics extension: queue, compute input, compute infer, compute output; and images
per model execution, which shows the dynamic batcher at work).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console

from photodedup.bench import BenchSettings
from photodedup.bench.compare import compare
from photodedup.bench.report import error_lines, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="ONNX export [default: the default export]")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--duration", type=float, default=15.0, help="most seconds measured per configuration")
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()

    settings = BenchSettings(concurrency=tuple(int(c) for c in args.concurrency.split(",")),
                             batch_sizes=(args.batch_size,), duration=args.duration, window=args.window,
                             model_dir=args.model_dir)
    report = compare(settings)
    rows = [row for row in report.rows if row["backend"] != "http-service jpeg"]  # same payload: uint8
    onnx = {row["concurrency"]: row["images_per_second"] for row in rows if row["backend"].startswith("onnx")}
    for row in rows:
        base = onnx.get(row["concurrency"])
        row["ratio"] = row["images_per_second"] / base if base else None
    Console().print(table(rows, title="Triton vs our service vs onnx (ratio: images/s over onnx at that concurrency)"))
    for line in error_lines(rows):
        print(line)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str) + "\n")



if __name__ == "__main__":
    main()
