"""The node's interface for perception stacks, on a real ROS graph with a real model.

Compressed input, camera_info scaled to the labels and the class metadata parameters.
"""

import time
from collections import defaultdict

import cv2
import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rcl_interfaces.srv import DescribeParameters, GetParameters
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CameraInfo, CompressedImage, Image
from test_segment_node import wait_until

from lma_perception.codecs import compressed_to_rgb
from lma_perception.continuity import stamp_to_ns
from lma_perception.labels import TRAIN_LABELS
from lma_perception.ros.compressed import rgb_to_compressed_msg
from lma_perception.ros.messages import array_to_image_msg, mono8_msg_to_array
from lma_perception.ros.segment_node import SegmentNode, SetupError

TIMEOUT_S = 30.0
QOS = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def scene(height=64, width=128, seed=0):
    """A picture with edges and flat regions (JPEG of pure noise would say little)."""
    rng = np.random.default_rng(seed)
    image = np.zeros((height, width, 3), np.uint8)
    for _ in range(12):
        x, y = rng.integers(0, width), rng.integers(0, height)
        cv2.rectangle(image, (int(x), int(y)), (int(x) + 40, int(y) + 20),
                      rng.integers(0, 256, 3).tolist(), -1)
    return image


def stamped(msg, stamp_ns, frame_id='cam_optical'):
    msg.header.frame_id = frame_id
    msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 10**9)
    return msg


class Probe(Node):
    """Publishes raw, compressed and camera_info topics; records labels and diagnostics."""

    def __init__(self, context):
        super().__init__('probe', context=context)
        self.received = defaultdict(list)
        self.diagnostics = []
        self._outgoing = {}
        self.create_subscription(DiagnosticArray, '/diagnostics', self.diagnostics.append, QOS)

    def listen(self, topic, msg_type=Image):
        self.create_subscription(msg_type, topic, self.received[topic].append, QOS)

    def send(self, topic, msg):
        if topic not in self._outgoing:
            self._outgoing[topic] = self.create_publisher(type(msg), topic, QOS)
        self._outgoing[topic].publish(msg)

    def send_until_labelled(self, topic, msg, labels_topic):
        """Publish (again while discovery settles) until labels with the stamp come back."""
        labels = self.received[labels_topic]
        stamp = stamp_to_ns(msg.header.stamp)
        deadline = time.monotonic() + TIMEOUT_S
        while time.monotonic() < deadline:
            self.send(topic, msg)
            if wait_until(lambda: any(stamp_to_ns(m.header.stamp) == stamp for m in labels), 1):
                return next(m for m in labels if stamp_to_ns(m.header.stamp) == stamp)
        raise AssertionError(f'no labels on {labels_topic} at {stamp}')

    def status(self, camera):
        for array in reversed(self.diagnostics):
            for status in array.status:
                if status.hardware_id == camera:
                    return status
        return None


def make_node(engine, context, cameras, **parameters):
    overrides = [Parameter('cameras', value=list(cameras))]
    overrides += [Parameter(name, value=value) for name, value in parameters.items()]
    return SegmentNode(engine=engine, context=context, parameter_overrides=overrides)


# --- compressed input -----------------------------------------------------------------------


@pytest.mark.parametrize('compression', ['jpeg', 'png'])
def test_compressed_frames_give_the_labels_of_the_decoded_raw_frame(
        engine, ros_context, graph, compression):
    # Memory off: the labels of a frame then depend on that frame alone.
    node = make_node(engine, ros_context, ['packed', 'plain'], memory_length=0,
                     **{'packed.transport': 'compressed'})
    probe = Probe(ros_context)
    probe.listen('packed/labels')
    probe.listen('plain/labels')
    graph(node, probe)

    image = scene(seed=3)
    message = stamped(rgb_to_compressed_msg(image, CompressedImage().header, compression,
                                            jpeg_quality=60), 10**9)
    assert message.format == f'rgb8; {compression} compressed bgr8'
    decoded = compressed_to_rgb(message.format, bytes(message.data))
    if compression == 'jpeg':
        assert not np.array_equal(decoded, image)  # lossy: the test compares decoded pixels
    else:
        np.testing.assert_array_equal(decoded, image)
    raw = stamped(array_to_image_msg(decoded, Image().header), 10**9)

    from_compressed = probe.send_until_labelled('packed/image/compressed', message,
                                                'packed/labels')
    from_raw = probe.send_until_labelled('plain/image', raw, 'plain/labels')
    assert from_compressed.header == message.header
    labels = mono8_msg_to_array(from_compressed)
    assert labels.shape == (64, 128)
    assert len(np.unique(labels)) > 1
    np.testing.assert_array_equal(labels, mono8_msg_to_array(from_raw))
    packed = next(s for s in node.camera_snapshots() if s.name == 'packed')
    assert packed.source == '/packed/image/compressed'


