"""A closed-loop load generator, like Triton's perf_analyzer.

``concurrency`` worker threads each send one request, wait for its answer and send the next, so
exactly ``concurrency`` requests are in flight. After a warm-up, measurement windows are repeated
until the last three agree (``StabilityRule``) on throughput and mean latency, or until the time
limit; the result is computed over those last windows and says which of the two ended the run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from photodedup.bench.stats import StabilityRule, latency_summary, rate

log = logging.getLogger(__name__)

#: After a failed request a worker pauses this long, so a dead server is not hammered in a hot loop.
ERROR_PAUSE_S = 0.02


@dataclass
class Sample:
    """One finished request."""

    end: float
    latency: float
    images: int
    error: str | None = None


@dataclass
class Window:
    """What finished during one measurement window."""

    seconds: float
    samples: list[Sample]
    cpu_seconds: float

    @property
    def ok(self) -> list[Sample]:
        return [s for s in self.samples if s.error is None]

    @property
    def images_per_second(self) -> float:
        return rate(sum(s.images for s in self.ok), self.seconds)

    @property
    def mean_latency(self) -> float:
        ok = self.ok
        return sum(s.latency for s in ok) / len(ok) if ok else 0.0


@dataclass
class LoadResult:
    """The windows measured, the ones the result is computed over, and why measuring stopped."""

    concurrency: int
    windows: list[Window]
    used: list[Window]
    stable: bool
    snapshots: list = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(w.seconds for w in self.used)

    @property
    def samples(self) -> list[Sample]:
        return [s for w in self.used for s in w.samples]

    @property
    def errors(self) -> Counter:
        return Counter(s.error for s in self.samples if s.error is not None)

    def server_window(self) -> tuple[object, object] | None:
        """The server snapshots taken at the start and end of the windows used (None if not taken)."""
        if len(self.snapshots) < len(self.used) + 1:
            return None
        return self.snapshots[-len(self.used) - 1], self.snapshots[-1]

    def summary(self) -> dict:
        """Rates, latency percentiles (ms), errors and client CPU (100 = one core busy)."""
        ok = [s for s in self.samples if s.error is None]
        seconds = self.seconds
        errors = self.errors
        return {
            "images_per_second": rate(sum(s.images for s in ok), seconds),
            "requests_per_second": rate(len(ok), seconds),
            **latency_summary([s.latency for s in ok]),
            "requests": len(ok),
            "errors": sum(errors.values()),
            "error": errors.most_common(1)[0][0] if errors else "",
            "client_cpu_percent": rate(sum(w.cpu_seconds for w in self.used), seconds) * 100,
            "stable": self.stable,
            "windows": len(self.windows),
            "measured_seconds": seconds,
        }


def process_cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (psutil, else ``resource``)."""
    try:
        import psutil

        times = psutil.Process().cpu_times()
        return times.user + times.system
    except ImportError:  # pragma: no cover - psutil is a dependency
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime


def describe_error(error: BaseException) -> str:
    """One short line for a failed request, the same for every repeat of the same failure."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}"[:200] if text else type(error).__name__


def run_load(
    request: Callable[[], int],
    *,
    concurrency: int,
    window_s: float = 2.0,
    warmup_s: float = 1.0,
    max_s: float = 20.0,
    rule: StabilityRule = StabilityRule(),
    snapshot: Callable[[], object] | None = None,
) -> LoadResult:
    """Keep ``concurrency`` calls of ``request`` (which returns how many images it sent) in flight.

    Measures windows of ``window_s`` (stretched until at least one request finished) after
    ``warmup_s``, until ``rule`` holds for images/s and mean latency or ``max_s`` of measuring
    passed (at least ``rule.windows`` windows are always measured; ``window_s`` shrinks to fit).
    ``snapshot`` (server statistics) is called at every window boundary.
    """
    if concurrency < 1:
        raise ValueError("concurrency must be at least 1")
    window_s = min(window_s, max_s / rule.windows)
    samples: list[Sample] = []
    stop = threading.Event()

    def worker() -> None:
        while not stop.is_set():
            start = time.perf_counter()
            try:
                images, error = request(), None
            except Exception as exc:  # a failed request is a result, not a crash
                images, error = 0, describe_error(exc)
            end = time.perf_counter()
            samples.append(Sample(end, end - start, images, error))
            if error is not None:
                stop.wait(ERROR_PAUSE_S)

    threads = [threading.Thread(target=worker, name=f"bench-{i}", daemon=True) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    windows: list[Window] = []
    snapshots: list = []
    stable = False
    try:
        stop.wait(warmup_s)
        take = _snapshotter(snapshot)
        snapshots.append(take())
        begin = time.perf_counter()
        while True:
            mark, cpu, t0 = len(samples), process_cpu_seconds(), time.perf_counter()
            deadline = begin + max_s
            while True:
                stop.wait(min(0.05, window_s))
                now = time.perf_counter()
                if (now - t0 >= window_s and len(samples) > mark) or now >= deadline + window_s:
                    break
            windows.append(Window(now - t0, samples[mark:len(samples)], process_cpu_seconds() - cpu))
            snapshots.append(take())
            stable = rule.is_stable([w.images_per_second for w in windows]) and rule.is_stable(
                [w.mean_latency for w in windows])
            if stable or (len(windows) >= rule.windows and now - begin >= max_s):
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        if any(t.is_alive() for t in threads):
            log.warning("some requests were still running 30 s after the measurement ended")
    return LoadResult(concurrency, windows, windows[-rule.windows :], stable, snapshots)


def _snapshotter(snapshot: Callable[[], object] | None) -> Callable[[], object]:
    def take() -> object:
        if snapshot is None:
            return None
        try:
            return snapshot()
        except Exception as error:  # server statistics are a bonus; the load result stands without them
            log.warning("could not read server statistics: %s", describe_error(error))
            return None

    return take
