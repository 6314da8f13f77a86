"""Server-side time, read before and after a measurement, so a table can show where time goes.

Two sources, one shape. Triton's statistics extension (read by the Triton backends' ``statistics()``) gives cumulative
counts and nanoseconds for queue, compute input, compute infer and compute output per request. Our
service's ``GET /metrics`` (Prometheus text) gives histograms of request duration, decode (its
compute input), queue wait and model-call time. ``breakdown(before, after)`` turns two snapshots into
milliseconds per request: ``server_ms, queue_ms, compute_input_ms, compute_infer_ms,
compute_output_ms`` and ``server_requests``, ``server_batch`` (images per model call).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

BREAKDOWN_FIELDS = ("server_ms", "queue_ms", "compute_input_ms", "compute_infer_ms", "compute_output_ms")

_TRITON_PARTS = {"success": "server_ms", "queue": "queue_ms", "compute_input": "compute_input_ms",
                 "compute_infer": "compute_infer_ms", "compute_output": "compute_output_ms"}
_SERVICE_PARTS = {"photodedup_request_duration_seconds": "server_ms", "photodedup_queue_seconds": "queue_ms",
                  "photodedup_decode_seconds": "compute_input_ms", "photodedup_inference_seconds": "compute_infer_ms"}


@dataclass(frozen=True)
class Snapshot:
    """Cumulative (total seconds, count) per part, plus images and model calls so far."""

    parts: dict[str, tuple[float, float]]
    images: float = 0.0
    executions: float = 0.0


def breakdown(before: Snapshot | None, after: Snapshot | None) -> dict[str, float]:
    """Milliseconds per request for each part between two snapshots; empty if either is missing."""
    if before is None or after is None:
        return {}
    out: dict[str, float] = {}
    for part, (seconds, count) in after.parts.items():
        old_seconds, old_count = before.parts.get(part, (0.0, 0.0))
        if count - old_count > 0:
            out[part] = (seconds - old_seconds) / (count - old_count) * 1000
    requests = after.parts.get("server_ms", (0, 0))[1] - before.parts.get("server_ms", (0, 0))[1]
    out["server_requests"] = requests
    if after.executions - before.executions > 0:
        out["server_batch"] = (after.images - before.images) / (after.executions - before.executions)
    return out


def from_triton(stats: dict) -> Snapshot:
    """A snapshot from the Triton backends' ``statistics()`` (``backends.triton.parse_statistics``)."""
    parts = {part: (stats.get(f"{stage}_ns", 0) / 1e9, stats.get(f"{stage}_count", 0))
             for stage, part in _TRITON_PARTS.items()}
    return Snapshot(parts, stats.get("inference_count", 0), stats.get("execution_count", 0))


def parse_service_metrics(text: str, endpoint: str = "/embed") -> Snapshot:
    """A snapshot from our service's ``/metrics`` (Prometheus text); request duration only for ``endpoint``."""
    from prometheus_client.parser import text_string_to_metric_families

    totals: dict[str, list[float]] = {part: [0.0, 0.0] for part in _SERVICE_PARTS.values()}
    images = executions = 0.0
    for family in text_string_to_metric_families(text):
        part = _SERVICE_PARTS.get(family.name)
        for sample in family.samples:
            if part is not None:
                if part == "server_ms" and sample.labels.get("endpoint") != endpoint:
                    continue
                if sample.name.endswith("_sum"):
                    totals[part][0] += sample.value
                elif sample.name.endswith("_count"):
                    totals[part][1] += sample.value
            elif sample.name == "photodedup_images_total":
                images += sample.value
            elif sample.name == "photodedup_batch_size_count":
                executions += sample.value
    parts = {part: (total, count) for part, (total, count) in totals.items() if count}
    return Snapshot(parts, images, executions)


def service_snapshotter(url: str, timeout: float = 5.0):
    """A callable reading our service's ``/metrics`` at ``url``."""
    import httpx

    base = url if "://" in url else f"http://{url}"
    token = os.environ.get("PHOTODEDUP_TOKEN")
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    def snapshot() -> Snapshot:
        response = httpx.get(f"{base.rstrip('/')}/metrics", headers=headers, timeout=timeout)
        response.raise_for_status()
        return parse_service_metrics(response.text)

    return snapshot
