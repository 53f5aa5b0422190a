import numpy as np
import pytest
import torch

from lma_perception.continuity import FrameKey
from lma_perception.memory import MemoryBank
from lma_perception.runtime.engine import SegmentationResult
from lma_perception.runtime.stream import STAGES, CameraStream, StreamFrame

IMAGE = np.zeros((64, 128, 3), np.uint8)


def _key(stamp_s, frame_id='cam', height=64, width=128):
    return FrameKey(round(stamp_s * 1e9), frame_id, height, width)


def _written_memory():
    memory = MemoryBank(4)
    memory.write(torch.ones(16, 8, 16), torch.ones(64, 8, 16))
    return memory


def _receive(stream, stamp_s, **key):
    epoch, reason = stream.receive(_key(stamp_s, **key), now_s=stamp_s)
    return StreamFrame(IMAGE, epoch, arrived_s=stamp_s), reason


def test_a_gap_between_received_frames_resets_and_skipped_frames_do_not():
    stream = CameraStream('front', _written_memory(), max_gap_s=0.5)
    first, _ = _receive(stream, 1.0)
    assert stream.memory_for(first).fill == 1
    # An overloaded node segments only every sixth frame: 0.6 s apart, yet the camera never
    # paused, so the memory carries over.
    for step in range(1, 7):
        latest, reason = _receive(stream, 1.0 + step * 0.1)
        assert reason is None
    assert stream.memory_for(latest).fill == 1
    after_gap, reason = _receive(stream, 2.2)
    assert reason == 'gap'
    assert stream.memory_for(after_gap).fill == 0
    assert stream.snapshot(3.0).resets['gap'] == 1


@pytest.mark.parametrize('change, reason', [
    ({'frame_id': 'other'}, 'frame_id_changed'),
    ({'height': 32}, 'size_changed'),
])
def test_frame_id_and_size_changes_reset(change, reason):
    stream = CameraStream('front', _written_memory())
    _receive(stream, 1.0)
    frame, got = _receive(stream, 1.05, **change)
    assert got == reason and stream.memory_for(frame).fill == 0


def test_a_reset_applies_to_the_frames_after_the_break_only():
    stream = CameraStream('front', _written_memory())
    before, _ = _receive(stream, 1.0)
    after, reason = _receive(stream, 0.5)  # received while `before` still waits
    assert reason == 'time_backwards'
    assert stream.memory_for(before).fill == 1  # still the old sequence: keeps its memory
    assert stream.memory_for(after).fill == 0


def test_frames_without_stamps_reset_where_the_source_says_a_sequence_starts():
    stream = CameraStream('front', _written_memory())
    epoch, reason = stream.receive(None, 0.0, new_sequence=True)  # the very first frame
    assert reason is None
    assert stream.memory_for(StreamFrame(IMAGE, epoch, 0.0)).fill == 1
    epoch, reason = stream.receive(None, 0.1, new_sequence=True)
    assert reason == 'sequence'
    assert stream.memory_for(StreamFrame(IMAGE, epoch, 0.1)).fill == 0


def test_no_memory_is_none_and_resets_are_still_counted():
    stream = CameraStream('front', None)
    _receive(stream, 1.0)
    frame, reason = _receive(stream, 5.0)
    assert reason == 'gap' and stream.memory_for(frame) is None
    stream.reset_memory('service')
    snapshot = stream.snapshot(6.0)
    assert snapshot.memory_length == 0
    assert snapshot.resets['gap'] == 1 and snapshot.resets['service'] == 1


def test_stage_timings_have_one_definition():
    stream = CameraStream('front', None, latency_window=10, started_s=0.0)
    epoch, _ = stream.receive(_key(1.0), 1.0)
    frame = StreamFrame(IMAGE, epoch, arrived_s=1.0, decode_ms=2.0)
    result = SegmentationResult(
        np.zeros((64, 128), np.uint8), None,
        {'preprocess': 1.0, 'model': 10.0, 'postprocess': 3.0}, memory_written=False,
    )
    timings = stream.record_output(frame, result, now_s=1.05, publish_ms=4.0,
                                   outputs=('labels',))
    assert set(timings) == set(STAGES)
    assert timings == pytest.approx(
        {'preprocess': 3.0, 'model': 10.0, 'postprocess': 7.0, 'total': 50.0}
    )
    snapshot = stream.snapshot(1.1)
    assert snapshot.published == 1 and snapshot.received == 1
    assert snapshot.latency['total'].p50 == pytest.approx(50.0)
    assert snapshot.outputs == ('labels',)


def test_bad_input_and_drops_are_counted():
    stream = CameraStream('front', None, started_s=0.0)
    stream.record_bad_input(1.0, 'unsupported encoding', encoding='rgb16')
    _receive(stream, 1.1)
    stream.count_dropped()
    snapshot = stream.snapshot(1.2)
    assert snapshot.received == 2 and snapshot.bad_frames == 1 and snapshot.dropped == 1
    assert snapshot.error == 'bad input: unsupported encoding'
