"""``embed --backend triton-*`` with one request in flight (before) and with N (after), side by side.

    PYTHONPATH=. .venv/bin/python benchmarks/triton_in_flight.py [--model-dir DIR] [--in-flight 1,4] [--rounds 3]

Starts the local tritonserver on the CPU (Python-backend) variant of an export (default: a
random-weight fp32 export, made once), scans a generated sample library once, then runs ``embed``
over a fresh copy of that catalog for each protocol and in-flight count, alternating rounds, and
prints images/s (median of the rounds) and the ratio to one request in flight.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import statistics
import tempfile
from pathlib import Path

from photodedup.backends.triton import TritonGrpcBackend, TritonHttpBackend
from photodedup.embed import embed
from photodedup.export_onnx import export_onnx
from photodedup.sample_library import make_library
from photodedup.scan import scan
from photodedup.triton.config import CPU_MODEL
from photodedup.triton.server import TritonServer
from photodedup.triton_config import triton_config


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="ONNX export [default: random fp32]")
    parser.add_argument("--in-flight", default="1,4")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--originals", type=int, default=8, help="sample-library originals (about 8 files each)")
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    counts = [int(n) for n in args.in_flight.split(",")]

    work = Path(tempfile.mkdtemp(prefix="triton-in-flight-"))
    try:
        model_dir = args.model_dir or export_onnx("random", precision="fp32", out=work / "export")
        repository = work / "repository"
        triton_config(model_dir, repository, variants=(CPU_MODEL,))
        make_library(work / "lib", originals=args.originals, megapixels=0.5, seed=0)
        catalog = work / "scanned.sqlite"
        scan([work / "lib"], catalog=catalog, workers=1)
        results: dict[tuple[str, int], list[float]] = {}
        with TritonServer(repository, http_port=free_port(), grpc_port=free_port(), metrics_port=free_port(),
                          models=[CPU_MODEL]) as server:
            protocols = {"triton-http": (TritonHttpBackend, server.http_url),
                         "triton-grpc": (TritonGrpcBackend, server.grpc_url)}
            for round_ in range(args.rounds):
                for name, (backend_class, url) in protocols.items():
                    for n in counts:
                        copy = work / f"run-{round_}-{name}-{n}.sqlite"
                        shutil.copyfile(catalog, copy)
                        with backend_class(url, CPU_MODEL, in_flight=n) as backend:
                            summary = embed(backend, catalog=copy, batch_size=args.batch_size, workers=1)
                        results.setdefault((name, n), []).append(summary.images_per_second)
        images = summary.embedded
        print(f"{images} images, batch {args.batch_size}, {args.rounds} rounds (median images/s)")
        print(f"{'backend':<12} {'in flight':>9} {'images/s':>9} {'vs 1':>6}")
        for name in protocols:
            base = statistics.median(results[(name, counts[0])])
            for n in counts:
                rate = statistics.median(results[(name, n)])
                print(f"{name:<12} {n:>9} {rate:>9.1f} {rate / base:>6.2f}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
