"""The service's Prometheus metrics, with ``prometheus_client`` (the format's reference implementation).

Each app owns a ``CollectorRegistry`` (tests build several apps in one process), with the process
collector (CPU, memory, open files). The event loop records requests, the batcher's worker thread
records batches; ``prometheus_client`` metrics are thread-safe. ``Metrics.render()`` is what
``GET /metrics`` returns. The service runs one process (one uvicorn worker, one model), so
multiprocess mode is not needed; see docs/DECISIONS.md.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client import generate_latest as _generate_latest

# The ``*_created`` timestamps double the output and nothing here reads them.
disable_created_metrics()

CONTENT_TYPE = CONTENT_TYPE_LATEST

#: Seconds: from 1 ms to 60 s.
TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Counts (images per model call, requests per model call).
COUNT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """Everything the service exposes on ``/metrics``, in its own registry."""

    def __init__(self) -> None:
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        self.requests = Counter("photodedup_requests", "HTTP requests by endpoint and status code.",
                                ["endpoint", "status"], registry=registry)
        self.latency = Histogram("photodedup_request_duration_seconds",
                                 "Time from request received to response ready, by endpoint.", ["endpoint"],
                                 buckets=TIME_BUCKETS, registry=registry)
        self.in_flight = Gauge("photodedup_requests_in_flight", "Embed requests being handled now.",
                               registry=registry)
        self.images = Counter("photodedup_images", "Images embedded.", registry=registry)
        self.decode = Histogram("photodedup_decode_seconds", "Time to decode one request's images into model crops.",
                                buckets=TIME_BUCKETS, registry=registry)
        self.queue = Histogram("photodedup_queue_seconds",
                               "Time a request waited in the batcher's queue before its model call.",
                               buckets=TIME_BUCKETS, registry=registry)
        self.inference = Histogram("photodedup_inference_seconds", "Time of one model call.",
                                   buckets=TIME_BUCKETS, registry=registry)
        self.batch_size = Histogram("photodedup_batch_size", "Images per model call.",
                                    buckets=COUNT_BUCKETS, registry=registry)
        self.batch_requests = Histogram("photodedup_batch_requests",
                                        "Requests merged into one model call by the dynamic batcher.",
                                        buckets=COUNT_BUCKETS, registry=registry)
        self.queue_depth = Gauge("photodedup_queue_depth", "Requests waiting in the batcher's queue.",
                                 registry=registry)

    def value(self, name: str, **labels: str) -> float:
        """One sample's current value (0 when it has none yet), e.g. ``value("photodedup_images_total")``."""
        return self.registry.get_sample_value(name, labels) or 0.0

    def render(self) -> str:
        """The text exposition format (0.0.4)."""
        return _generate_latest(self.registry).decode()
