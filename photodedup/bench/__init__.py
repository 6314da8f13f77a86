"""``photodedup bench``: the same closed-loop load against any backend, one row per configuration.

``bench(BenchSettings(...))`` creates each backend once through the registry, then for every batch
size and concurrency runs ``load.run_load`` with photo-like crops, reads the server's own timing
before and after where the backend has one (Triton's statistics extension, our service's
``/metrics``) and returns a ``BenchReport`` of rows: images/s, requests/s, latency percentiles,
errors, bytes per image, client CPU and the server-side breakdown. A backend that cannot be created
or whose requests fail gives rows with errors, not a crash; only when every backend failed to start
is the first failure raised (so ``photodedup bench`` with nothing exported says what to run).

Modes: the model alone is an in-process backend (``onnx`` at fp32/fp16/int8, ``torch-local``) at
concurrency 1 and several batch sizes; a serving backend under load is any remote backend at
several concurrencies; ``bench.compare.compare`` (``bench --all``) starts our service and Triton and runs both;
``payloads.serialization_experiment`` needs no backend at all.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from photodedup import config
from photodedup.backends.base import Backend, RemoteBackend
from photodedup.bench import server_stats
from photodedup.bench.load import describe_error, run_load
from photodedup.bench.payloads import PAYLOADS, bytes_per_image, sample_crops, serialization_experiment
from photodedup.bench.stats import StabilityRule
from photodedup.errors import BadInputError, InferenceError, PhotodedupError
from photodedup.progress import ProgressCallback, no_progress

log = logging.getLogger(__name__)

IN_PROCESS = ("onnx", "torch-local")
#: The payload column of in-process rows: nothing crosses a boundary.
IN_PROCESS_PAYLOAD = "in-process"
#: What each remote backend can send; the first is its default.
REMOTE_PAYLOADS = {
    "http-service": ("jpeg", "uint8"),
    "triton-http": ("uint8", "fp32"),
    "triton-grpc": ("uint8", "fp32"),
    "triton-trt": ("uint8", "fp32"),
    "auto": ("jpeg", "uint8"),
}
#: Distinct crops requests are drawn from (a batch takes the next ``batch_size`` of them).
POOL_SIZE = 64


@dataclass
class BenchSettings:
    """What to measure. Durations in seconds; ``duration`` caps the measuring of one configuration."""

    backends: tuple[str, ...] = ("onnx",)
    concurrency: tuple[int, ...] = (1,)
    batch_sizes: tuple[int, ...] = (1,)
    payload: str | None = None
    precisions: tuple[str, ...] = ("fp32",)
    duration: float = 20.0
    window: float = 2.0
    warmup: float = 1.0
    url: str | None = None
    model_dir: Path | None = None
    weights: str = config.DEFAULT_WEIGHTS
    device: str = "cpu"  # torch-local's device (cuda: the GPU path, photodedup/gpu.py)
    rule: StabilityRule = field(default_factory=StabilityRule)

    def validate(self) -> None:
        if not self.backends:
            raise BadInputError("no backend given", hint="for example: --backend onnx")
        if any(c < 1 for c in self.concurrency) or any(b < 1 for b in self.batch_sizes):
            raise BadInputError("concurrency and batch sizes must be at least 1")
        if self.payload is not None and self.payload not in PAYLOADS:
            raise BadInputError(f"unknown payload {self.payload!r}", hint=f"choose one of: {', '.join(PAYLOADS)}")
        if self.duration <= 0 or self.window <= 0 or self.warmup < 0:
            raise BadInputError("--duration and --window must be positive, --warmup not negative")


@dataclass
class BenchReport:
    """Rows (one per backend, payload, batch size and concurrency) and the settings behind them."""

    rows: list[dict]
    settings: dict

    def as_dict(self) -> dict:
        return {"settings": self.settings, "rows": self.rows, "verdicts": self.verdicts()}

    def verdicts(self) -> list[str]:
        """One line per backend on where its time goes (see ``report.verdict``)."""
        from photodedup.bench.report import verdict

        by_backend: dict[str, list[dict]] = {}
        for row in self.rows:
            by_backend.setdefault(row["backend"], []).append(row)
        return [verdict(rows) for rows in by_backend.values()]


@dataclass
class Target:
    """One backend to measure: its label in the table, registry name, options and payload."""

    label: str
    name: str
    options: dict
    payload: str
    snapshot: Callable[[Backend], Callable[[], object] | None] = lambda backend: None
    #: Known before starting: the target cannot run (no export, a payload it cannot send).
    error: PhotodedupError | None = None


def bench(settings: BenchSettings, *, progress: ProgressCallback = no_progress,
          backend_factory: Callable[..., Backend] | None = None) -> BenchReport:
    """Measure every configuration of ``settings``; see the module docstring."""
    settings.validate()
    targets = [target for name in settings.backends for target in plan_targets(name, settings)]
    return run_targets(targets, settings, progress=progress, backend_factory=backend_factory)


def run_targets(targets: list[Target], settings: BenchSettings, *, progress: ProgressCallback = no_progress,
                backend_factory: Callable[..., Backend] | None = None) -> BenchReport:
    """Measure ``targets`` at every batch size and concurrency of ``settings``."""
    if backend_factory is None:
        from photodedup.backends import get_backend as backend_factory
    pool = sample_crops(max(POOL_SIZE, max(settings.batch_sizes)), seed=0)
    total = len(targets) * len(settings.batch_sizes) * len(settings.concurrency)
    rows: list[dict] = []
    start_failures: list[PhotodedupError] = []
    for target in targets:
        try:
            if target.error is not None:
                raise target.error
            backend = backend_factory(target.name, **target.options)
        except Exception as error:  # the row says why; the other backends still run
            log.info("backend %s could not start: %s", target.label, error)
            if isinstance(error, PhotodedupError):
                start_failures.append(error)
            for batch_size, concurrency in itertools.product(settings.batch_sizes, settings.concurrency):
                rows.append(error_row(target, batch_size, concurrency, describe_error(error)))
                progress(len(rows), total)
            continue
        try:
            for batch_size, concurrency in itertools.product(settings.batch_sizes, settings.concurrency):
                rows.append(measure(backend, target, pool, batch_size, concurrency, settings))
                progress(len(rows), total)
        finally:
            backend.close()
    if start_failures and len(start_failures) == len(targets):
        raise start_failures[0]
    return BenchReport(rows, settings_dict(settings))


def plan_targets(name: str, settings: BenchSettings) -> list[Target]:
    """The targets for one backend name: one per ONNX precision, else one with its payload."""
    if name in IN_PROCESS:
        if settings.payload not in (None, "uint8", "fp32"):
            raise BadInputError(f"{name} runs in this process; payload {settings.payload!r} means nothing to it",
                                hint="in-process backends take --payload uint8 or fp32 (a float32-input export)")
        if name == "torch-local":  # one target per PyTorch precision asked for (ONNX-only ones such as int8 skipped)
            precisions = [p for p in settings.precisions if p in ("fp32", "fp16", "bf16")] or ["auto"]
            return [Target(name if len(precisions) == 1 else f"torch-local-{precision}", name,
                           {"weights": settings.weights, "device": settings.device, "precision": precision,
                            "warm_up": True}, IN_PROCESS_PAYLOAD) for precision in precisions]
        targets = []
        for precision in settings.precisions:
            options = {"weights": settings.weights, "precision": precision}
            if settings.model_dir is not None and len(settings.precisions) == 1:
                options["model_dir"] = settings.model_dir
            elif settings.payload == "fp32" or len(settings.precisions) > 1:  # not $PHOTODEDUP_MODEL_DIR
                from photodedup.exports import default_export_dir

                options["model_dir"] = default_export_dir(settings.weights, precision,
                                                          "float32" if settings.payload == "fp32" else "uint8")
            label = name if len(settings.precisions) == 1 else f"onnx-{precision}"
            targets.append(Target(label, name, options, IN_PROCESS_PAYLOAD))
        return targets
    payloads = REMOTE_PAYLOADS.get(name, ("uint8",))
    payload = settings.payload or payloads[0]
    options = {"payload": payload} if name in ("http-service", "auto") else {}
    if settings.url:
        options["url"] = settings.url
    unsupported = None if payload in payloads else BadInputError(
        f"{name} cannot send payload {payload!r}", hint=f"{name} sends: {', '.join(payloads)}")
    return [Target(name, name, options, payload, server_snapshotter, error=unsupported)]


def server_snapshotter(backend: Backend) -> Callable[[], object] | None:
    """How to read the server's own timing for a created backend: Triton's statistics through the
    backend, our service's ``/metrics`` at its URL; None when it has neither."""
    if not isinstance(backend, RemoteBackend):
        return None
    if backend.server == "triton":
        return lambda: server_stats.from_triton(backend.statistics())
    if backend.server == "photodedup":
        return server_stats.service_snapshotter(backend.url)
    return None


