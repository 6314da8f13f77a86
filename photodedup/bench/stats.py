"""Statistics for ``bench``: percentiles, the stability rule and rates, on plain numbers.

The percentile follows Triton's perf_analyzer: sort the latencies and take the element at index
``round(p/100 * (n - 1))``, so every reported latency is one that was observed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

PERCENTILES = (50, 90, 95, 99)


def percentile(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (0-100) of ``values`` by perf_analyzer's nearest-rank rule; NaN if empty."""
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[int(p / 100 * (len(ordered) - 1) + 0.5)]


def latency_summary(latencies_s: Sequence[float]) -> dict[str, float]:
    """``p50_ms, p90_ms, p95_ms, p99_ms, max_ms, mean_ms`` of latencies given in seconds."""
    summary = {f"p{p}_ms": percentile(latencies_s, p) * 1000 for p in PERCENTILES}
    summary["max_ms"] = max(latencies_s) * 1000 if latencies_s else math.nan
    summary["mean_ms"] = sum(latencies_s) / len(latencies_s) * 1000 if latencies_s else math.nan
    return summary


def rate(count: float, seconds: float) -> float:
    """``count / seconds``; 0 when no time passed."""
    return count / seconds if seconds > 0 else 0.0


@dataclass(frozen=True)
class StabilityRule:
    """perf_analyzer's rule: the last ``windows`` measurements each lie within ``tolerance`` of their mean."""

    windows: int = 3
    tolerance: float = 0.10

    def is_stable(self, values: Sequence[float]) -> bool:
        """True when the last ``windows`` values are all within ``tolerance`` (relative) of their mean."""
        if len(values) < self.windows:
            return False
        last = values[-self.windows :]
        if any(math.isnan(v) for v in last):
            return False
        mean = sum(last) / len(last)
        if mean == 0:
            return all(v == 0 for v in last)
        return max(last) / mean - 1 <= self.tolerance and 1 - min(last) / mean <= self.tolerance
