"""Scan throughput: the local engine (worker processes) against the Ray engine (Ray tasks), 1 and 2 workers.

    PYTHONPATH=. nice .venv/bin/python benchmarks/ray_scale.py --originals 40 --megapixels 6 --rounds 3
    PYTHONPATH=. nice .venv/bin/python benchmarks/ray_scale.py --writer-only

Generates the sample library once, then scans it into a fresh catalog per measurement, the configurations
interleaved round by round (the machine is shared: compare the ratios within a round). The Ray runtime is
started before each Ray measurement and its start-up time is shown apart from the scan throughput
(``scan`` takes an open executor, so its time excludes it). Prints images/s read per configuration,
the Ray/local ratios, and the per-worker rate a cluster projection uses.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from photodedup.executor import LocalExecutor, RayExecutor
from photodedup.sample_library import make_library
from photodedup.scan import scan


def measure(library: Path, engine: str, workers: int, tmp: Path) -> tuple[float, float, int]:
    """(images/s, start-up seconds, files) of one scan into a fresh catalog."""
    started = time.perf_counter()
    executor = LocalExecutor(workers) if engine == "local" else RayExecutor(workers=workers)
    startup = time.perf_counter() - started
    try:
        summary = scan([library], catalog=tmp / f"{engine}-{workers}-{time.time_ns()}.sqlite", engine=executor)
    finally:
        executor.close()
    return summary.images_per_second, startup, summary.new


def writer_rate(tmp: Path, rows: int = 6400) -> dict[str, float]:
    """Rows a second the one writer (the driver) commits, in scan's batches of 64: with a model crop and
    a thumbnail (sizes as measured on the sample library: 30 KB and 15 KB), and with an embedding
    instead of the crop (``scan --embed``)."""
    import numpy as np

    from photodedup.catalog import Catalog
    from photodedup.scan import WRITE_BATCH

    crop, thumb = np.random.default_rng(0).bytes(30_000), np.random.default_rng(1).bytes(15_000)
    out = {}
    for mode in ("crops", "embeddings"):
        with Catalog(tmp / f"writer-{mode}.sqlite") as cat:
            cat.register_model("m", weights="w", is_random=True, dim=512)
            started = time.perf_counter()
            for start in range(0, rows, WRITE_BATCH):
                batch = [{"path": f"/p/{mode}/{k}.jpg", "root": "/p", "status": "ok", "size": 1, "mtime_ns": 1,
                          "md5": f"{k:032x}", "phash": k, "dhash": k, "scanned_at": 0.0}
                         for k in range(start, start + WRITE_BATCH)]
                paths = [r["path"] for r in batch]
                if mode == "crops":
                    cat.record_files(batch, crops={p: ("spec", crop) for p in paths},
                                     thumbs=dict.fromkeys(paths, thumb))
                else:
                    ids = cat.record_files(batch, thumbs=dict.fromkeys(paths, thumb))
                    vectors = np.ones((len(paths), 512), np.float32)
                    cat.add_embeddings("m", [ids[p] for p in paths], vectors, backend="b")
            out[mode] = rows / (time.perf_counter() - started)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--originals", type=int, default=40)
    parser.add_argument("--megapixels", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--writer-only", action="store_true", help="only the driver's catalog write rate")
    args = parser.parse_args()
    if args.writer_only:
        with tempfile.TemporaryDirectory() as name:
            rates = writer_rate(Path(name))
        print("one writer (driver) commits: " + "; ".join(f"with {k}: {v:.0f} rows/s" for k, v in rates.items()))
        return
    counts = [int(w) for w in args.workers.split(",")]
    configs = [(engine, w) for w in counts for engine in ("local", "ray")]
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        library = tmp / "lib"
        make_library(library, originals=args.originals, megapixels=args.megapixels, seed=0)
        rates: dict[tuple[str, int], list[float]] = {c: [] for c in configs}
        startups: list[float] = []
        for round_ in range(1, args.rounds + 1):
            line = []
            for engine, workers in configs:
                rate, startup, files = measure(library, engine, workers, tmp)
                rates[(engine, workers)].append(rate)
                if engine == "ray":
                    startups.append(startup)
                line.append(f"{engine}x{workers} {rate:.1f}")
            ratios = ", ".join(f"ray/local at {w}: {rates[('ray', w)][-1] / rates[('local', w)][-1]:.2f}"
                               for w in counts)
            print(f"round {round_} ({files} files, images/s): {'; '.join(line)}; {ratios}", flush=True)
    median = {c: statistics.median(v) for c, v in rates.items()}
    print("median images/s: " + "; ".join(f"{e}x{w} {median[(e, w)]:.1f}" for e, w in configs))
    for w in counts:
        per_round = statistics.median(r / loc for r, loc in zip(rates[("ray", w)], rates[("local", w)], strict=True))
        print(f"ray/local with {w} worker(s): {median[('ray', w)] / median[('local', w)]:.2f} "
              f"(median of the per-round ratios {per_round:.2f})")
    if len(counts) > 1:
        lo, hi = counts[0], counts[-1]
        for engine in ("local", "ray"):
            print(f"{engine}: {hi} workers / {lo} = {median[(engine, hi)] / median[(engine, lo)]:.2f}x")
    print(f"Ray runtime start-up (not in the rates): median {statistics.median(startups):.1f}s")
    print(f"per-worker rate (ray, 1 worker): {median[('ray', counts[0])] / counts[0]:.1f} images/s")


if __name__ == "__main__":
    main()