def test_a_corrupt_compressed_payload_is_an_error_for_that_camera_only(
        engine, ros_context, graph):
    node = make_node(engine, ros_context, ['broken', 'fine'], diagnostics_period_s=0.2,
                     latency_budget_ms=1e6, **{'broken.transport': 'compressed',
                                               'fine.transport': 'compressed'})
    probe = Probe(ros_context)
    probe.listen('broken/labels')
    probe.listen('fine/labels')
    graph(node, probe)
    good = rgb_to_compressed_msg(scene(), CompressedImage().header, 'jpeg')
    probe.send_until_labelled('fine/image/compressed', stamped(good, 10**9), 'fine/labels')

    corrupt = stamped(CompressedImage(format='rgb8; jpeg compressed bgr8',
                                      data=bytes(good.data[:200]) + bytes(300)), 10**9)

    def broken_in_error():
        status = probe.status('broken')
        return status is not None and status.level == DiagnosticStatus.ERROR and \
            'corrupt jpeg payload' in status.message

    deadline = time.monotonic() + TIMEOUT_S
    while not broken_in_error() and time.monotonic() < deadline:
        probe.send('broken/image/compressed', corrupt)
        time.sleep(0.1)
    status = probe.status('broken')
    assert broken_in_error(), status and status.message
    values = {kv.key: kv.value for kv in status.values}
    assert int(values['bad_frames']) >= 1
    assert values['encoding'] == 'rgb8; jpeg compressed bgr8'
    assert probe.received['broken/labels'] == []

    # The other camera keeps publishing.
    probe.send_until_labelled('fine/image/compressed', stamped(good, 2 * 10**9), 'fine/labels')
    assert probe.status('fine').level != DiagnosticStatus.ERROR


# --- camera_info ----------------------------------------------------------------------------


def camera_info(width, height):
    info = CameraInfo(width=width, height=height, distortion_model='plumb_bob')
    info.d = [0.1, -0.05, 0.001, 0.0, 0.0]
    info.k = [300.0, 0.0, 160.0, 0.0, 310.0, 60.0, 0.0, 0.0, 1.0]
    info.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    info.p = [290.0, 0.0, 158.0, -29.0, 0.0, 305.0, 61.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    return info


def test_camera_info_is_republished_scaled_to_network_resolution(engine, ros_context, graph):
    node = make_node(engine, ros_context, ['front'], output_resolution='network')
    probe = Probe(ros_context)
    probe.listen('front/labels')
    probe.listen('front/labels/camera_info', CameraInfo)
    graph(node, probe)

    # A 320x120 camera, labels at the network's 128x64: sx = 0.4, sy = 8 / 15.
    info = stamped(camera_info(320, 120), 10**9)
    infos = probe.received['front/labels/camera_info']
    stamp_ns = 10**9
    while not infos:
        assert stamp_ns < 10**9 + TIMEOUT_S * 10**9, 'no labels/camera_info'
        probe.send('front/camera_info', info)
        labels = probe.send_until_labelled(
            'front/image', stamped(array_to_image_msg(scene(120, 320), Image().header),
                                   stamp_ns), 'front/labels')
        stamp_ns += 10**8
        wait_until(lambda: bool(infos), 1.0)
    scaled = infos[-1]
    assert scaled.header in [m.header for m in probe.received['front/labels']]
    assert (labels.width, labels.height) == (128, 64)
    assert (scaled.width, scaled.height) == (128, 64)
    sx, sy = 128 / 320, 64 / 120
    np.testing.assert_allclose(scaled.k, [300 * sx, 0, 160 * sx, 0, 310 * sy, 60 * sy, 0, 0, 1])
    np.testing.assert_allclose(scaled.p, [290 * sx, 0, 158 * sx, -29 * sx,
                                          0, 305 * sy, 61 * sy, 0, 0, 0, 1, 0])
    np.testing.assert_allclose(scaled.d, info.d)
    np.testing.assert_allclose(scaled.r, info.r)
    assert scaled.distortion_model == 'plumb_bob'


def test_camera_info_at_input_resolution_keeps_the_camera_model(engine, ros_context, graph):
    node = make_node(engine, ros_context, ['front'], **{'front.camera_info_topic': '/calib'})
    probe = Probe(ros_context)
    probe.listen('front/labels')
    probe.listen('front/labels/camera_info', CameraInfo)
    graph(node, probe)
    info = camera_info(128, 64)
    infos = probe.received['front/labels/camera_info']
    stamp_ns = 10**9
    while not infos and stamp_ns < 10**9 + TIMEOUT_S * 10**9:
        probe.send('/calib', info)
        probe.send_until_labelled('front/image', stamped(
            array_to_image_msg(scene(), Image().header), stamp_ns), 'front/labels')
        stamp_ns += 10**8
        wait_until(lambda: bool(infos), 1.0)
    assert infos and list(infos[-1].k) == list(info.k) and list(infos[-1].p) == list(info.p)
    assert infos[-1].header.frame_id == 'cam_optical'


# --- class metadata -------------------------------------------------------------------------


def call(client_node, service_type, name, request):
    client = client_node.create_client(service_type, name)
    assert client.wait_for_service(timeout_sec=TIMEOUT_S), name
    future = client.call_async(request)
    assert wait_until(future.done), f'{name} did not answer'
    return future.result()


def test_class_metadata_is_readable_with_the_parameter_services(engine, ros_context, graph):
    node = make_node(engine, ros_context, ['front'])
    probe = Probe(ros_context)
    graph(node, probe)
    names = ['class_names', 'class_train_ids', 'class_colors']
    answer = call(probe, GetParameters, '/segment_node/get_parameters',
                  GetParameters.Request(names=names))
    class_names, train_ids, colors = (
        answer.values[0].string_array_value, answer.values[1].integer_array_value,
        answer.values[2].string_array_value,
    )
    assert list(class_names)[:3] == ['road', 'sidewalk', 'building']
    assert list(class_names) == [label.name for label in TRAIN_LABELS]
    assert list(train_ids) == list(range(19))
    assert colors[0] == '#804080' and colors[18] == '#770b20'  # road, bicycle
    described = call(probe, DescribeParameters, '/segment_node/describe_parameters',
                     DescribeParameters.Request(names=names))
    assert all(d.read_only for d in described.descriptors)


def test_class_metadata_cannot_be_overridden(engine, ros_context):
    with pytest.raises(SetupError, match="'class_names' is read-only"):
        make_node(engine, ros_context, ['front'], class_names=['a', 'b'])
