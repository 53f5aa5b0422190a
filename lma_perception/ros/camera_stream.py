"""Per-camera state of the segmentation node: the latest unprocessed frame, memory and counters.

Plain Python with no ROS graph, so it is testable on its own. Three threads touch it: the
executor's subscription callbacks (`LatestFrames.put`, `CameraStream.count_input`), the
inference worker (everything else that changes state) and the diagnostics timer
(`CameraStream.snapshot`). Each class guards its shared fields with its own lock.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from lma_perception.eval.metrics import LatencyStats, LatencySummary
from lma_perception.memory import MemoryBank

Frame = TypeVar('Frame')

STAGES = ('preprocess', 'model', 'postprocess', 'total')
RESET_REASONS = ('time_backwards', 'gap', 'size_changed', 'frame_id_changed', 'service')


@dataclass(frozen=True)
class FrameKey:
    """What decides whether a frame continues its camera's previous one."""

    stamp_ns: int
    frame_id: str
    height: int
    width: int


def reset_reason(previous: FrameKey | None, current: FrameKey, max_gap_ns: int) -> str | None:
    """Return why the memory must be cleared before `current`, or None if it may be read.

    Stamps running backwards mean a bag looped or was restarted; a jump forward larger than
    `max_gap_ns` means frames are missing; a new size or frame_id means another camera or
    another mounting. In each case the remembered features no longer describe this view.
    """
    if previous is None:
        return None
    if current.stamp_ns < previous.stamp_ns:
        return 'time_backwards'
    if current.stamp_ns - previous.stamp_ns > max_gap_ns:
        return 'gap'
    if (current.height, current.width) != (previous.height, previous.width):
        return 'size_changed'
    if current.frame_id != previous.frame_id:
        return 'frame_id_changed'
    return None


class LatestFrames(Generic[Frame]):
    """One slot per camera holding its newest unprocessed frame; a worker takes batches.

    A newer frame replaces an older one still waiting: processing stale frames only adds
    latency, so the replaced frame is reported as dropped. Taking serves cameras round-robin, so
    with more ready cameras than `max_count` none of them starves.
    """

    def __init__(self, count: int) -> None:
        self._slots: list[Frame | None] = [None] * count
        self._next = 0
        self._closed = False
        self._in_progress = False
        self._ready = threading.Condition()

    def put(self, index: int, frame: Frame) -> bool:
        """Store the camera's newest frame; return True if it replaced an unprocessed one."""
        with self._ready:
            replaced = self._slots[index] is not None
            self._slots[index] = frame
            self._ready.notify()
            return replaced

    def take(self, max_count: int, timeout_s: float | None = None) -> list[tuple[int, Frame]]:
        """Wait for at least one frame and return up to `max_count` (camera index, frame) pairs.

        Returns an empty list when closed, or when `timeout_s` passes with nothing ready. The
        taker calls `task_done()` once it has handled a non-empty batch.
        """
        with self._ready:
            self._ready.wait_for(
                lambda: self._closed or any(slot is not None for slot in self._slots), timeout_s
            )
            if self._closed:
                return []
            count = len(self._slots)
            taken = []
            for offset in range(count):
                index = (self._next + offset) % count
                frame = self._slots[index]
                if frame is None:
                    continue
                self._slots[index] = None
                taken.append((index, frame))
                if len(taken) == max_count:
                    self._next = (index + 1) % count
                    break
            self._in_progress = bool(taken)
            return taken

    def task_done(self) -> None:
        """Mark the batch from the last `take` as handled."""
        with self._ready:
            self._in_progress = False

    @property
    def idle(self) -> bool:
        """True when no frame waits and no taken batch is still being handled."""
        with self._ready:
            return not self._in_progress and all(slot is None for slot in self._slots)

    def close(self) -> None:
        """Wake the worker for good: every later `take` returns an empty list."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()


class RateMeter:
    """Events per second over the last `window_s` seconds of a monotonic clock."""

    def __init__(self, window_s: float = 5.0, max_events: int = 1000) -> None:
        self._window_s = window_s
        self._times: deque[float] = deque(maxlen=max_events)

    def tick(self, now_s: float) -> None:
        """Record one event at `now_s`."""
        self._times.append(now_s)

    def rate(self, now_s: float) -> float:
        """Events per second among the recent ones; 0 with fewer than two in the window."""
        recent = [t for t in self._times if now_s - t <= self._window_s]
        if len(recent) < 2 or recent[-1] == recent[0]:
            return 0.0
        return (len(recent) - 1) / (recent[-1] - recent[0])


@dataclass(frozen=True)
class StreamSnapshot:
    """A consistent copy of one camera's figures for a diagnostics message."""

    name: str
    image_topic: str
    input_hz: float
    output_hz: float
    seconds_since_input: float
    last_stamp_ns: int | None
    last_encoding: str
    last_size: tuple[int, int] | None  # (width, height)
    received: int
    published: int
    dropped: int
    bad_frames: int
    latency: dict[str, LatencySummary]
    memory_fill: int
    memory_length: int
    memory_writes: int
    memory_writes_skipped: int
    resets: dict[str, int]
    error: str | None
    last_error: str
    qos_warning: str | None
    outputs: tuple[str, ...]  # what the newest result was published as


