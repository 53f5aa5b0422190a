"""The shipped Fast DDS profile, and frames lost between a publisher and the node, counted.

Camera-sized images cross real processes here (the benchmark's camera publisher), since
participants in one process hand samples over without any transport.
"""

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from diagnostic_msgs.msg import DiagnosticStatus
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import HistoryPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
from test_segment_node import Probe, _image, _node, _pixels, _values, wait_until

from lma_perception.benchmarks.camera_publisher import CameraPublisher, camera_topic
from lma_perception.benchmarks.transport import (
    floor_samples,
    memory_slope_mb_per_min,
    robust_slope_mb_per_min,
    slope_with_error,
)
from lma_perception.ros.diagnostics import HealthLimits, camera_status
from lma_perception.ros.spinning import BackgroundSpinner
from lma_perception.ros.transport_profile import (
    PROFILE_VARIABLES,
    profile_path,
    profile_variable,
    use_default_transport,
    use_loopback_profile,
)
from lma_perception.runtime.frame_loss import RecentLoss, SequenceGaps
from lma_perception.runtime.stream import CameraStream

TIMEOUT_S = 60.0

# --- the profile -------------------------------------------------------------------------------


def test_the_shipped_profile_is_selected_unless_one_is_already():
    environ = {}
    assert use_loopback_profile(environ) == str(profile_path())
    assert environ == {'FASTDDS_DEFAULT_PROFILES_FILE': str(profile_path())}
    own = {'FASTRTPS_DEFAULT_PROFILES_FILE': '/etc/my_profile.xml'}
    assert use_loopback_profile(own) == '/etc/my_profile.xml'
    assert own == {'FASTRTPS_DEFAULT_PROFILES_FILE': '/etc/my_profile.xml'}
    jazzy = {'ROS_DISTRO': 'jazzy'}
    use_loopback_profile(jazzy)
    assert profile_variable(jazzy) == 'FASTRTPS_DEFAULT_PROFILES_FILE' in jazzy
    use_default_transport(environ)
    assert not set(PROFILE_VARIABLES) & set(environ)


_SEGMENTS = """
import os, sys, time, rclpy
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from std_msgs.msg import String
def segments():
    return {n: os.path.getsize('/dev/shm/' + n) for n in os.listdir('/dev/shm')
            if n.startswith('fastdds_')}
before = segments()
rclpy.init(domain_id=int(sys.argv[1]))
node = Node('segment_probe')
publisher = node.create_publisher(String, 'probe', 1)
# The segment appears with the first sample for a reader in another process.
reader = __import__('subprocess').Popen([sys.executable, '-c', READER, sys.argv[1]])
deadline = time.monotonic() + 30
while not publisher.get_subscription_count() and time.monotonic() < deadline:
    time.sleep(0.05)
for _ in range(20):
    publisher.publish(String(data='x'))
    time.sleep(0.05)
print(max([size for name, size in segments().items() if name not in before] or [0]))
reader.kill()
rclpy.shutdown()
"""
_READER = """
import sys, time, rclpy
from rclpy.event_handler import SubscriptionEventCallbacks
from rclpy.node import Node
from std_msgs.msg import String
rclpy.init(domain_id=int(sys.argv[1]))
node = Node('segment_reader')
node.create_subscription(String, 'probe', lambda msg: None, 1)
time.sleep(30)
"""


@pytest.mark.skipif(not Path('/dev/shm').is_dir(), reason='no /dev/shm on this machine')
@pytest.mark.parametrize('transport', ['profile', 'default'])
def test_the_profile_is_what_fast_dds_uses(transport):
    """A participant made with the profile maps a shared-memory segment of the profile's size."""
    from conftest import next_domain_id

    segment_bytes = 268435456
    assert f'<segment_size>{segment_bytes}</segment_size>' in profile_path().read_text()
    env = dict(os.environ)
    use_loopback_profile(env) if transport == 'profile' else use_default_transport(env)
    largest = int(subprocess.run(
        [sys.executable, '-c', f'READER = {_READER!r}\n{_SEGMENTS}', str(next_domain_id())],
        env=env, capture_output=True,
        text=True, timeout=TIMEOUT_S, check=True,
    ).stdout.split()[-1])
    if transport == 'profile':
        assert largest >= segment_bytes
    else:
        assert 0 < largest < segment_bytes // 100  # Fast DDS's own 512 KB


def _publish(ros_context, node, *, cameras: int, hz: float, seconds: float,
             env: dict[str, str]) -> list[int]:
    """Publish 2048x1024 frames from another process once `node` sees every camera."""
    publisher = CameraPublisher(ros_context.get_domain_id(), cameras=cameras,
                                size=(2048, 1024), hz=hz, seconds=seconds, env=env)
    publisher.start(lambda: all(sub.get_publisher_count() for sub in node.subscriptions))
    return publisher.published()


