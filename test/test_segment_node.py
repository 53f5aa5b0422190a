"""The segmentation node on a real ROS graph with a real (random-weight) model.

Every wait is bounded; nodes are destroyed and executors shut down by the `graph` fixture.
"""

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict

import numpy as np
import pytest
import rclpy
from conftest import next_domain_id
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.event_handler import PublisherEventCallbacks
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_srvs.srv import Trigger

from lma_perception.continuity import stamp_to_ns
from lma_perception.labels import PALETTE
from lma_perception.ros.messages import array_to_image_msg, mono8_msg_to_array
from lma_perception.ros.segment_node import SegmentNode, SetupError, main

TIMEOUT_S = 30.0
QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
VALID_LABELS = set(range(19)) | {255}


# --- the node on a real graph ---------------------------------------------------------------


def _stamp_ns(msg):
    return stamp_to_ns(msg.header.stamp)


def _image(pixels, stamp_ns, frame_id='cam_optical', encoding='rgb8'):
    msg = array_to_image_msg(pixels, Image().header)
    msg.encoding = encoding
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    return msg


def _pixels(height=64, width=128, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def wait_until(condition, timeout_s=TIMEOUT_S):
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


class Probe(Node):
    """Plays the cameras and records what the segmentation node publishes."""

    def __init__(self, context, cameras):
        super().__init__('probe', context=context)
        self.received = defaultdict(list)
        self.diagnostics = []
        self._image_publishers = {
            camera: self.create_publisher(Image, f'{camera}/image', QOS) for camera in cameras
        }
        self.clock = self.create_publisher(Clock, '/clock', QOS)
        self.create_subscription(DiagnosticArray, '/diagnostics', self.diagnostics.append, QOS)

    def listen(self, camera, output):
        self.create_subscription(
            Image, f'{camera}/{output}', self.received[(camera, output)].append, QOS
        )

    def send(self, camera, msg):
        self._image_publishers[camera].publish(msg)

    def send_until_labelled(self, camera, msg, timeout_s=TIMEOUT_S):
        """Publish (again while discovery settles) until labels with the stamp come back."""
        labels = self.received[(camera, 'labels')]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.send(camera, msg)
            if wait_until(lambda: any(_stamp_ns(m) == _stamp_ns(msg) for m in labels), 1.0):
                return next(m for m in labels if _stamp_ns(m) == _stamp_ns(msg))
        raise AssertionError(f'no labels for {camera} at {_stamp_ns(msg)}')

    def status(self, camera):
        """The newest diagnostics status of `camera`, or None."""
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.hardware_id == camera:
                    return status
        return None


def _node(engine, ros_context, cameras=('front', 'rear'), **parameters):
    overrides = [Parameter('cameras', value=list(cameras))]
    overrides += [Parameter(name, value=value) for name, value in parameters.items()]
    return SegmentNode(engine=engine, context=ros_context, parameter_overrides=overrides)


def _values(status):
    return {kv.key: kv.value for kv in status.values}


def test_two_cameras_label_with_the_input_headers_and_sizes(engine, ros_context, graph):
    node = _node(engine, ros_context)
    probe = Probe(ros_context, ['front', 'rear'])
    for camera in ('front', 'rear'):
        probe.listen(camera, 'labels')
    graph(node, probe)

    sizes = {'front': (64, 128), 'rear': (50, 100)}
    encodings = {'front': 'rgb8', 'rear': 'bgr8'}
    for index in range(3):
        for camera, (height, width) in sizes.items():
            stamp_ns = 1_000_000_000 + index * 100_000_000 + (camera == 'rear')
            sent = _image(_pixels(height, width, index), stamp_ns, f'{camera}_optical',
                          encodings[camera])
            labels = probe.send_until_labelled(camera, sent)
            assert labels.header == sent.header
            assert (labels.encoding, labels.height, labels.width) == ('mono8', height, width)
            assert set(np.unique(mono8_msg_to_array(labels)).tolist()) <= VALID_LABELS
    for snapshot in node.camera_snapshots():
        assert snapshot.published >= 3
        assert snapshot.memory_fill == 3


def test_network_output_resolution(engine, ros_context, graph):
    node = _node(engine, ros_context, cameras=['front'], output_resolution='network')
    probe = Probe(ros_context, ['front'])
    probe.listen('front', 'labels')
    graph(node, probe)
    labels = probe.send_until_labelled('front', _image(_pixels(96, 200), 5 * 10**9))
    assert (labels.height, labels.width) == (64, 128)


def test_pictures_are_made_only_while_subscribed(engine, ros_context, graph):
    node = _node(engine, ros_context, cameras=['front'], publish_confidence=True)
    probe = Probe(ros_context, ['front'])
    probe.listen('front', 'labels')
    graph(node, probe)
    image = _pixels()
    probe.send_until_labelled('front', _image(image, 10**9))
    assert node.camera_snapshots()[0].outputs == ('labels',)

    for output in ('color_mask', 'overlay', 'confidence'):
        probe.listen('front', output)
    stamp_ns = 2 * 10**9
    while not all(probe.received[('front', output)]
                  for output in ('color_mask', 'overlay', 'confidence')):
        stamp_ns += 10**8
        probe.send_until_labelled('front', _image(image, stamp_ns))
    assert node.camera_snapshots()[0].outputs == ('labels', 'color_mask', 'overlay',
                                                  'confidence')

    labels_by_stamp = {_stamp_ns(m): mono8_msg_to_array(m)
                       for m in probe.received[('front', 'labels')]}
    color = probe.received[('front', 'color_mask')][-1]
    assert color.encoding == 'rgb8' and (color.height, color.width) == (64, 128)
    np.testing.assert_array_equal(
        np.frombuffer(color.data, np.uint8).reshape(64, 128, 3),
        PALETTE[labels_by_stamp[_stamp_ns(color)]],
    )
    overlay = probe.received[('front', 'overlay')][-1]
    assert overlay.encoding == 'rgb8' and overlay.header.frame_id == 'cam_optical'
    confidence = probe.received[('front', 'confidence')][-1]
    assert confidence.encoding == 'mono8' and (confidence.height, confidence.width) == (64, 128)


def test_diagnostics_per_camera(engine, ros_context, graph):
    node = _node(engine, ros_context, cameras=['front', 'rear', 'idle'],
                 diagnostics_period_s=0.2, latency_budget_ms=1e6, no_input_timeout_s=0.5)
    probe = Probe(ros_context, ['front', 'rear'])
    for camera in ('front', 'rear'):
        probe.listen(camera, 'labels')
    graph(node, probe)
    for camera in ('front', 'rear'):
        probe.send_until_labelled(camera, _image(_pixels(), 10**9, f'{camera}_optical'))

    def published(camera):
        status = probe.status(camera)
        return status is not None and _values(status)['frames_published'] != '0'

    assert wait_until(lambda: published('front') and published('rear'))
    front = probe.status('front')
    assert front.name == 'lma_perception: front'
    assert front.level == DiagnosticStatus.OK, front.message
    values = _values(front)
    for key in ('frame_rate_node', 'frame_rate_output', 'current_delay_from_realtime_ms',
                'total_dropped_frames', 'preprocess_ms_p50', 'model_ms_p95',
                'postprocess_ms_max', 'total_ms_p95', 'memory_fill', 'memory_length',
                'memory_writes_skipped', 'memory_resets', 'device', 'encoding'):
        assert key in values, key
    assert values['device'] == 'cpu'
    assert values['memory_fill'] == '1' and values['memory_length'] == '4'
    assert values['resolution'] == '128x64' and values['encoding'] == 'rgb8'
    assert float(values['model_ms_p50']) > 0

    # A camera that never sent anything turns ERROR after no_input_timeout_s.
    assert wait_until(lambda: probe.status('idle').level == DiagnosticStatus.ERROR)
    idle = probe.status('idle')
    assert 'no input for' in idle.message and '/idle/image' in idle.message


@pytest.mark.parametrize('bad, problem', [
    ({'encoding': '32FC1', 'step': 512}, 'more than 8 bits'),
    ({'encoding': 'jpeg'}, "unsupported encoding 'jpeg'"),
    ({'step': 100}, 'step 100 is smaller'),
    ({'data': bytes(10)}, 'data has 10 bytes'),
    ({'height': 0, 'width': 0, 'step': 0, 'data': b''}, 'empty image'),
])
def test_bad_input_is_an_error_for_that_camera_only(engine, ros_context, graph, bad, problem):
    node = _node(engine, ros_context, diagnostics_period_s=0.2, latency_budget_ms=1e6)
    probe = Probe(ros_context, ['front', 'rear'])
    for camera in ('front', 'rear'):
        probe.listen(camera, 'labels')
    graph(node, probe)
    probe.send_until_labelled('rear', _image(_pixels(), 10**9))

    broken = _image(_pixels(), 10**9)
    for field, value in bad.items():
        setattr(broken, field, value)

    def front_in_error():
        status = probe.status('front')
        return status is not None and status.level == DiagnosticStatus.ERROR and (
            problem in status.message
        )

    deadline = time.monotonic() + TIMEOUT_S
    while not front_in_error() and time.monotonic() < deadline:
        probe.send('front', broken)
        time.sleep(0.1)
    status = probe.status('front')
    assert front_in_error(), status and status.message
    assert int(_values(status)['bad_frames']) >= 1
    assert problem in _values(status)['last_error']
    assert probe.received[('front', 'labels')] == []

    # The other camera keeps going.
    probe.send_until_labelled('rear', _image(_pixels(), 2 * 10**9))
    assert probe.status('rear').level != DiagnosticStatus.ERROR


def test_memory_resets_on_time_jumps_size_and_frame_changes(engine, ros_context, graph):
    node = _node(engine, ros_context, cameras=['front'], reset_gap_s=1)  # an int is fine
    probe = Probe(ros_context, ['front'])
    probe.listen('front', 'labels')
    graph(node, probe)

    def send(stamp_s, frame_id='cam_optical', height=64):
        probe.send_until_labelled(
            'front', _image(_pixels(height=height), int(stamp_s * 1e9), frame_id)
        )
        return node.camera_snapshots()[0]

    for stamp_s in (10.0, 10.1, 10.2):
        snapshot = send(stamp_s)
    assert snapshot.memory_fill == 3 and sum(snapshot.resets.values()) == 0

    snapshot = send(9.0)  # a bag loop: time runs backwards
    assert snapshot.resets['time_backwards'] == 1
    assert snapshot.memory_fill == 1
    snapshot = send(15.0)  # frames missing for longer than reset_gap_s
    assert snapshot.resets['gap'] == 1 and snapshot.memory_fill == 1
    send(15.1)
    snapshot = send(15.2, frame_id='other_optical')
    assert snapshot.resets['frame_id_changed'] == 1 and snapshot.memory_fill == 1
    snapshot = send(15.3, frame_id='other_optical', height=48)
    assert snapshot.resets['size_changed'] == 1 and snapshot.memory_fill == 1


def test_reset_memory_service(engine, ros_context, graph):
    node = _node(engine, ros_context)
    probe = Probe(ros_context, ['front', 'rear'])
    for camera in ('front', 'rear'):
        probe.listen(camera, 'labels')
    client = probe.create_client(Trigger, '/segment_node/reset_memory')
    graph(node, probe)
    for camera in ('front', 'rear'):
        for index in range(2):
            probe.send_until_labelled(camera, _image(_pixels(), 10**9 + index * 10**8))
    assert [s.memory_fill for s in node.camera_snapshots()] == [2, 2]

    assert client.wait_for_service(timeout_sec=TIMEOUT_S)
    future = client.call_async(Trigger.Request())
    assert wait_until(future.done)
    assert future.result().success
    assert '2 camera' in future.result().message
    for snapshot in node.camera_snapshots():
        assert snapshot.memory_fill == 0
        assert snapshot.resets['service'] == 1


def test_frame_age_uses_sim_time(engine, ros_context, graph):
    node = _node(engine, ros_context, cameras=['front'], use_sim_time=True,
                 diagnostics_period_s=0.2)
    probe = Probe(ros_context, ['front'])
    probe.listen('front', 'labels')
    graph(node, probe)
    clock = Clock()
    clock.clock.sec = 100
    assert wait_until(lambda: (probe.clock.publish(clock), node.get_clock().now().nanoseconds
                               == 100 * 10**9)[1])
    probe.send_until_labelled('front', _image(_pixels(), 99_500_000_000))

    def age():
        status = probe.status('front')
        return status and _values(status)['current_delay_from_realtime_ms']

    assert wait_until(lambda: age() == '500.00'), age()


def test_qos_overrides_apply_and_incompatible_publishers_are_reported(
    engine, ros_context, graph
):
    node = _node(engine, ros_context, cameras=['front'], diagnostics_period_s=0.2,
                 latency_budget_ms=1e6, **{
                     'qos_overrides./front/image.subscription.reliability': 'reliable',
                 })
    probe = Node('best_effort_camera', context=ros_context)
    probe.create_publisher(
        Image, 'front/image', QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT),
        event_callbacks=PublisherEventCallbacks(incompatible_qos=lambda info: None),
    )
    statuses = []
    probe.create_subscription(DiagnosticArray, '/diagnostics',
                              lambda array: statuses.extend(array.status), QOS)
    graph(node, probe)
    assert wait_until(lambda: any('incompatible QoS (reliability)' in status.message
                                  for status in statuses))
    status = next(s for s in statuses if 'incompatible QoS' in s.message)
    assert status.level in (DiagnosticStatus.WARN, DiagnosticStatus.ERROR)
    assert 'a publisher on /front/image has incompatible QoS' in status.message


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    from lma_perception.models import create_model, save_checkpoint

    path = tmp_path_factory.mktemp('weights') / 'tiny.safetensors'
    save_checkpoint(path, create_model('lma_erfnet'), input_size=(64, 128))
    return path


