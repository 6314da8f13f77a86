"""Scan throughput: the local engine (worker processes) against the Ray engine (Ray tasks) on a running runtime.

    PYTHONPATH=. nice .venv/bin/python benchmarks/ray_scale.py --originals 15 --megapixels 3 --rounds 5 \
        [--baseline REF] [--address ADDRESS] [--workers 2]
    PYTHONPATH=. nice .venv/bin/python benchmarks/ray_scale.py --writer-only

Generates the sample library once. Without ``--address`` a Ray runtime (``ray start --head --num-cpus
WORKERS``) is started before the first round and stopped after the last, so its start-up is in no rate:
the question is the engine's own cost against a runtime that is already running. Each measurement is a
fresh process (``scan`` of the library into a fresh catalog, its own timing: the local engine's worker
start and the Ray job's worker start both included), local and Ray alternated round by round, and with
``--baseline REF`` the same two for git revision REF (``git archive``; Ray runs its workers with that
tree on their path), so all see the same load. Prints images/s per configuration and the per-round
Ray/local ratios with their medians: on a shared machine compare ratios within a round. The first Ray scan
of this tree starts its warm workers (detached actors that outlive the job, ``executor.RayExecutor``); the
later rounds find them, as a user's next scan on a running cluster does.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from photodedup.sample_library import make_library  # noqa: E402

_SCAN = """
import json, sys
from photodedup.scan import scan
if __name__ == "__main__":
    folder, catalog, engine, workers, address = sys.argv[1:6]
    if engine == "ray":
        import ray
        from photodedup.executor import RayExecutor
        import os
        ray.init(address=address, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": os.environ["PYTHONPATH"]}})
        engine = RayExecutor(address=address)
    summary = scan([folder], catalog=catalog, engine=engine, workers=int(workers))
    print(json.dumps({"new": summary.new, "seconds": summary.seconds}))
"""


def measure(tree: Path, library: Path, engine: str, workers: int, catalog: Path, address: str) -> tuple[float, int]:
    """(images/s, files) of one scan by the code in ``tree`` in a fresh process."""
    env = dict(os.environ, PYTHONPATH=str(tree))
    result = subprocess.run([sys.executable, "-c", _SCAN, str(library), str(catalog), engine, str(workers), address],
                            cwd=tree, env=env, capture_output=True, text=True)
    if result.returncode:
        raise SystemExit(f"scan failed ({tree}, {engine}): {result.stderr[-2000:]}")
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    return summary["new"] / summary["seconds"], summary["new"]


def _wait_for(address: str, timeout: float = 120.0) -> None:
    """Until a driver can connect to the Ray runtime at ``address``."""
    probe = "import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); ray.shutdown()"
    deadline = time.monotonic() + timeout
    while subprocess.run([sys.executable, "-c", probe, address], capture_output=True).returncode:
        if time.monotonic() > deadline:
            raise SystemExit(f"no Ray runtime at {address} after {timeout:.0f}s")
        time.sleep(1)


def _stop(head: subprocess.Popen) -> None:
    """Stop the runtime this script started: its ``ray start --block`` and that process's group only."""
    import signal

    head.send_signal(signal.SIGTERM)
    try:
        head.wait(60)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(head.pid, signal.SIGKILL)  # what it started and left (its own process group)
    except ProcessLookupError:
        pass
    head.wait()


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
    parser.add_argument("--originals", type=int, default=15)
    parser.add_argument("--megapixels", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="local worker processes, and the CPUs of the Ray runtime this script starts")
    parser.add_argument("--address", help="a running Ray runtime [default: start one for the run]")
    parser.add_argument("--baseline", help="a git revision to measure beside this tree")
    parser.add_argument("--writer-only", action="store_true", help="only the driver's catalog write rate")
    args = parser.parse_args()
    if args.writer_only:
        with tempfile.TemporaryDirectory() as name:
            rates = writer_rate(Path(name))
        print("one writer (driver) commits: " + "; ".join(f"with {k}: {v:.0f} rows/s" for k, v in rates.items()))
        return
    from scan_speed import export_tree

    ray_bin = str(Path(sys.executable).with_name("ray"))
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        library = tmp / "lib"
        make_library(library, originals=args.originals, megapixels=args.megapixels, seed=0)
        trees = {"": ROOT}
        if args.baseline:
            trees[f" {args.baseline}"] = export_tree(args.baseline, tmp / "baseline")
        configs = [(label, engine) for label in trees for engine in ("local", "ray")]
        address, head = args.address, None
        if address is None:  # a runtime of our own, on a free port, stopped by its process id
            from photodedup.bench.compare import free_port

            port = free_port()
            os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a loopback runtime for this run: no token
            started = time.perf_counter()
            head = subprocess.Popen([ray_bin, "start", "--head", "--block", f"--port={port}",
                                     "--node-ip-address=127.0.0.1", f"--num-cpus={args.workers}",
                                     "--include-dashboard=false", f"--dashboard-port={free_port()}",
                                     "--object-store-memory=268435456",
                                     f"--ray-client-server-port={free_port()}", "--disable-usage-stats",
                                     f"--temp-dir={tmp / 'ray'}"],
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
            address = f"127.0.0.1:{port}"
        try:
            if head is not None:
                _wait_for(address)
                print(f"Ray runtime started in {time.perf_counter() - started:.1f}s (not in any rate)", flush=True)
            rates: dict[tuple[str, str], list[float]] = {c: [] for c in configs}
            for round_ in range(1, args.rounds + 1):
                order = configs if round_ % 2 else list(reversed(configs))
                for label, engine in order:
                    catalog = tmp / f"{engine}{label.strip()}-{round_}.sqlite"
                    rate, files = measure(trees[label], library, engine, args.workers, catalog, address)
                    rates[(label, engine)].append(rate)
                line = "; ".join(f"{engine}{label} {rates[(label, engine)][-1]:.1f}" for label, engine in configs)
                ratios = ", ".join(f"ray/local{label} {rates[(label, 'ray')][-1] / rates[(label, 'local')][-1]:.2f}"
                                   for label in trees)
                print(f"round {round_} ({files} files, images/s): {line}; {ratios}", flush=True)
        finally:
            if head is not None:
                _stop(head)
    print(f"\n{args.workers} workers, {files} files at {args.megapixels} MP")
    print("median images/s: " + "; ".join(f"{e}{label} {statistics.median(rates[(label, e)]):.1f}"
                                          for label, e in configs))
    for label in trees:
        ratio = statistics.median(r / loc for r, loc in zip(rates[(label, "ray")], rates[(label, "local")],
                                                             strict=True))
        print(f"ray/local{label}: {ratio:.2f} (median of the per-round ratios)")


if __name__ == "__main__":
    main()
