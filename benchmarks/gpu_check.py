"""The GPU check: every GPU path of photodedup measured in one run (docs/GPU.md says how to run it).

Usage:
    PYTHONPATH=. python benchmarks/gpu_check.py --out DIR            # on a CUDA machine, ~6-8 min on an H200
    PYTHONPATH=. python benchmarks/gpu_check.py --out DIR --dry-run  # every step on the CPU at tiny sizes

Steps (``--only`` picks some): ``model`` (ViT-B/32 forward on device-resident uint8 crops per precision and
batch size; eager vs CUDA graphs vs torch.compile; the uint8-from-pinned-memory path; cosine of fp16/bf16
to fp32), ``decode`` (nvJPEG through torchvision vs PIL processes on 12 MP JPEGs; cosine of the resulting
embeddings), ``pipeline`` (12 MP JPEG files to embeddings; ``photodedup embed`` from stored crops),
``service`` (``photodedup serve --backend torch-local --device cuda`` under closed-loop load from client
processes at concurrency 1..256, uint8 and JPEG payloads, and its ratio to the model alone), ``triton``
(nvidia-pytriton's tritonserver with the torch Python-backend variant: instances 1/2/4, dynamic batching
on/off, HTTP vs gRPC).

Writes ``DIR/gpu_check.json`` ({"device", "rows": [{path, precision, batch_size, concurrency,
images_per_second, p50_ms, p99_ms, ...}], "checks", "skipped", "errors", ...}) and ``DIR/gpu_check.md``
(the table for docs/BENCHMARKS.md), rewritten after every step so a run cut short still leaves its rows.
A step that fails is recorded in "errors" and the next one runs. Weights are seeded random (no
pretrained weights can be fetched there): speed is the same, cosines compare two paths on the same model.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import math
import multiprocessing
import os
import platform
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STEPS = ("model", "decode", "pipeline", "service", "triton")
#: A step starts only with this much of ``--budget-s`` left, so the whole run ends inside the call's limit.
MIN_LEFT_S = {"model": 0, "decode": 20, "pipeline": 45, "service": 75, "triton": 100}
ROW_KEYS = ("path", "precision", "batch_size", "concurrency", "images_per_second", "p50_ms", "p99_ms")


class Sizes:
    """What each step runs: the GPU sizes, or tiny ones for ``--dry-run`` on the CPU."""

    def __init__(self, dry: bool) -> None:
        self.dry = dry
        self.device = "cpu" if dry else "cuda"
        # each precision's cosine to fp32 (fp16 matrix products crawl on a CPU: the dry run compares bf16)
        self.precisions = ("fp32", "bf16") if dry else ("fp32", "bf16", "fp16")
        # the precision of the paths after the first loop (modes, from host, pipeline, service, Triton), and the
        # precisions timed in that loop. A dry run checks plumbing, not speed: fp32 (bf16 forwards on a CPU without
        # bf16 take 3.5 s for 2 crops); its one bf16 work is what bf16 is checked by, the cosine above
        self.half = "fp32" if dry else "fp16"
        self.timed = ("fp32",) if dry else self.precisions
        self.from_host = ("fp32",) if dry else self.precisions[1:]
        self.min_calls = 1 if dry else 5
        # a dry run checks that each step runs, not its speed: one timed call, no warm-up call before it
        self.warm_up = not dry
        self.batches = (2,) if dry else (32, 128, 256, 512, 1024)
        self.fp32_batches = (2,) if dry else (256, 1024)
        self.mode_batches = (2,) if dry else (32, 256)
        self.host_batch = 2 if dry else 1024
        self.seconds = 0.0 if dry else 1.5          # timing per model configuration
        self.cosine_crops = 4 if dry else 64
        self.jpeg_size = (640, 480) if dry else (4000, 3000)   # 12 MP
        self.jpeg_distinct = 2 if dry else 16
        self.jpeg_count = 2 if dry else 512
        self.jpeg_batch = 2 if dry else 64
        self.small_photos = 4 if dry else 4096
        self.embed_batch = 4 if dry else 1024
        self.service_batch = 2 if dry else 16       # images per request
        self.concurrency = (2,) if dry else (1, 16, 64, 256)
        self.load_warmup, self.load_seconds = (0.0, 0.0) if dry else (1.0, 4.0)
        # a CPU request takes seconds, longer on a busy machine: a window of seconds may see none finish (and
        # then checks no answer), so the dry run's client loops make this many requests each, all counted
        self.load_requests = 1 if dry else 0
        self.triton_configs = ((1, True), (1, False)) if dry else ((1, True), (2, True), (4, True), (1, False))
        self.triton_concurrency = 2 if dry else 64
        self.max_batch = 4 if dry else 256           # the service's and Triton's largest model call
        self.compile_options = {"backend": "eager"} if dry else {}  # inductor takes minutes on 2 CPU cores


class Check:
    """Rows, checks and errors, written to ``out`` after every step."""

    def __init__(self, out: Path, sizes: Sizes, budget_s: float) -> None:
        self.out, self.sizes = out, sizes
        out.mkdir(parents=True, exist_ok=True)
        self.started = time.time()
        self.deadline = time.monotonic() + budget_s
        self.rows: list[dict] = []
        self.checks: dict[str, object] = {}
        self.skipped: list[str] = []
        self.errors: dict[str, str] = {}
        self.info = environment(sizes.device)

    def left(self) -> float:
        return self.deadline - time.monotonic()

    def row(self, path: str, precision: str, batch_size: int, concurrency: int, images_per_second: float,
            latencies_s: list[float] | None = None, **extra) -> dict:
        lat = np.asarray(latencies_s or [], dtype=np.float64) * 1000
        row = {"path": path, "precision": precision, "batch_size": batch_size, "concurrency": concurrency,
               "images_per_second": round(float(images_per_second), 1),
               "p50_ms": round(float(np.percentile(lat, 50)), 3) if lat.size else None,
               "p99_ms": round(float(np.percentile(lat, 99)), 3) if lat.size else None, **extra}
        self.rows.append(row)
        print(f"  {path:<44} {precision:<5} b{batch_size:<5} c{concurrency:<4} {row['images_per_second']:>10.1f} img/s"
              f"  p50 {row['p50_ms']} ms  p99 {row['p99_ms']} ms", flush=True)
        return row

    def write(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        data = {"device": self.info["device"], "dry_run": self.sizes.dry, "environment": self.info,
                "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.started)),
                "seconds": round(time.time() - self.started, 1), "rows": self.rows, "checks": self.checks,
                "goals": goals(self.rows, self.checks), "skipped": self.skipped, "errors": self.errors}
        (self.out / "gpu_check.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
        (self.out / "gpu_check.md").write_text(markdown(data))


def environment(device: str) -> dict:
    import torch
    import torchvision

    info = {"python": platform.python_version(), "torch": torch.__version__, "torchvision": torchvision.__version__,
            "numpy": np.__version__, "cpus": os.cpu_count(), "device": "cpu (dry run)"}
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(0)
        info.update(device=torch.cuda.get_device_name(0), memory_gib=round(props.total_memory / 2**30, 1),
                    multiprocessors=props.multi_processor_count, cuda=torch.version.cuda)
    return info


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_calls(fn, seconds: float, *, device: str, min_calls: int = 5, warm_up: bool = True) -> list[float]:
    """Call ``fn`` (after one warm-up call) until ``seconds`` have passed; each call's wall seconds."""
    if warm_up:
        fn()
        sync(device)
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < min_calls:
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return times


