import math

import pytest

from lma_perception.runtime.latency import LatencyStats, RateMeter, summarize_latency


def test_latency_percentiles():
    summary = summarize_latency(range(1, 101))
    assert summary.count == 100
    assert summary.p50 == pytest.approx(50.5)
    assert summary.p95 == pytest.approx(95.05)
    assert summary.max == 100.0
    assert summary.mean == pytest.approx(50.5)
    empty = summarize_latency([])
    assert empty.count == 0 and math.isnan(empty.p95)


def test_latency_sliding_window_keeps_latest_samples():
    stats = LatencyStats(window=3)
    for value in (100.0, 1.0, 2.0, 3.0):
        stats.add(value)
    assert stats.values == [1.0, 2.0, 3.0]
    assert stats.summary().max == 3.0
    stats.clear()
    assert len(stats) == 0
    with pytest.raises(ValueError, match='at least 1'):
        LatencyStats(window=0)


def test_rate_meter():
    meter = RateMeter(window_s=5.0)
    assert meter.rate(0.0) == 0.0
    for tick in range(11):
        meter.tick(100.0 + tick * 0.1)
    assert meter.rate(101.0) == pytest.approx(10.0)
    assert meter.rate(200.0) == 0.0  # all events left the window
    assert len(meter) == 11
    meter.tick(200.0)  # and are forgotten with the next one
    assert len(meter) == 1


def test_rate_meter_holds_only_its_window():
    meter = RateMeter(window_s=5.0)
    for tick in range(1000):
        meter.tick(tick * 0.5)  # 2 Hz for 500 s
    assert len(meter) == 11 and meter.rate(499.5) == pytest.approx(2.0)