def test_three_full_size_cameras_at_17_hz_lose_nothing_with_the_profile(ros_context):
    """Fast DDS's default transports delivered 121, 78 and 104 of 255 frames here.

    What is measured is the wire: a frame that reached this reader but was replaced in its
    queue before this (busy) test process took it shows as a gap in the publisher's sequence
    numbers, and DDS reports no loss for it.
    """
    qos = QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=10,
                     reliability=ReliabilityPolicy.BEST_EFFORT)
    node = Node('transport_probe', context=ros_context)
    received, replaced, lost = [0, 0, 0], [0, 0, 0], [0, 0, 0]
    gaps = [SequenceGaps() for _ in range(3)]

    def on_image(index, info):
        sequence = info['publication_sequence_number']  # the first frame is number 1
        replaced[index] += gaps[index].missed(b'', sequence) if received[index] else sequence - 1
        received[index] += 1

    def on_lost(index, info):
        lost[index] += info.total_count_change

    for index in range(3):
        node.create_subscription(
            Image, camera_topic(index), lambda msg, info, index=index: on_image(index, info),
            qos, event_callbacks=SubscriptionEventCallbacks(
                message_lost=lambda info, index=index: on_lost(index, info)),
        )
    env = dict(os.environ)
    use_loopback_profile(env)
    with BackgroundSpinner(ros_context, node):
        published = _publish(ros_context, node, cameras=3, hz=17, seconds=3, env=env)

        def accounted():
            return [r + g for r, g in zip(received, replaced, strict=True)]
        wait_until(lambda: accounted() == published, 5.0)
    node.destroy_node()
    assert published == [51, 51, 51]
    # Every frame is accounted for: taken, replaced in the queue, or lost on the wire.
    totals = zip(published, accounted(), strict=True)
    assert all(count - 1 <= total <= count for count, total in totals), (received, replaced, lost)
    # On a machine overloaded by other work the reader's transport thread can still fall
    # behind; the default transports lost half or more of the frames even on a quiet one.
    assert all(loss <= count // 10 for loss, count in zip(lost, published, strict=True)), lost


# --- losses counted ----------------------------------------------------------------------------


def test_sequence_gaps_count_per_publisher():
    gaps = SequenceGaps()
    assert [gaps.missed(b'a', n) for n in (1, 2, 5, 6)] == [0, 0, 2, 0]
    assert gaps.missed(b'b', 10) == 0  # a new publisher starts anywhere
    assert gaps.missed(b'a', 3) == 0  # backwards: a restarted writer, not a loss
    assert gaps.missed(b'a', 4) == 0


def test_recent_loss_forgets_old_seconds_and_takes_the_larger_count():
    recent = RecentLoss(window_s=10.0)
    recent.add(100.0, received=8)
    recent.add(100.5, lost=2, missed=3)  # the same frames, seen twice
    assert recent.counts(101.0) == (3, 11)
    assert recent.counts(111.5) == (0, 0)


def test_frames_lost_in_transport_are_not_no_input():
    stream = CameraStream('cam', None, source='/cam/image', started_s=0.0)
    stream.receive(None, 1.0)
    stream.count_lost(4.5, 3)
    limits = HealthLimits(no_input_timeout_s=2.0, latency_budget_ms=100.0)
    status = camera_status(stream.snapshot(5.0), 0, 'cpu', limits)
    assert status.level == DiagnosticStatus.ERROR
    assert 'every frame lost in transport for 4.0 s on /cam/image' in status.message
    assert 'no input' not in status.message
    assert _values(status)['frames_lost_in_transport'] == '3'
    # Once losses stop too, the camera is silent.
    status = camera_status(stream.snapshot(9.0), 0, 'cpu', limits)
    assert 'no input for 8.0 s' in status.message


def test_frames_replaced_before_the_node_took_them_are_counted_and_warned(
    engine, ros_context, graph
):
    node = _node(engine, ros_context, cameras=['front'], diagnostics_period_s=0.2,
                 latency_budget_ms=60000.0)
    probe = Probe(ros_context, ['front'])
    probe.listen('front', 'labels')
    graph(probe)
    from rclpy.executors import SingleThreadedExecutor

    executor = SingleThreadedExecutor(context=ros_context)
    executor.add_node(node)
    try:
        deadline = time.monotonic() + TIMEOUT_S
        while node.camera_snapshots()[0].received == 0 and time.monotonic() < deadline:
            probe.send('front', _image(_pixels(), 10**9))
            executor.spin_once(timeout_sec=0.1)
        # While the node does not spin, its depth-1 input keeps only the newest of five.
        for index in range(5):
            probe.send('front', _image(_pixels(), 10**9 + (index + 1) * 10**7))
        time.sleep(0.5)
        while time.monotonic() < deadline and node.camera_snapshots()[0].missed_in_sequence == 0:
            executor.spin_once(timeout_sec=0.1)
        snapshot = node.camera_snapshots()[0]
        assert snapshot.missed_in_sequence == 4
        assert snapshot.lost_in_transport == 0
        status = camera_status(snapshot, 0, 'cpu', HealthLimits(2.0, 60000.0))
        assert status.level == DiagnosticStatus.WARN
        assert 'frames lost' in status.message
        assert _values(status)['frames_missing_in_sequence'] == '4'
    finally:
        executor.shutdown()
        node.destroy_node()


_DEFAULT_READER = """
import sys, rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image
rclpy.init(domain_id=int(sys.argv[1]))
node = Node('default_transport_reader')
sizes = []
node.create_subscription(Image, 'labels', lambda msg: sizes.append(len(msg.data)),
                         QoSProfile(depth=2, reliability=ReliabilityPolicy.RELIABLE))
while not sizes:
    rclpy.spin_once(node, timeout_sec=0.1)
print(sizes[0], flush=True)
"""


def test_a_reader_without_the_profile_gets_full_size_outputs(ros_context):
    """What users run beside the node (rviz, a bag recorder) has Fast DDS's default transports."""
    from rclpy.qos import QoSProfile

    node = Node('profile_writer', context=ros_context)
    publisher = node.create_publisher(Image, 'labels', QoSProfile(
        depth=2, reliability=ReliabilityPolicy.RELIABLE))
    msg = _image(_pixels(1024, 2048), 10**9)
    env = dict(os.environ)
    use_default_transport(env)
    reader = subprocess.Popen([sys.executable, '-c', _DEFAULT_READER,
                               str(ros_context.get_domain_id())],
                              env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert wait_until(lambda: publisher.get_subscription_count() == 1)
        deadline = time.monotonic() + TIMEOUT_S
        while reader.poll() is None and time.monotonic() < deadline:
            publisher.publish(msg)  # again: the reader may match the writer after a publish
            time.sleep(0.2)
        assert reader.stdout.read().split() == [str(2048 * 1024 * 3)]
    finally:
        reader.kill()
        node.destroy_node()


# A camera driver without the profile: Fast DDS's default transports. Large frames between small
# ones: a small frame before the first large one and one after the last make every lost large
# frame a gap between two frames the node received, which is all a reader can count.
_LOSSY_CAMERAS = """
import json, sys, threading, time
import numpy as np, rclpy
from rclpy.node import Node
from sensor_msgs.msg import Image
from lma_perception.ros.segment_node import INPUT_QOS
domain, cameras, frames, hz = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), 17.0
commands = []
threading.Thread(target=lambda: commands.extend(line.strip() for line in sys.stdin),
                 daemon=True).start()
def image(width, height):
    msg = Image(height=height, width=width, encoding='rgb8', step=3 * width)
    msg.data = np.random.default_rng(0).integers(0, 256, 3 * width * height, np.uint8).tobytes()
    return msg
rclpy.init(domain_id=domain)
node = Node('default_transport_cameras')
publishers = [node.create_publisher(Image, f'cam{i}/image', INPUT_QOS) for i in range(cameras)]
published = [0] * cameras
def publish_all(msg):
    for index, publisher in enumerate(publishers):
        publisher.publish(msg)
        published[index] += 1
deadline = time.monotonic() + 30.0
while any(p.get_subscription_count() == 0 for p in publishers):
    if time.monotonic() > deadline:  # the node's readers never matched: say so, do not hang
        print('no reader matched within 30 s', flush=True)
        sys.exit(2)
    time.sleep(0.05)
print('ready', flush=True)
while 'go' not in commands:  # until the reader has matched this writer too
    time.sleep(0.05)
small, large = image(64, 32), image(2048, 1024)
for until in ('large', 'stop'):
    while until not in commands:  # small frames until the reader has one
        publish_all(small)
        time.sleep(0.1)
    if until == 'large':
        started = time.monotonic()
        for frame in range(frames):
            publish_all(large)
            time.sleep(max(started + (frame + 1) / hz - time.monotonic(), 0.0))
        print('small', json.dumps(published), flush=True)
time.sleep(0.5)
print(json.dumps(published), flush=True)
node.destroy_node()
rclpy.shutdown()
"""


# Opt-in (`pytest -m interop`): in one of several full-suite runs the default-transport
# participant never matched the node's readers (the cause in Fast DDS discovery is not known),
# which no CI run may depend on; the child process then gives up after 30 s instead of hanging.
@pytest.mark.interop
def test_every_frame_a_default_transport_camera_loses_is_counted(engine, ros_context, graph):
    """A node with the profile reads a camera without it; what it misses shows on /diagnostics.

    Per camera: published = received + frames_missing_in_sequence. Fast DDS's default transports
    lost 36 and 48 of 51 full-size frames here, so the count is not empty; DDS's own count
    (`frames_lost_in_transport`) was the same. Exact as long as the small frames around them
    arrive: a lost small frame at the very end is one that no reader can know of.
    """
    cameras, frames = 2, 51
    names = [f'cam{index}' for index in range(cameras)]
    node = _node(engine, ros_context, cameras=names, memory_length=0, diagnostics_period_s=0.2,
                 **{f'{name}.image_topic': camera_topic(index)
                    for index, name in enumerate(names)})
    probe = Probe(ros_context, [])
    graph(node, probe)
    env = dict(os.environ)
    use_default_transport(env)
    process = subprocess.Popen(
        [sys.executable, '-c', _LOSSY_CAMERAS, str(ros_context.get_domain_id()), str(cameras),
         str(frames)],
        env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert process.stdout.readline().strip() == 'ready'
        # A reader drops, uncounted, what a writer sends before the reader has matched it.
        images = {f'/{camera_topic(index)}' for index in range(cameras)}
        assert wait_until(lambda: all(subscription.get_publisher_count() for subscription
                                      in node.subscriptions if subscription.topic_name in images))
        process.stdin.write('go\n')
        process.stdin.flush()
        assert wait_until(lambda: all(s.received for s in node.camera_snapshots()))
        process.stdin.write('large\n')
        process.stdin.flush()
        phase, before_small = process.stdout.readline().split(' ', 1)
        assert phase == 'small'
        # A small frame after the large ones has arrived: every large one is accounted for.
        before_small = json.loads(before_small)
        assert wait_until(lambda: all(
            s.received + s.missed_in_sequence > count
            for s, count in zip(node.camera_snapshots(), before_small, strict=True)))
        process.stdin.write('stop\n')
        process.stdin.flush()
        published = json.loads(process.stdout.readline())
        assert process.wait(timeout=TIMEOUT_S) == 0
    finally:
        process.kill()
    snapshots = node.camera_snapshots()
    assert wait_until(lambda: all(
        (status := probe.status(s.name)) is not None
        and _values(status)['frames_received'] == str(s.received) for s in snapshots))
    for name, count in zip(names, published, strict=True):
        values = _values(probe.status(name))
        received = int(values['frames_received'])
        missing = int(values['frames_missing_in_sequence'])
        lost = int(values['frames_lost_in_transport'])
        assert received + missing == count, (name, count, values)
        assert lost <= missing, values  # DDS's count is of wire losses only


def test_memory_slope_is_a_least_squares_fit_after_warm_up():
    samples = [(t, 500.0 + (50.0 if t < 30 else 0.1 * t / 60.0)) for t in range(0, 300, 5)]
    assert memory_slope_mb_per_min(samples, warmup_s=30.0) == pytest.approx(0.1, abs=1e-6)
    assert math.isnan(memory_slope_mb_per_min(samples[:2], warmup_s=0.0))  # too few samples


@pytest.mark.parametrize('leak_mb_per_min', [0.0, 0.5])
def test_the_floor_slope_ignores_windows_that_kept_freed_memory(leak_mb_per_min):
    # 32 floors 30 s apart; 6 windows sit 30-60 MB above the floor (heap the allocator kept).
    spikes = {5: 43.0, 8: 25.0, 10: 25.0, 25: 32.0, 26: 50.0, 27: 62.0}
    floors = [(30.0 * i, 376.0 + leak_mb_per_min * i / 2 + spikes.get(i, 0.0)) for i in range(32)]
    assert robust_slope_mb_per_min(floors) == pytest.approx(leak_mb_per_min, abs=1e-9)
    assert memory_slope_mb_per_min(floors, 0.0) > leak_mb_per_min + 0.3  # pulled by the spikes
    assert math.isnan(robust_slope_mb_per_min(floors[:1]))


def test_the_memory_floor_ignores_the_frames_in_flight():
    # A flat floor of 300 MB with up to 60 MB of frames in flight on top, in a 4-sample cycle.
    samples = [(float(t), 300.0 + (t % 4) * 20.0) for t in range(0, 200)]
    floors = floor_samples(samples, warmup_s=20.0, window_s=30.0)
    assert [mb for _, mb in floors] == [300.0] * 5  # the window 170-200 s is not whole
    assert memory_slope_mb_per_min(floors, 0.0) == pytest.approx(0.0, abs=1e-9)
    slope, error = slope_with_error(samples, warmup_s=20.0)
    assert abs(slope) < 3 * error and error > 0.1  # the samples cannot resolve 0.1 MB/min