def measure(backend: Backend, target: Target, pool: np.ndarray, batch_size: int, concurrency: int,
            settings: BenchSettings) -> dict:
    """One configuration: closed-loop load, then the row."""
    limit = backend.max_batch_size
    if batch_size > limit:
        return error_row(target, batch_size, concurrency,
                         f"batch size {batch_size} is over the backend's maximum of {limit}")
    sent = (backend.payload if isinstance(backend, RemoteBackend) else None) or target.payload
    if settings.payload and sent != settings.payload:
        return error_row(target, batch_size, concurrency,
                         f"the served model takes {sent}, not {settings.payload} (serve a matching export)")
    target = replace(target, payload=sent)
    batches = [pool[(i * batch_size + np.arange(batch_size)) % len(pool)] for i in range(len(pool))]
    counter = itertools.count()

    def request() -> int:
        batch = batches[next(counter) % len(batches)]
        out = backend.embed_batch(batch)
        if getattr(out, "shape", None) != (len(batch), config.EMBEDDING_DIM):
            raise InferenceError(f"expected [{len(batch)},{config.EMBEDDING_DIM}] embeddings, "
                                 f"got {list(getattr(out, 'shape', []))}")
        return len(batch)

    result = run_load(request, concurrency=concurrency, window_s=settings.window, warmup_s=settings.warmup,
                      max_s=settings.duration, rule=settings.rule, snapshot=target.snapshot(backend))
    row = base_row(target, batch_size, concurrency)
    row.update(result.summary())
    row["bytes_per_image"] = 0.0 if target.payload == IN_PROCESS_PAYLOAD else bytes_per_image(
        target.payload, batches[0])
    window = result.server_window()
    breakdown = server_stats.breakdown(*window) if window else {}
    row.update({key: breakdown.get(key) for key in (*server_stats.BREAKDOWN_FIELDS, "server_batch")})
    server_ms = breakdown.get("server_ms")
    row["outside_server_ms"] = row["mean_ms"] - server_ms if server_ms is not None and row["requests"] else None
    row["model_id"] = backend.model_id
    return row