def test_weights_parameter_loads_a_checkpoint(checkpoint, ros_context, graph):
    node = SegmentNode(context=ros_context, parameter_overrides=[
        Parameter('cameras', value=['front']),
        Parameter('weights', value=str(checkpoint)),
        Parameter('device', value='cpu'),
        Parameter('memory_length', value=2),
    ])
    probe = Probe(ros_context, ['front'])
    probe.listen('front', 'labels')
    graph(node, probe)
    for index in range(3):
        labels = probe.send_until_labelled('front', _image(_pixels(72, 90), 10**9 + index))
        assert (labels.height, labels.width) == (72, 90)
    snapshot = node.camera_snapshots()[0]
    assert (snapshot.memory_fill, snapshot.memory_length) == (2, 2)


def test_memory_length_zero_segments_single_frames(engine, ros_context, graph):
    node = _node(engine, ros_context, cameras=['front'], memory_length=0)
    probe = Probe(ros_context, ['front'])
    probe.listen('front', 'labels')
    graph(node, probe)
    probe.send_until_labelled('front', _image(_pixels(), 10**9))
    snapshot = node.camera_snapshots()[0]
    assert (snapshot.memory_fill, snapshot.memory_length, snapshot.published) == (0, 0, 1)


def test_unloadable_weights_are_a_setup_error(tmp_path, ros_context):
    broken = tmp_path / 'broken.safetensors'
    broken.write_bytes(b'not a checkpoint')
    overrides = [Parameter('weights', value=str(broken)), Parameter('device', value='cpu')]
    with pytest.raises(SetupError, match=r'cannot load the model from .*broken.safetensors'):
        SegmentNode(context=ros_context, parameter_overrides=overrides)


