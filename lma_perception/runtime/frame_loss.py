"""Frames that never reached a camera's stream: gaps in publisher sequences, recent loss share.

Two sources tell the node that frames went missing before its callback saw them:
- the reader's `message_lost` event: DDS knows it dropped samples on the wire (a fragment of a
  best-effort sample that never came, a sample that did not fit the transport);
- gaps in the publication sequence numbers of a known publisher: every frame the publisher
  wrote and the callback never got, so wire losses plus frames replaced in the depth-1 input
  queue before the executor took them.
A frame can count in both, so the recent share of lost frames takes the larger of the two.

Plain Python, no ROS; callers serialise access (`CameraStream` holds its lock).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

MAX_PUBLISHERS = 16  # publishers remembered per input; a restarted driver comes back as a new one


class SequenceGaps:
    """Frames skipped in the publication sequence numbers of each publisher of one input."""

    def __init__(self) -> None:
        self._last: OrderedDict[bytes, int] = OrderedDict()

    def missed(self, publisher: bytes, sequence: int) -> int:
        """Record a frame's sequence number; return how many of its predecessors never came."""
        previous = self._last.pop(publisher, None)
        self._last[publisher] = sequence
        if len(self._last) > MAX_PUBLISHERS:
            self._last.popitem(last=False)
        # A first frame, or a number that runs backwards (a reordered or restarted writer).
        if previous is None or sequence <= previous:
            return 0
        return sequence - previous - 1


@dataclass
class _Second:
    second: int
    received: int = 0
    lost: int = 0  # reported by DDS
    missed: int = 0  # sequence gaps


class RecentLoss:
    """The share of frames lost within the last `window_s` seconds, in one-second buckets."""

    def __init__(self, window_s: float) -> None:
        self._window_s = window_s
        self._seconds: deque[_Second] = deque()

    def add(self, now_s: float, *, received: int = 0, lost: int = 0, missed: int = 0) -> None:
        """Count frames received, reported lost and missing in sequence at `now_s`."""
        second = int(now_s)
        if not self._seconds or self._seconds[-1].second != second:
            self._seconds.append(_Second(second))
        bucket = self._seconds[-1]
        bucket.received += received
        bucket.lost += lost
        bucket.missed += missed
        self._forget(now_s)

    def counts(self, now_s: float) -> tuple[int, int]:
        """Return (frames lost, frames that arrived or were lost) within the window."""
        self._forget(now_s)
        received = sum(bucket.received for bucket in self._seconds)
        lost = max(sum(bucket.lost for bucket in self._seconds),
                   sum(bucket.missed for bucket in self._seconds))
        return lost, received + lost

    def _forget(self, now_s: float) -> None:
        while self._seconds and self._seconds[0].second < now_s - self._window_s:
            self._seconds.popleft()