def base_row(target: Target, batch_size: int, concurrency: int) -> dict:
    return {"backend": target.label, "payload": target.payload, "concurrency": concurrency,
            "batch_size": batch_size}


def error_row(target: Target, batch_size: int, concurrency: int, message: str) -> dict:
    """A row for a configuration that could not run at all."""
    row = base_row(target, batch_size, concurrency)
    row.update({"images_per_second": 0.0, "requests_per_second": 0.0, "requests": 0, "errors": 1,
                "error": message, "stable": False, "windows": 0})
    return row


def settings_dict(settings: BenchSettings) -> dict:
    return {"backends": list(settings.backends), "concurrency": list(settings.concurrency),
            "batch_sizes": list(settings.batch_sizes), "payload": settings.payload,
            "precisions": list(settings.precisions), "duration": settings.duration,
            "window": settings.window, "warmup": settings.warmup, "url": settings.url, "device": settings.device,
            "stability": f"last {settings.rule.windows} windows within {settings.rule.tolerance:.0%}"}


def serialization(count: int = 16, *, repeats: int = 3) -> list[dict]:
    """The serialization experiment on ``count`` photo-like crops (see ``payloads``); no server."""
    return serialization_experiment(sample_crops(count, seed=0), repeats=repeats)


def parse_list(text: str | None, kind: type = str, *, option: str = "option") -> tuple:
    """``"1,4, 8"`` -> ``(1, 4, 8)``; a BadInputError naming ``option`` for a bad item."""
    items = [item.strip() for item in (text or "").split(",") if item.strip()]
    try:
        return tuple(kind(item) for item in items)
    except ValueError:
        raise BadInputError(f"{option} takes a comma-separated list of {kind.__name__}s, got {text!r}") from None


def save(report: BenchReport, *, json_file: Path | None = None, csv_file: Path | None = None,
         plot_dir: Path | None = None) -> list[Path]:
    """Write the report's JSON, CSV and PNG plots where asked; return the paths written."""
    from photodedup.bench import report as render

    written = []
    if json_file:
        written.append(render.write_json({**report.as_dict(), "rows": [render.ordered(r) for r in report.rows]},
                                         json_file))
    if csv_file:
        written.append(render.write_csv(report.rows, csv_file))
    if plot_dir:
        written.extend(render.write_plots(report.rows, plot_dir))
    return written


__all__ = ["BenchSettings", "BenchReport", "Target", "bench", "parse_list", "run_targets", "save",
           "serialization"]
