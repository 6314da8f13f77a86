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

from photodedup.bench import BenchSettings
from photodedup.bench.compare import compare

COLUMNS = [("backend", "backend", "{}"), ("payload", "payload", "{}"), ("conc", "concurrency", "{}"),
           ("img/s", "images_per_second", "{:.1f}"), ("p50 ms", "p50_ms", "{:.0f}"), ("p99 ms", "p99_ms", "{:.0f}"),
           ("server ms", "server_ms", "{:.0f}"), ("queue", "queue_ms", "{:.0f}"),
           ("in", "compute_input_ms", "{:.1f}"), ("infer", "compute_infer_ms", "{:.0f}"),
           ("out", "compute_output_ms", "{:.1f}"), ("img/exec", "server_batch", "{:.1f}"),
           ("vs onnx", "ratio", "{:.2f}"), ("stable", "stable", "{}")]


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
    widths = [max(len(head), *(len(_cell(row.get(key), fmt)) for row in rows)) for head, key, fmt in COLUMNS]
    print("  ".join(head.rjust(w) for (head, _, _), w in zip(COLUMNS, widths, strict=True)))
    for row in rows:
        print("  ".join(_cell(row.get(key), fmt).rjust(w) for (_, key, fmt), w in zip(COLUMNS, widths, strict=True)))
        if row.get("error"):
            print(f"    error: {row['error']}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=str) + "\n")


def _cell(value, fmt: str) -> str:
    return "-" if value is None else fmt.format(value)


if __name__ == "__main__":
    main()