_BASE: list = []


def fresh_model():
    """A copy of one seeded random ViT-B/32 (creating one costs seconds; DeviceEncoder casts its copy)."""
    import copy

    from photodedup.model import load_model

    if not _BASE:
        _BASE.append(load_model("random"))
    return copy.deepcopy(_BASE[0])


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# -- step 1: the model ----------------------------------------------------------------------------------
def step_model(check: Check) -> None:
    import torch

    from photodedup.exports import sample_crops
    from photodedup.gpu import DeviceEncoder, cosine_rows

    s = check.sizes
    crops = sample_crops(s.cosine_crops, seed=0)
    pool = np.concatenate([crops] * math.ceil(max(s.batches) / len(crops)))[: max(s.batches)]
    device_pool = torch.from_numpy(pool).to(s.device)
    embeddings = {}
    compared = device_pool[: max(s.mode_batches)]  # what the modes are compared on, against eager
    for precision in s.precisions:
        encoder = DeviceEncoder.from_loaded(fresh_model(), device=s.device, precision=precision,
                                            mode="eager", chunk=max(s.batches), max_batch_size=max(s.batches))
        embeddings[precision] = encoder.embed(crops)
        with torch.inference_mode():
            if precision == s.half:
                reference = encoder.run(compared).cpu().numpy()
            for batch in (() if precision not in s.timed else s.fp32_batches if precision == "fp32" else s.batches):
                x = device_pool[:batch]
                times = timed_calls(lambda x=x, e=encoder: e.run(x), s.seconds, device=s.device,
                                min_calls=s.min_calls, warm_up=s.warm_up)
                check.row("model:forward:eager", precision, batch, 1, batch * len(times) / sum(times), times)
        del encoder
        free_memory()
    for precision in s.precisions[1:]:
        cosine = cosine_rows(embeddings[precision], embeddings["fp32"])
        check.checks[f"cosine_{precision}_vs_fp32"] = {"min": round(float(cosine.min()), 6),
                                                       "mean": round(float(cosine.mean()), 6)}
    best = s.half
    modes = ["cuda-graphs", "compile"]
    if not s.device.startswith("cuda"):
        modes.remove("cuda-graphs")
        check.skipped.append("model:forward:cuda-graphs (needs CUDA)")
    chunk = max(s.mode_batches)
    for mode in modes:
        if mode == "compile" and not s.dry and check.left() < 300:
            check.skipped.append("model:forward:compile (less than 5 minutes of the budget left)")
            continue
        started = time.perf_counter()
        encoder = DeviceEncoder.from_loaded(fresh_model(), device=s.device, precision=best, mode=mode,
                                            chunk=chunk, max_batch_size=chunk, compile_options=s.compile_options)
        with torch.inference_mode():  # the first call captures the graph or compiles (one per batch size)
            out = encoder.run(compared).cpu().numpy()
        check.checks[f"cosine_{mode}_vs_eager_{best}"] = round(float(cosine_rows(out, reference).min()), 6)
        check.checks[f"{mode}_setup_seconds"] = round(time.perf_counter() - started, 1)
        with torch.inference_mode():
            for batch in (s.mode_batches if mode == "cuda-graphs" else s.mode_batches[-1:]):
                x = device_pool[:batch]
                times = timed_calls(lambda x=x, e=encoder: e.run(x), s.seconds, device=s.device,
                                min_calls=s.min_calls, warm_up=s.warm_up)
                check.row(f"model:forward:{mode}", best, batch, 1, batch * len(times) / sum(times), times)
        del encoder
        free_memory()
    # the backend's own path: uint8 numpy crops -> pinned staging -> device -> embeddings back on the host
    for precision in s.from_host:
        mode = "cuda-graphs" if s.device.startswith("cuda") else "eager"
        encoder = DeviceEncoder.from_loaded(fresh_model(), device=s.device, precision=precision, mode=mode,
                                            max_batch_size=s.host_batch, chunk=min(256, s.host_batch))
        encoder.warm_up()
        host = pool[: s.host_batch].copy()
        times = timed_calls(lambda e=encoder, h=host: e.embed(h), s.seconds, device=s.device,
                                min_calls=s.min_calls, warm_up=s.warm_up)
        check.row(f"model:embed-from-host:{mode}", precision, s.host_batch, 1,
                  s.host_batch * len(times) / sum(times), times)
        del encoder
        free_memory()


