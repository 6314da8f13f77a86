"""Our HTTP service under load: JPEG vs uint8 bodies at several concurrencies, against model-only speed.

    PYTHONPATH=. .venv/bin/python benchmarks/service_load.py --model-dir DIR [--concurrency 1,8,32]

Starts ``photodedup serve`` (default settings: max batch 32, max queue delay 2 ms) on a free loopback
port and drives it with closed-loop clients sending one image per request (``photodedup.bench``'s load
generator and ``/metrics`` reader), JPEG and uint8 bodies at each concurrency. Then, side by side, it
alternates ``--repeats`` times: the onnx backend in this process, one thread, at the batch size the
service's batcher formed at the highest concurrency (the model-only ceiling; the service idles), and
the service with uint8 at that concurrency; it compares the medians. Client, server and model share
this machine's CPUs. "model busy" is the share of the wall time the service's model was running (from
its ``/metrics``): unlike images/s it does not move when other programs take CPU, so it shows what the
service itself costs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import httpx
from rich.console import Console

from photodedup.bench import BenchSettings, Target, run_targets, server_snapshotter
from photodedup.bench.compare import local_service
from photodedup.bench.report import table
from photodedup.exports import resolve_model_dir


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None, help="ONNX export [default: the default export]")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--duration", type=float, default=15.0, help="most seconds measured per configuration")
    parser.add_argument("--window", type=float, default=3.0)
    parser.add_argument("--repeats", type=int, default=3, help="alternated model-only / service pairs")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = parser.parse_args()

    model_dir = resolve_model_dir(args.model_dir)
    concurrency = tuple(int(c) for c in args.concurrency.split(","))
    settings = BenchSettings(batch_sizes=(1,), duration=args.duration, window=args.window, model_dir=model_dir)
    rows: list[dict] = []
    pairs: list[tuple[dict, dict]] = []
    top = max(concurrency)
    with tempfile.TemporaryDirectory(prefix="photodedup-service-load-") as scratch:
        with local_service(model_dir, Path(scratch)) as url:
            targets = {payload: Target(f"service {payload}", "http-service", {"url": url, "payload": payload},
                                       payload, server_snapshotter) for payload in ("jpeg", "uint8")}
            for target in targets.values():
                for level in concurrency:
                    rows.append(_measure_service(url, target, replace(settings, concurrency=(level,))))
            loaded = next(r for r in rows if r["payload"] == "uint8" and r["concurrency"] == top)
            formed = max(1, round(loaded.get("server_batch") or 1))
            # side by side: model-only (service idle) and the service, alternated, medians compared
            model_only = Target(f"onnx model-only b{formed}", "onnx", {"model_dir": model_dir}, "in-process")
            for _ in range(args.repeats):
                alone = run_targets([model_only], replace(settings, concurrency=(1,), batch_sizes=(formed,))).rows[0]
                served = _measure_service(url, targets["uint8"], replace(settings, concurrency=(top,)))
                pairs.append((alone, served))
                rows += [alone, served]

    Console().print(table(rows, title="The service under load, and the model alone at the batch it formed"))
    ceiling = statistics.median(alone["images_per_second"] for alone, _ in pairs)
    service = statistics.median(served["images_per_second"] for _, served in pairs)
    ratios = [served["images_per_second"] / alone["images_per_second"] for alone, served in pairs]
    print(f"\nuint8, concurrency {top}, {formed} images per model call, {len(pairs)} alternated pairs: "
          f"service median {service:.1f} img/s, onnx model-only at batch {formed} median {ceiling:.1f} img/s, "
          f"ratio of medians {service / ceiling:.2f} (per pair: {', '.join(f'{r:.2f}' for r in ratios)}); "
          f"model busy median {statistics.median(served['model_busy'] for _, served in pairs):.0%}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "ratios": ratios}, indent=1, default=str) + "\n")


def _measure_service(url: str, target: Target, settings: BenchSettings) -> dict:
    before, started = _inference_seconds(url), time.perf_counter()
    row = run_targets([target], settings).rows[0]
    # the share of the wall time the model was running: robust to other load on the machine
    row["model_busy"] = (_inference_seconds(url) - before) / (time.perf_counter() - started)
    return row


def _inference_seconds(url: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith("photodedup_inference_seconds_sum"))



if __name__ == "__main__":
    main()
