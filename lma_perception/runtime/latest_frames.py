"""The handover between a node's subscription callbacks and its inference worker.

One slot per camera holds its newest frame waiting to be segmented; plain Python, guarded by one
condition variable.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

Frame = TypeVar('Frame')


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
