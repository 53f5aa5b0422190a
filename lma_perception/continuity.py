"""When a camera frame continues the previous one: the rule of the node, evaluator and bags.

A camera's memory only describes its current view while frames follow each other closely in
time, from the same camera, at the same size. The node and the offline evaluator apply this rule
through `lma_perception.runtime.stream.CameraStream`; the bag writer spaces sequences further
apart than `SEQUENCE_BOUNDARY_S` and the bag reader starts a sequence exactly where the rule
would reset, so live and offline evaluation of a bag see the same sequences.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# A forward jump larger than this between two frames of a camera starts a new sequence. Cameras
# run at 10–30 Hz; half a second is several missing frames, after which the view has moved on.
SEQUENCE_BOUNDARY_S = 0.5
# 'sequence': the data says that a new sequence starts (trees, which have no stamps);
# 'service': a reset asked for from outside.
RESET_REASONS = (
    'time_backwards', 'gap', 'size_changed', 'frame_id_changed', 'sequence', 'service',
)


class Stamp(Protocol):
    """A `builtin_interfaces/Time`, from rclpy or from the `rosbags` readers alike."""

    sec: int
    nanosec: int


def stamp_to_ns(stamp: Stamp) -> int:
    """Nanoseconds of a ROS time stamp."""
    return stamp.sec * 1_000_000_000 + stamp.nanosec


def seconds_to_ns(seconds: float) -> int:
    """Nanoseconds of a duration in seconds, rounded."""
    return round(seconds * 1e9)


@dataclass(frozen=True)
class FrameKey:
    """What decides whether a frame continues its camera's previous one."""

    stamp_ns: int
    frame_id: str
    height: int
    width: int


def time_reset_reason(previous_ns: int, current_ns: int, max_gap_ns: int) -> str | None:
    """'time_backwards', 'gap' or None for two consecutive stamps of one camera.

    Stamps running backwards mean a bag looped or was restarted; a jump forward larger than
    `max_gap_ns` means frames are missing.
    """
    if current_ns < previous_ns:
        return 'time_backwards'
    if current_ns - previous_ns > max_gap_ns:
        return 'gap'
    return None


def reset_reason(previous: FrameKey | None, current: FrameKey, max_gap_ns: int) -> str | None:
    """Return why the memory must be cleared before `current`, or None if it may be read.

    Besides the stamps (`time_reset_reason`), a new size or frame_id means another camera or
    another mounting. In each case the remembered features no longer describe this view.
    """
    if previous is None:
        return None
    reason = time_reset_reason(previous.stamp_ns, current.stamp_ns, max_gap_ns)
    if reason is not None:
        return reason
    if (current.height, current.width) != (previous.height, previous.width):
        return 'size_changed'
    if current.frame_id != previous.frame_id:
        return 'frame_id_changed'
    return None