@dataclass
class _Counts:
    received: int = 0
    published: int = 0
    dropped: int = 0
    bad_frames: int = 0
    last_input_s: float | None = None
    last_stamp_ns: int | None = None
    last_encoding: str = ''
    last_size: tuple[int, int] | None = None  # (width, height)
    error: str | None = None  # until the next frame is published
    last_error: str = ''
    qos_warning: str | None = None
    outputs: tuple[str, ...] = ()
    resets: Counter[str] = field(default_factory=Counter)


class CameraStream:
    """One camera: its memory, the continuity of its frames and its running figures."""

    def __init__(
        self,
        name: str,
        image_topic: str,
        memory: MemoryBank | None,
        latency_window: int,
        started_s: float | None = None,
    ) -> None:
        self.name = name
        self.image_topic = image_topic
        self.memory = memory
        self._previous: FrameKey | None = None
        self._started_s = time.monotonic() if started_s is None else started_s
        self._lock = threading.Lock()
        self._counts = _Counts()
        self._input_rate = RateMeter()
        self._output_rate = RateMeter()
        self._latency = {stage: LatencyStats(latency_window) for stage in STAGES}

    def count_input(self, now_s: float, dropped_older: bool) -> None:
        """Record a frame arriving (callback thread); `dropped_older`: it replaced one."""
        with self._lock:
            self._counts.received += 1
            self._counts.dropped += int(dropped_older)
            self._counts.last_input_s = now_s
            self._input_rate.tick(now_s)

    def continue_with(self, key: FrameKey, max_gap_ns: int) -> str | None:
        """Move on to the frame `key`, clearing the memory first if it breaks continuity.

        Returns the reason of the reset, or None when the memory carries over.
        """
        reason = reset_reason(self._previous, key, max_gap_ns)
        self._previous = key
        if reason is not None:
            self.reset_memory(reason)
        with self._lock:
            self._counts.last_stamp_ns = key.stamp_ns
            self._counts.last_size = (key.width, key.height)
        return reason

    def reset_memory(self, reason: str) -> None:
        """Clear the memory (if any) and count why."""
        if self.memory is not None:
            self.memory.reset()
        with self._lock:
            self._counts.resets[reason] += 1

    def record_encoding(self, encoding: str) -> None:
        """Remember the encoding of the newest frame, for diagnostics."""
        with self._lock:
            self._counts.last_encoding = encoding

    def record_bad_input(self, problem: str) -> None:
        """Count a frame that could not be read; diagnostics show ERROR until a good one."""
        with self._lock:
            self._counts.bad_frames += 1
            self._counts.error = self._counts.last_error = f'bad input: {problem}'

    def record_failure(self, problem: str) -> None:
        """Remember that segmenting a frame failed; diagnostics show ERROR until one works."""
        with self._lock:
            self._counts.error = self._counts.last_error = f'inference failed: {problem}'

    def record_qos_warning(self, problem: str) -> None:
        """Remember that a publisher on the input topic cannot connect (incompatible QoS)."""
        with self._lock:
            self._counts.qos_warning = problem

    def record_output(
        self, now_s: float, timings_ms: dict[str, float], outputs: tuple[str, ...]
    ) -> None:
        """Count a published result: stage latencies (keys of `STAGES`), outputs it went to."""
        with self._lock:
            self._counts.published += 1
            self._counts.outputs = outputs
            self._counts.error = None
            self._output_rate.tick(now_s)
            for stage in STAGES:
                self._latency[stage].add(timings_ms[stage])

    def snapshot(self, now_s: float) -> StreamSnapshot:
        """Copy the figures for a diagnostics message (timer thread)."""
        with self._lock:
            counts = self._counts
            last_input_s = counts.last_input_s
            silent_since = self._started_s if last_input_s is None else last_input_s
            memory = self.memory
            return StreamSnapshot(
                name=self.name,
                image_topic=self.image_topic,
                input_hz=self._input_rate.rate(now_s),
                output_hz=self._output_rate.rate(now_s),
                seconds_since_input=now_s - silent_since,
                last_stamp_ns=counts.last_stamp_ns,
                last_encoding=counts.last_encoding,
                last_size=counts.last_size,
                received=counts.received,
                published=counts.published,
                dropped=counts.dropped,
                bad_frames=counts.bad_frames,
                latency={stage: stats.summary() for stage, stats in self._latency.items()},
                memory_fill=memory.fill if memory is not None else 0,
                memory_length=memory.length if memory is not None else 0,
                memory_writes=memory.writes if memory is not None else 0,
                memory_writes_skipped=memory.writes_skipped if memory is not None else 0,
                resets={reason: counts.resets[reason] for reason in RESET_REASONS},
                error=counts.error,
                last_error=counts.last_error,
                qos_warning=counts.qos_warning,
                outputs=counts.outputs,
            )
