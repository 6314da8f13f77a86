"""Prometheus text exposition (format 0.0.4) for the service, without a client library.

Counters, gauges and histograms with labels, thread-safe: the event loop records requests, the
batcher's worker thread records batches. ``Metrics.render()`` is what ``GET /metrics`` returns.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Sequence

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: Seconds: from 1 ms to 60 s.
TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Counts (images per model call, requests per model call).
COUNT_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

LabelKey = tuple[tuple[str, str], ...]


def _labels(key: LabelKey, extra: tuple[tuple[str, str], ...] = ()) -> str:
    pairs = key + extra
    if not pairs:
        return ""
    body = ",".join(f'{name}="{_escape(value)}"' for name, value in pairs)
    return "{" + body + "}"


def _escape(value: str) -> str:
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if value == float("inf"):
        return "+Inf"
    return repr(float(value)) if isinstance(value, float) and not value.is_integer() else str(int(value))


class _Metric:
    kind = ""

    def __init__(self, name: str, help_: str, lock: threading.Lock) -> None:
        self.name, self.help, self._lock = name, help_, lock

    def header(self) -> list[str]:
        return [f"# HELP {self.name} {self.help}", f"# TYPE {self.name} {self.kind}"]


class Counter(_Metric):
    kind = "counter"

    def __init__(self, name: str, help_: str, lock: threading.Lock) -> None:
        super().__init__(name, help_, lock)
        self._values: dict[LabelKey, float] = {}

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            self._values[key] = self._values.get(key, 0.0) + amount

    def value(self, **labels: str) -> float:
        with self._lock:
            return self._values.get(tuple(sorted(labels.items())), 0.0)

    def render(self) -> list[str]:
        return self.header() + [f"{self.name}{_labels(k)} {_number(v)}" for k, v in sorted(self._values.items())]


class Gauge(Counter):
    kind = "gauge"

    def set(self, value: float, **labels: str) -> None:
        with self._lock:
            self._values[tuple(sorted(labels.items()))] = value


class Histogram(_Metric):
    kind = "histogram"

    def __init__(self, name: str, help_: str, lock: threading.Lock, buckets: Sequence[float]) -> None:
        super().__init__(name, help_, lock)
        self.buckets = tuple(buckets)
        # label key -> (per-bucket counts incl. +Inf, sum, count)
        self._series: dict[LabelKey, tuple[list[int], list[float]]] = {}

    def observe(self, value: float, **labels: str) -> None:
        key = tuple(sorted(labels.items()))
        with self._lock:
            counts, total = self._series.setdefault(key, ([0] * (len(self.buckets) + 1), [0.0]))
            counts[bisect.bisect_left(self.buckets, value)] += 1
            total[0] += value

    def count(self, **labels: str) -> int:
        with self._lock:
            series = self._series.get(tuple(sorted(labels.items())))
            return sum(series[0]) if series else 0

    def render(self) -> list[str]:
        lines = self.header()
        for key, (counts, total) in sorted(self._series.items()):
            cumulative = 0
            for bound, count in zip((*self.buckets, float("inf")), counts, strict=True):
                cumulative += count
                lines.append(f"{self.name}_bucket{_labels(key, (('le', _number(bound)),))} {cumulative}")
            lines.append(f"{self.name}_sum{_labels(key)} {total[0]!r}")
            lines.append(f"{self.name}_count{_labels(key)} {cumulative}")
        return lines


class Metrics:
    """Everything the service exposes on ``/metrics``."""

    def __init__(self) -> None:
        lock = threading.Lock()
        self.requests = Counter("photodedup_requests_total", "HTTP requests by endpoint and status code.", lock)
        self.latency = Histogram("photodedup_request_duration_seconds",
                                 "Time from request received to response ready, by endpoint.", lock, TIME_BUCKETS)
        self.in_flight = Gauge("photodedup_requests_in_flight", "Embed requests being handled now.", lock)
        self.images = Counter("photodedup_images_total", "Images embedded.", lock)
        self.decode = Histogram("photodedup_decode_seconds",
                                "Time to decode one request's images into model crops.", lock, TIME_BUCKETS)
        self.queue = Histogram("photodedup_queue_seconds",
                               "Time a request waited in the batcher's queue before its model call.",
                               lock, TIME_BUCKETS)
        self.inference = Histogram("photodedup_inference_seconds", "Time of one model call.", lock, TIME_BUCKETS)
        self.batch_size = Histogram("photodedup_batch_size", "Images per model call.", lock, COUNT_BUCKETS)
        self.batch_requests = Histogram("photodedup_batch_requests",
                                        "Requests merged into one model call by the dynamic batcher.",
                                        lock, COUNT_BUCKETS)
        self.queue_depth = Gauge("photodedup_queue_depth", "Requests waiting in the batcher's queue.", lock)
        self._lock = lock
        self._all: list[_Metric] = [self.requests, self.latency, self.in_flight, self.images, self.decode,
                                    self.queue, self.inference, self.batch_size, self.batch_requests,
                                    self.queue_depth]

    def render(self) -> str:
        with self._lock:
            lines = [line for metric in self._all for line in metric.render()]
        return "\n".join(lines) + "\n"
