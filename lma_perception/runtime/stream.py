"""One camera's stream: its optional memory, the continuity of its frames and its figures.

The node and the offline evaluator drive every frame through a :class:`CameraStream`, so both
clear a camera's memory at the same frames (`lma_perception.continuity`) and time the same
stages. Continuity is decided when a frame is *received*: frames replaced before they were
segmented still count, so an overloaded node that skips frames does not see gaps that the
camera never had. Each received frame carries the stream's *epoch*, which a continuity break
advances; a frame's memory is cleared before it is segmented when its epoch is newer than the
memory's, so a reset applies to exactly the frames after the break.

Plain Python with no ROS graph. Threads: the receiving side (`receive`, `record_bad_input`,
`count_dropped`, `track_sequence`, `count_lost`) runs in the node's subscription callbacks, the
segmenting side in its worker, `snapshot` in its diagnostics timer; shared figures are guarded by
one lock.
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from lma_perception.continuity import (
    RESET_REASONS,
    SEQUENCE_BOUNDARY_S,
    FrameKey,
    reset_reason,
    seconds_to_ns,
)
from lma_perception.memory import MemoryBank
from lma_perception.runtime.engine import SegmentationEngine, SegmentationResult
from lma_perception.runtime.frame_loss import RecentLoss, SequenceGaps
from lma_perception.runtime.latency import LatencyStats, LatencySummary, RateMeter

# The stages every frame is timed in, live and offline:
# - preprocess: decoding the image (message → RGB), then the engine's resize and scaling;
# - model: the batched forward pass, memory read and write included;
# - postprocess: argmax, resize to the output size, and publishing the outputs (live);
# - total: from the frame's arrival to its outputs being out.
STAGES = ('preprocess', 'model', 'postprocess', 'total')
LOSS_WINDOW_S = 10.0  # the span over which the recent share of lost frames is taken


@dataclass(frozen=True)
class StreamFrame:
    """A decoded frame of one stream, waiting to be segmented."""

    image: np.ndarray  # H×W×3 uint8 RGB
    epoch: int  # continuity epoch of the stream when the frame arrived
    arrived_s: float  # time.monotonic() at arrival
    decode_ms: float = 0.0


@dataclass(frozen=True)
class StreamSnapshot:
    """A consistent copy of one camera's figures, for diagnostics and reports."""

    name: str
    source: str  # where the frames come from (the input topic)
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
    lost_in_transport: int  # frames DDS reported lost before they reached the node
    missed_in_sequence: int  # frames missing from their publisher's sequence numbers
    recent_lost: int  # frames lost within the last LOSS_WINDOW_S (the larger of the two)
    recent_frames: int  # frames received or lost within the last LOSS_WINDOW_S
    seconds_since_loss: float  # since the last loss was reported (inf: never)
    latency: dict[str, LatencySummary]
    memory_fill: int
    memory_length: int
    memory_writes: int
    memory_writes_skipped: int
    resets: dict[str, int]
    error: str | None
    last_error: str
    warning: str | None
    outputs: tuple[str, ...]  # what the newest result was published as


@dataclass
class _Counts:
    received: int = 0
    published: int = 0
    dropped: int = 0
    bad_frames: int = 0
    lost_in_transport: int = 0
    missed_in_sequence: int = 0
    last_input_s: float | None = None
    last_loss_s: float | None = None
    last_stamp_ns: int | None = None
    last_encoding: str = ''
    last_size: tuple[int, int] | None = None  # (width, height)
    error: str | None = None  # until the next frame is published
    last_error: str = ''
    warning: str | None = None
    outputs: tuple[str, ...] = ()
    resets: Counter[str] = field(default_factory=Counter)


