from types import SimpleNamespace

import pytest

from lma_perception.continuity import (
    SEQUENCE_BOUNDARY_S,
    FrameKey,
    reset_reason,
    seconds_to_ns,
    stamp_to_ns,
    time_reset_reason,
)


def _key(stamp_s, frame_id='cam', height=64, width=128):
    return FrameKey(int(stamp_s * 1e9), frame_id, height, width)


@pytest.mark.parametrize('current, reason', [
    (_key(1.1), None),
    (_key(1.0), None),
    (_key(0.9), 'time_backwards'),
    (_key(2.5), 'gap'),
    (_key(1.1, height=32), 'size_changed'),
    (_key(1.1, frame_id='other'), 'frame_id_changed'),
])
def test_reset_reason(current, reason):
    assert reset_reason(_key(1.0), current, max_gap_ns=10**9) == reason


def test_first_frame_needs_no_reset():
    assert reset_reason(None, _key(5.0), max_gap_ns=10**9) is None


def test_the_boundary_itself_carries_over_and_anything_past_it_resets():
    boundary = seconds_to_ns(SEQUENCE_BOUNDARY_S)
    assert time_reset_reason(0, boundary, boundary) is None
    assert time_reset_reason(0, boundary + 1, boundary) == 'gap'


def test_stamps_of_rclpy_and_rosbags_messages_convert_alike():
    from builtin_interfaces.msg import Time

    assert stamp_to_ns(Time(sec=3, nanosec=7)) == 3_000_000_007
    assert stamp_to_ns(SimpleNamespace(sec=3, nanosec=7)) == 3_000_000_007