# -- step 2: JPEG decode ------------------------------------------------------------------------------
def make_jpeg(args: tuple[int, int, int]) -> bytes:
    """A photo-like JPEG (smooth random colour field, edges, grain) of ``width x height``."""
    from PIL import Image

    width, height, seed = args
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((width, height), Image.Resampling.BICUBIC)
    array = np.asarray(image, dtype=np.int16)
    array = array + rng.integers(-12, 13, (height, 1, 1), dtype=np.int16) + rng.integers(-6, 7, array.shape,
                                                                                           dtype=np.int16)
    buffer = io.BytesIO()
    Image.fromarray(array.clip(0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def jpeg_set(check: Check, pool) -> list[bytes]:
    s = check.sizes
    distinct = list(pool.map(make_jpeg, [(*s.jpeg_size, seed) for seed in range(s.jpeg_distinct)]))
    return [distinct[i % len(distinct)] for i in range(s.jpeg_count)]


def step_decode(check: Check, blobs: list[bytes], pool) -> None:
    from photodedup.gpu import DeviceEncoder, JpegCropper, cosine_rows
    from photodedup.preprocess import DEFAULT_PREPROCESS
    from photodedup.vectors import decode_original

    s = check.sizes
    cropper = JpegCropper(DEFAULT_PREPROCESS, device=s.device)
    batches = [blobs[i : i + s.jpeg_batch] for i in range(0, len(blobs), s.jpeg_batch)]
    cropper.crops_on_device(batches[0])  # warm-up: nvJPEG handles, kernels
    sync(s.device)
    times = []
    start = time.perf_counter()
    for batch in batches:
        t = time.perf_counter()
        cropper.crops_on_device(batch)
        sync(s.device)
        times.append(time.perf_counter() - t)
    total = time.perf_counter() - start
    megapixels = round(s.jpeg_size[0] * s.jpeg_size[1] / 1e6, 1)
    check.row(f"decode:torchvision-{s.device}:{megapixels:g}MP", "uint8", s.jpeg_batch, 1, len(blobs) / total,
              times, note="bytes in memory -> 224 crops on the device, PIL header read included")
    # PIL, as `embed` decodes originals without a stored crop: reduced DCT scale, one process per core
    with tempfile.TemporaryDirectory() as folder:
        paths = []
        for index, blob in enumerate(blobs[: s.jpeg_distinct * 4]):
            path = Path(folder) / f"{index}.jpg"
            path.write_bytes(blob)
            paths.append(str(path))
        for workers in sorted({1, os.cpu_count() or 1}):
            jobs = [(p, DEFAULT_PREPROCESS) for p in paths]
            start = time.perf_counter()
            list(pool.map(decode_original, jobs) if workers > 1 else map(decode_original, jobs))
            check.row(f"decode:pil-draft-{workers}-processes:{megapixels:g}MP", "uint8", 1, workers,
                      len(paths) / (time.perf_counter() - start))
    # where the pixels differ: embeddings of device-decoded vs PIL-decoded crops of the same files
    distinct = blobs[: s.jpeg_distinct]
    _, device_crops, _ = cropper.crops(distinct)
    pil = np.stack([answer[0] for answer in map(decode_original, _write_all(distinct))])
    encoder = DeviceEncoder.from_loaded(fresh_model(), device=s.device, precision="fp32", mode="eager")
    cosine = cosine_rows(encoder.embed(device_crops), encoder.embed(pil))
    check.checks["cosine_torchvision_decode_vs_pil"] = {"min": round(float(cosine.min()), 6),
                                                        "mean": round(float(cosine.mean()), 6)}
    check.checks["mean_abs_pixel_difference_torchvision_vs_pil"] = round(
        float(np.abs(device_crops.astype(np.int16) - pil.astype(np.int16)).mean()), 3)
    del encoder
    free_memory()


def _write_all(blobs: list[bytes]) -> list[tuple[str, object]]:
    from photodedup.preprocess import DEFAULT_PREPROCESS

    folder = Path(tempfile.mkdtemp(prefix="gpu-check-"))
    jobs = []
    for index, blob in enumerate(blobs):
        (folder / f"{index}.jpg").write_bytes(blob)
        jobs.append((str(folder / f"{index}.jpg"), DEFAULT_PREPROCESS))
    return jobs


# -- step 3: pipelines ----------------------------------------------------------------------------------
def step_pipeline(check: Check, blobs: list[bytes], pool) -> None:
    from photodedup.backends import get_backend
    from photodedup.bench.pipeline import jpeg_to_embeddings
    from photodedup.embed import embed
    from photodedup.scan import scan

    s = check.sizes
    work = Path(tempfile.mkdtemp(prefix="gpu-check-pipeline-"))
    big = work / "big"
    big.mkdir()
    paths = []
    for index, blob in enumerate(blobs):
        (big / f"{index:05d}.jpg").write_bytes(blob)
        paths.append(str(big / f"{index:05d}.jpg"))
    backend = get_backend("torch-local", weights="random", device=s.device, precision=s.half,
                          max_batch_size=s.max_batch, warm_up=True)
    try:
        megapixels = round(s.jpeg_size[0] * s.jpeg_size[1] / 1e6, 1)
        for decoder in ("torchvision", "pil"):
            row = jpeg_to_embeddings(paths, backend, decoder, batch_size=s.jpeg_batch)
            check.row(f"pipeline:jpeg-{megapixels:g}MP-files:{decoder}-decode", backend.precision, s.jpeg_batch, 1,
                      row.images_per_second, stages={k: round(v, 2) for k, v in row.stages.items()})
    finally:
        backend.close()
    # `photodedup embed` from the crops `scan` stored, torch-local on the device
    small = work / "small"
    small.mkdir()
    for index, blob in enumerate(pool.map(make_jpeg, [(320, 240, 1000 + i) for i in range(s.small_photos)])):
        (small / f"{index:05d}.jpg").write_bytes(blob)
    catalog = work / "catalog.sqlite"
    scanned = scan([small], catalog=catalog, workers=os.cpu_count())
    check.checks["scan_images_per_second_small_photos"] = round(scanned.files / max(scanned.seconds, 1e-9), 1)
    backend = get_backend("torch-local", weights="random", device=s.device, precision=s.half,
                          max_batch_size=s.embed_batch, warm_up=True)
    try:
        for decode in ("torchvision", "pil"):  # torchvision: what `auto` picks on a GPU
            _forget_embeddings(catalog)
            summary = embed(backend, catalog=catalog, batch_size=s.embed_batch, decode=decode)
            check.row(f"pipeline:embed-stored-crops:{summary.decoder.replace(' ', '-')}", backend.precision,
                      s.embed_batch, 1, summary.images_per_second, images=summary.embedded,
                      timings={k: round(v, 3) for k, v in summary.timings.items()})
    finally:
        backend.close()
        free_memory()


def _forget_embeddings(catalog: Path) -> None:
    import sqlite3

    with sqlite3.connect(catalog) as conn:
        conn.execute("DELETE FROM embeddings")


# -- closed-loop load from client processes (service and Triton) ---------------------------------------------
_CLIENT: dict = {}


def _client_init(spec: dict, batch: int, ready) -> None:
    from photodedup.backends import get_backend
    from photodedup.exports import sample_crops

    _CLIENT["backend"] = get_backend(spec["name"], **spec["options"])
    _CLIENT["crops"] = sample_crops(batch * 4, seed=7)
    _CLIENT["batch"] = batch
    ready.put(os.getpid())


def _client_run(threads: int, start_at: float, warmup: float, seconds: float, requests: int = 0) -> dict:
    """``threads`` closed loops from wall time ``start_at``: the requests that finish inside the window
    (after the warm-up) are counted, with their latencies; with ``requests``, each loop makes that many
    and every one counts (the window is ignored)."""
    backend, crops, batch = _CLIENT["backend"], _CLIENT["crops"], _CLIENT["batch"]
    measure_from, measure_to = start_at + warmup, start_at + warmup + seconds
    latencies: list[float] = []
    counts = {"images": 0, "errors": 0}
    first_error: list[str] = []
    lock = threading.Lock()

    def loop(index: int) -> None:
        i = index
        while (i - index < requests) if requests else time.time() < measure_to:
            part = crops[(i % 4) * batch : (i % 4 + 1) * batch]
            i += 1
            t0 = time.time()
            try:
                backend.embed_batch(part)
                ok = True
            except Exception as error:  # noqa: BLE001 - counted and reported, the load goes on
                ok = False
                if not first_error:
                    first_error.append(f"{type(error).__name__}: {error}")
                time.sleep(0.02)
            t1 = time.time()
            if requests or measure_from <= t1 <= measure_to:
                with lock:
                    if ok:
                        latencies.append(t1 - t0)
                        counts["images"] += len(part)
                    else:
                        counts["errors"] += 1

    time.sleep(max(0.0, start_at - time.time()))
    workers = [threading.Thread(target=loop, args=(k,)) for k in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return {"latencies": latencies, **counts, "first_error": first_error[0] if first_error else None,
            "seconds": time.time() - start_at}


def run_clients(spec: dict, batch: int, concurrencies, warmup: float, seconds: float, requests: int = 0):
    """For each concurrency: (images/s, latencies, errors, first error), from up to 16 client processes
    (``requests``: that many per loop, all counted, instead of a window of ``seconds``)."""
    processes = min(16, os.cpu_count() or 1, max(concurrencies))
    context = multiprocessing.get_context("spawn")  # the parent holds a CUDA context: never fork it
    ready = context.Queue()
    with context.Pool(processes, initializer=_client_init, initargs=(spec, batch, ready)) as pool:
        for _ in range(processes):  # every client has imported and made its backend: none starts late
            ready.get(timeout=600)
        for concurrency in concurrencies:
            used = min(processes, concurrency)
            threads = [concurrency // used + (1 if k < concurrency % used else 0) for k in range(used)]
            start_at = time.time() + 1.0
            results = pool.starmap(_client_run, [(t, start_at, warmup, seconds, requests) for t in threads],
                                   chunksize=1)
            latencies = [x for r in results for x in r["latencies"]]
            errors = sum(r["errors"] for r in results)
            message = next((r["first_error"] for r in results if r["first_error"]), None)
            took = max(r["seconds"] for r in results) if requests else seconds
            yield concurrency, sum(r["images"] for r in results) / took, latencies, errors, message


def model_only(check: Check) -> float | None:
    """The model-alone rate the service is compared with: the embed-from-host row at the service's precision."""
    rows = [r for r in check.rows
            if r["path"].startswith("model:embed-from-host") and r["precision"] == check.sizes.half]
    return max((r["images_per_second"] for r in rows), default=None)


# -- step 4: the service --------------------------------------------------------------------------------
def step_service(check: Check) -> None:
    from photodedup.bench.compare import local_service

    s = check.sizes
    args = ("--backend", "torch-local", "--device", s.device, "--precision", s.half, "--weights", "random",
            "--max-batch-size", str(s.max_batch), "--max-images", str(max(64, s.service_batch)))
    with local_service(None, check.out, 300, serve_args=args) as url:
        reference = model_only(check)
        for payload in ("uint8", "jpeg"):
            spec = {"name": "http-service", "options": {"url": url, "payload": payload}}
            for concurrency, rate, latencies, errors, message in run_clients(
                    spec, s.service_batch, s.concurrency, s.load_warmup, s.load_seconds, s.load_requests):
                check.row(f"service:torch-local-{s.device}:{payload}", s.half,
                          s.service_batch, concurrency, rate, latencies, errors=errors, first_error=message,
                          ratio_to_model_only=round(rate / reference, 3) if reference else None)


def _path() -> str:
    return os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))


# -- step 5: Triton ---------------------------------------------------------------------------------
def triton_repository(check: Check, folder: Path, *, instance_kind_cpu: bool = False) -> list[str]:
    """One model per (instances, dynamic batching), all the torch variant under distinct names."""
    from dataclasses import replace

    from photodedup.model import model_id_for
    from photodedup.triton import config as tc

    s = check.sizes
    base = tc.TritonSettings(max_batch_size=s.max_batch, preferred_batch_sizes=(s.max_batch // 2, s.max_batch),
                            weights="random", torch_device="cpu" if s.dry else "cuda", torch_precision=s.half,
                            torch_mode="auto")
    metadata = {**tc.TORCH_IO, "model_id": model_id_for("random")}
    names = []
    for instances, batching in s.triton_configs:
        name = f"torch_i{instances}_{'dynbatch' if batching else 'nobatch'}"
        config = tc.build_config(tc.TORCH_MODEL, metadata, replace(base, instance_count=instances,
                                                                    dynamic_batching=batching))
        config.name = name
        if instance_kind_cpu:  # a tritonserver that refuses GPU instances: CPU instances, the model on CUDA
            for group in config.instance_group:
                group.kind = tc.mc.ModelInstanceGroup.KIND_CPU
                del group.gpus[:]
        (folder / name / "1").mkdir(parents=True, exist_ok=True)
        (folder / name / "config.pbtxt").write_text(tc.render(config, metadata))
        tc.parse_config(folder / name / "config.pbtxt")
        (folder / name / "1" / "model.py").write_text((ROOT / "photodedup/triton/torch_model.py").read_text())
        names.append(name)
    return names


def step_triton(check: Check) -> None:
    from photodedup.bench.compare import free_port
    from photodedup.triton.server import TritonServer

    s = check.sizes
    extra = os.environ.get("PHOTODEDUP_TRITON_PYTHONPATH")  # e.g. a numpy<2 for the stub, if it needs one
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [extra, _path()]))
    server = None
    try:
        for attempt, cpu_kind in enumerate((False, True)):
            folder = Path(tempfile.mkdtemp(prefix="gpu-check-triton-"))
            names = triton_repository(check, folder, instance_kind_cpu=cpu_kind)
            ports = [free_port() for _ in range(3)]
            server = TritonServer(folder, http_port=ports[0], grpc_port=ports[1], metrics_port=ports[2], models=names)
            try:
                server.start().wait_ready(300)
                check.checks["triton_instance_kind"] = ("KIND_CPU (dry run)" if s.dry else
                                                        "KIND_CPU (model on CUDA)" if cpu_kind else "KIND_GPU")
                break
            except Exception as error:  # noqa: BLE001 - a server without GPU instances: try CPU instances
                (check.out / f"tritonserver-{attempt}.log").write_text(server.output(20000))
                server.stop()
                server = None
                if cpu_kind or s.dry:
                    raise
                check.checks["triton_gpu_instances_error"] = str(error)[-1500:]
        (check.out / "tritonserver.log").write_text(server.output(20000))
        reference = model_only(check)
        for name in names:
            for protocol, port in (("http", server.http_port), ("grpc", server.grpc_port)):
                spec = {"name": f"triton-{protocol}", "options": {"url": f"127.0.0.1:{port}", "model": name}}
                for concurrency, rate, latencies, errors, message in run_clients(
                        spec, s.service_batch, (s.triton_concurrency,), s.load_warmup, s.load_seconds,
                        s.load_requests):
                    check.row(f"triton:{name}:{protocol}", s.half, s.service_batch, concurrency,
                              rate, latencies, errors=errors, first_error=message,
                              ratio_to_model_only=round(rate / reference, 3) if reference else None)
                check.write()
    finally:
        if server is not None:
            (check.out / "tritonserver.log").write_text(server.output(20000))
            server.stop()
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved


# -- the report ---------------------------------------------------------------------------------------
GOALS = (
    ("model only, fp16/bf16, best batch", "model:forward", 25000),
    ("stored crops to embeddings through embed", "pipeline:embed-stored-crops:torchvision", 10000),
    ("12 MP JPEG files to embeddings with nvJPEG", "pipeline:jpeg-12MP-files:torchvision", 1000),
)


def goals(rows: list[dict], checks: dict) -> list[dict]:
    """The issue's goals against the rows (meaningful on a GPU only)."""
    out = []
    for label, prefix, target in GOALS:
        best = max((r["images_per_second"] for r in rows if r["path"].startswith(prefix)
                    and r["precision"] in ("fp16", "bf16")), default=None)
        out.append({"goal": f"{label} >= {target} images/s", "measured": best,
                    "met": None if best is None else best >= target})
    model = max((r["images_per_second"] for r in rows if r["path"].startswith("model:embed-from-host")
                 and r["precision"] == "fp16"), default=None)
    service = [r for r in rows if r["path"].startswith("service:") and r["concurrency"] == 64
               and r["images_per_second"]]
    best_service = max((r["images_per_second"] for r in service), default=None)
    out.append({"goal": "service at concurrency 64 >= 70% of model-only (fp16, from host)",
                "measured": round(best_service / model, 3) if best_service and model else None,
                "met": (best_service / model >= 0.7) if best_service and model else None})
    triton = max((r["images_per_second"] for r in rows if r["path"].startswith("triton:")), default=None)
    out.append({"goal": "Triton's best configuration within 10% of the service (concurrency 64)",
                "measured": round(triton / best_service, 3) if triton and best_service else None,
                "met": (triton >= 0.9 * best_service) if triton and best_service else None})
    for key in ("cosine_fp16_vs_fp32", "cosine_bf16_vs_fp32"):
        if isinstance(checks.get(key), dict):
            out.append({"goal": f"{key} >= 0.999", "measured": checks[key]["min"], "met": checks[key]["min"] >= 0.999})
    return out


def markdown(data: dict) -> str:
    env = data["environment"]
    lines = [f"### GPU check on {data['device']}" + (" (DRY RUN: CPU, tiny sizes; no GPU number)" if data["dry_run"]
                                                     else ""),
             "",
             f"{data['started']}, {data['seconds']} s; torch {env['torch']}, torchvision {env['torchvision']}, "
             f"Python {env['python']}, {env['cpus']} CPUs. Seeded random weights. "
             "Command: `PYTHONPATH=. python benchmarks/gpu_check.py --out DIR"
             + (" --dry-run" if data["dry_run"] else "") + "` (docs/GPU.md).", "",
             "| path | precision | batch | concurrency | images/s | p50 ms | p99 ms | notes |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | --- |"]
    for row in data["rows"]:
        notes = ", ".join(f"{k} {v}" for k, v in row.items() if k not in ROW_KEYS and v not in (None, 0, "")
                          and not isinstance(v, dict))
        lines.append(f"| {row['path']} | {row['precision']} | {row['batch_size']} | {row['concurrency']} | "
                     f"{row['images_per_second']:.1f} | {row['p50_ms'] if row['p50_ms'] is not None else ''} | "
                     f"{row['p99_ms'] if row['p99_ms'] is not None else ''} | {notes} |")
    lines += ["", "Checks: " + "; ".join(f"{k} {v}" for k, v in data["checks"].items()), ""]
    lines += ["| goal | measured | met |", "| --- | --- | --- |"]
    lines += [f"| {g['goal']} | {g['measured']} | {g['met'] if not data['dry_run'] else 'n/a (dry run)'} |"
              for g in data["goals"]]
    if data["skipped"]:
        lines += ["", "Skipped: " + "; ".join(data["skipped"])]
    if data["errors"]:
        last = {k: v.strip().splitlines()[-1] if v.strip() else "" for k, v in data["errors"].items()}
        lines += ["", "Errors: " + "; ".join(f"{k}: {v}" for k, v in last.items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--dry-run", action="store_true", help="every step on the CPU at tiny sizes")
    parser.add_argument("--only", default=",".join(STEPS), help=f"steps, comma-separated: {', '.join(STEPS)}")
    parser.add_argument("--budget-s", type=float, default=480, help="stop optional work (compile) near this")
    args = parser.parse_args(argv)
    import torch

    steps = [step.strip() for step in args.only.split(",") if step.strip()]
    unknown = sorted(set(steps) - set(STEPS))
    if unknown:
        parser.error(f"unknown steps {unknown}; choose from {', '.join(STEPS)}")
    if not args.dry_run and not torch.cuda.is_available():
        parser.error("PyTorch sees no CUDA device: run on a GPU machine, or pass --dry-run")
    sizes = Sizes(args.dry_run)
    if args.dry_run:  # beside other work (the test suite's other worker): one thread never waits for a second
        torch.set_num_threads(1)
        # and so in the processes it starts (the service, Triton's model stubs): an OpenMP thread that waits for
        # a busy core spins, 25-35% of those steps' CPU at load 12
        os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("PHOTODEDUP_HOME", tempfile.mkdtemp(prefix="gpu-check-home-"))
    check = Check(args.out, sizes, args.budget_s)
    print(f"GPU check on {check.info['device']}: {', '.join(steps)}", flush=True)
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=multiprocessing.get_context("spawn")) as pool:
        blobs: list[bytes] = []
        for step in steps:
            print(f"[{step}] {check.left():.0f} s of the budget left", flush=True)
            if check.left() < MIN_LEFT_S[step] and not args.dry_run:
                check.skipped.append(f"{step} (needs {MIN_LEFT_S[step]} s, {check.left():.0f} s of the budget left)")
                continue
            try:
                if step in ("decode", "pipeline") and not blobs:
                    blobs = jpeg_set(check, pool)
                if step == "model":
                    step_model(check)
                elif step == "decode":
                    step_decode(check, blobs, pool)
                elif step == "pipeline":
                    step_pipeline(check, blobs, pool)
                elif step == "service":
                    step_service(check)
                else:
                    step_triton(check)
            except Exception:  # noqa: BLE001 - recorded; the next step still runs
                check.errors[step] = traceback.format_exc(limit=6)
                print(check.errors[step], file=sys.stderr, flush=True)
            check.write()
    print((args.out / "gpu_check.md").read_text())
    return 1 if check.errors else 0


if __name__ == "__main__":
    sys.exit(main())