@pytest.mark.parametrize('signum', [signal.SIGINT, signal.SIGTERM], ids=['SIGINT', 'SIGTERM'])
def test_executable_stops_cleanly_on_signals(checkpoint, signum):
    env = dict(os.environ, ROS_DOMAIN_ID=str(next_domain_id()),
               ROS_AUTOMATIC_DISCOVERY_RANGE='LOCALHOST')
    process = subprocess.Popen(
        [sys.executable, '-m', 'lma_perception.ros.segment_node', '--ros-args',
         '-p', f'weights:={checkpoint}', '-p', 'device:=cpu'],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    lines = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout))
    reader.start()
    try:
        assert wait_until(lambda: any('segmenting 1 camera' in line for line in lines)), lines
        process.send_signal(signum)
        try:
            status = process.wait(timeout=TIMEOUT_S)
        except subprocess.TimeoutExpired:
            status = 'still running'
    finally:
        process.kill()
        reader.join(timeout=10)
    assert status == 0, ''.join(lines)
    assert not any('Traceback' in line for line in lines), ''.join(lines)


def test_main_exits_with_status_1_on_a_bad_parameter(monkeypatch):
    monkeypatch.setenv('ROS_DOMAIN_ID', str(next_domain_id()))
    assert main(['segment_node', '--ros-args', '-p', 'device:=gpu']) == 1
    assert not rclpy.ok()
