"""Running figures of a stream: latency percentiles per stage and event rates.

Plain Python and numpy, shared by the per-camera stream (node and offline evaluator alike), the
live evaluation and the benchmarks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LatencySummary:
    """Percentiles of a set of latencies in milliseconds (NaN when there are none)."""

    count: int
    p50: float
    p95: float
    max: float
    mean: float

    def as_dict(self) -> dict[str, float]:
        """Plain dict for JSON and diagnostics key/value pairs."""
        return {'count': self.count, 'p50': self.p50, 'p95': self.p95, 'max': self.max,
                'mean': self.mean}


def summarize_latency(values_ms: Iterable[float]) -> LatencySummary:
    """Return count, p50, p95, max and mean of latencies given in milliseconds."""
    values = np.fromiter(values_ms, dtype=np.float64)
    if values.size == 0:
        nan = float('nan')
        return LatencySummary(0, nan, nan, nan, nan)
    p50, p95 = np.percentile(values, [50, 95])
    return LatencySummary(
        int(values.size), float(p50), float(p95), float(values.max()), float(values.mean())
    )


class LatencyStats:
    """Latencies of one stage, either all of them or a sliding window of the latest `window`."""

    def __init__(self, window: int | None = None) -> None:
        if window is not None and window < 1:
            raise ValueError(f'latency window must be at least 1 sample, got {window}')
        self._values: deque[float] = deque(maxlen=window)

    def add(self, milliseconds: float) -> None:
        """Record one latency in milliseconds."""
        self._values.append(float(milliseconds))

    def clear(self) -> None:
        """Drop every recorded latency."""
        self._values.clear()

    def __len__(self) -> int:
        return len(self._values)

    @property
    def values(self) -> list[float]:
        """The recorded latencies, oldest first."""
        return list(self._values)

    def summary(self) -> LatencySummary:
        """Percentiles over the recorded latencies."""
        return summarize_latency(self._values)


class RateMeter:
    """Events per second over the last `window_s` seconds of a monotonic clock.

    Events older than the window are forgotten as new ones come, so the meter holds about
    rate × window_s of them (and at most `max_events`): a fixed-size deque alone would keep
    growing, by a slow camera's pace, until it had filled, which a memory soak reads as a leak.
    """

    def __init__(self, window_s: float = 5.0, max_events: int = 1000) -> None:
        self._window_s = window_s
        self._times: deque[float] = deque(maxlen=max_events)

    def tick(self, now_s: float) -> None:
        """Record one event at `now_s`."""
        self._times.append(now_s)
        while now_s - self._times[0] > self._window_s:
            self._times.popleft()

    def __len__(self) -> int:
        return len(self._times)

    def rate(self, now_s: float) -> float:
        """Events per second among the recent ones; 0 with fewer than two in the window."""
        recent = [t for t in self._times if now_s - t <= self._window_s]
        if len(recent) < 2 or recent[-1] == recent[0]:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0])