class CameraStream:
    """One camera: its memory (None: every frame on its own), continuity and running figures."""

    def __init__(
        self,
        name: str,
        memory: MemoryBank | None,
        *,
        source: str = '',
        max_gap_s: float = SEQUENCE_BOUNDARY_S,
        latency_window: int | None = None,
        started_s: float | None = None,
    ) -> None:
        """`latency_window`: latencies kept per stage (None: all of them, for offline runs)."""
        self.name = name
        self.source = source
        self.memory = memory
        self._max_gap_ns = seconds_to_ns(max_gap_s)
        self._previous: FrameKey | None = None
        self._epoch = 0  # advanced by every continuity break
        self._memory_epoch = 0  # the epoch of the frames the memory holds
        self._started_s = time.monotonic() if started_s is None else started_s
        self._lock = threading.Lock()
        self._counts = _Counts()
        self._input_rate = RateMeter()
        self._sequence_gaps = SequenceGaps()
        self._recent_loss = RecentLoss(LOSS_WINDOW_S)
        self._output_rate = RateMeter()
        self._latency = {stage: LatencyStats(latency_window) for stage in STAGES}

    # Receiving side ---------------------------------------------------------------------------

    def receive(
        self, key: FrameKey | None, now_s: float, *, encoding: str = '',
        new_sequence: bool = False,
    ) -> tuple[int, str | None]:
        """Count a decoded frame and decide its continuity; return its epoch and reset reason.

        `key` describes the frame (stamp, frame_id, size); without one (data with no stamps),
        `new_sequence` says that the source starts a new sequence here.
        """
        with self._lock:
            if key is not None:
                reason = reset_reason(self._previous, key, self._max_gap_ns)
                self._previous = key
                self._counts.last_stamp_ns = key.stamp_ns
                self._counts.last_size = (key.width, key.height)
            else:
                reason = 'sequence' if new_sequence and self._counts.received else None
            if reason is not None:
                self._epoch += 1
                self._counts.resets[reason] += 1
            self._count_arrival(now_s, encoding)
            return self._epoch, reason

    def record_bad_input(self, now_s: float, problem: str, *, encoding: str = '') -> None:
        """Count a frame that could not be read; the status is an error until a good one."""
        with self._lock:
            self._count_arrival(now_s, encoding)
            self._counts.bad_frames += 1
            self._counts.error = self._counts.last_error = f'bad input: {problem}'

    def count_dropped(self) -> None:
        """Count a frame replaced by a newer one before it was segmented."""
        with self._lock:
            self._counts.dropped += 1

    def track_sequence(self, now_s: float, publisher: bytes, sequence: int) -> int:
        """Check a frame's publication sequence number; return the frames missing before it."""
        with self._lock:
            missed = self._sequence_gaps.missed(publisher, sequence)
            if missed:
                self._counts.missed_in_sequence += missed
                self._counts.last_loss_s = now_s
                self._recent_loss.add(now_s, missed=missed)
            return missed

    def count_lost(self, now_s: float, lost: int) -> None:
        """Count frames the transport reported lost (the reader's `message_lost` event)."""
        with self._lock:
            self._counts.lost_in_transport += lost
            self._counts.last_loss_s = now_s
            self._recent_loss.add(now_s, lost=lost)

    def record_warning(self, problem: str) -> None:
        """Remember a lasting problem of the source (an incompatible publisher)."""
        with self._lock:
            self._counts.warning = problem

    def _count_arrival(self, now_s: float, encoding: str) -> None:
        self._counts.received += 1
        self._counts.last_input_s = now_s
        self._counts.last_encoding = encoding
        self._input_rate.tick(now_s)
        self._recent_loss.add(now_s, received=1)

    # Segmenting side --------------------------------------------------------------------------

    def memory_for(self, frame: StreamFrame) -> MemoryBank | None:
        """Return the memory `frame` reads, cleared first if a continuity break came before it."""
        if frame.epoch != self._memory_epoch:
            self._memory_epoch = frame.epoch
            if self.memory is not None:
                self.memory.reset()
        return self.memory

    def reset_memory(self, reason: str) -> None:
        """Clear the memory now (a reset asked for from outside) and count why."""
        if self.memory is not None:
            self.memory.reset()
        with self._lock:
            self._counts.resets[reason] += 1

    def record_output(
        self, frame: StreamFrame, result: SegmentationResult, now_s: float, *,
        publish_ms: float = 0.0, outputs: tuple[str, ...] = (),
    ) -> dict[str, float]:
        """Count a segmented frame whose outputs are out at `now_s`; return its stage times."""
        timings = {
            'preprocess': frame.decode_ms + result.timings_ms['preprocess'],
            'model': result.timings_ms['model'],
            'postprocess': result.timings_ms['postprocess'] + publish_ms,
            'total': (now_s - frame.arrived_s) * 1e3,
        }
        with self._lock:
            self._counts.published += 1
            self._counts.outputs = outputs
            self._counts.error = None
            self._output_rate.tick(now_s)
            for stage in STAGES:
                self._latency[stage].add(timings[stage])
        return timings

    def record_failure(self, problem: str) -> None:
        """Remember that segmenting a frame failed; the status is an error until one works."""
        with self._lock:
            self._counts.error = self._counts.last_error = f'inference failed: {problem}'

    def snapshot(self, now_s: float) -> StreamSnapshot:
        """Copy the figures (any thread)."""
        with self._lock:
            counts = self._counts
            last_input_s = counts.last_input_s
            silent_since = self._started_s if last_input_s is None else last_input_s
            memory = self.memory
            recent_lost, recent_frames = self._recent_loss.counts(now_s)
            return StreamSnapshot(
                name=self.name,
                source=self.source,
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
                lost_in_transport=counts.lost_in_transport,
                missed_in_sequence=counts.missed_in_sequence,
                recent_lost=recent_lost,
                recent_frames=recent_frames,
                seconds_since_loss=math.inf if counts.last_loss_s is None
                else now_s - counts.last_loss_s,
                latency={stage: stats.summary() for stage, stats in self._latency.items()},
                memory_fill=memory.fill if memory is not None else 0,
                memory_length=memory.length if memory is not None else 0,
                memory_writes=memory.writes if memory is not None else 0,
                memory_writes_skipped=memory.writes_skipped if memory is not None else 0,
                resets={reason: counts.resets[reason] for reason in RESET_REASONS},
                error=counts.error,
                last_error=counts.last_error,
                warning=counts.warning,
                outputs=counts.outputs,
            )


def segment_frames(
    engine: SegmentationEngine, batch: Sequence[tuple[CameraStream, StreamFrame]], *,
    output_size: str = 'input', confidence: bool = False,
) -> list[SegmentationResult]:
    """Segment one frame per stream in one forward pass, each reading its stream's memory."""
    return engine.segment(
        [frame.image for _, frame in batch],
        [stream.memory_for(frame) for stream, frame in batch],
        output_size=output_size,
        confidence=confidence,
    )
