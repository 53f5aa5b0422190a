import numpy as np
from diagnostic_msgs.msg import DiagnosticStatus

from lma_perception.continuity import FrameKey
from lma_perception.ros.diagnostics import HealthLimits, camera_status
from lma_perception.runtime.engine import SegmentationResult
from lma_perception.runtime.stream import CameraStream, StreamFrame


def _stream():
    stream = CameraStream('front', None, source='front/image', latency_window=10,
                          started_s=0.0)
    epoch, _ = stream.receive(FrameKey(10**9, 'cam', 64, 128), 1.0, encoding='rgb8')
    result = SegmentationResult(
        np.zeros((64, 128), np.uint8), None,
        {'preprocess': 1.0, 'model': 2.0, 'postprocess': 3.0}, memory_written=False,
    )
    stream.record_output(StreamFrame(np.zeros((64, 128, 3), np.uint8), epoch, 1.0), result,
                         1.05, outputs=('labels',))
    return stream


def test_status_ok_warn_error():
    limits = HealthLimits(no_input_timeout_s=2.0, latency_budget_ms=100.0)
    stream = _stream()
    ok = camera_status(stream.snapshot(1.5), int(1.2e9), 'cpu', limits)
    assert ok.level == DiagnosticStatus.OK and ok.message == 'ok'
    assert ok.name == 'lma_perception: front' and ok.hardware_id == 'front'
    values = {kv.key: kv.value for kv in ok.values}
    assert values['current_delay_from_realtime_ms'] == '200.00'
    assert values['total_ms_p50'] == '50.00'
    assert values['resolution'] == '128x64'
    assert values['encoding'] == 'rgb8'

    slow = camera_status(stream.snapshot(1.5), 0, 'cpu', HealthLimits(2.0, 10.0))
    assert slow.level == DiagnosticStatus.WARN
    assert slow.message == 'latency p95 50.0 ms over budget 10.0 ms'

    silent = camera_status(stream.snapshot(4.0), 0, 'cpu', limits)
    assert silent.level == DiagnosticStatus.ERROR
    assert silent.message.startswith('no input for 3.0 s on front/image')

    stream.record_bad_input(4.0, 'unsupported encoding')
    bad = camera_status(stream.snapshot(4.5), 0, 'cpu', limits)
    assert bad.level == DiagnosticStatus.ERROR
    assert bad.message == 'bad input: unsupported encoding'
