"""The bag player against real bags on disk and real subscribers."""

import threading
import time

import numpy as np
import pytest
from conftest import next_domain_id
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import Image
from std_msgs.msg import String

from lma_perception.ros.bag_player import BagPlayer, ReplayError
from lma_perception.ros.messages import image_msg_to_rgb
from lma_perception.ros.playback_options import PlaybackOptions
from lma_perception.ros.spinning import BackgroundSpinner

TYPESTORE = get_typestore(Stores.ROS2_KILTED)
START_NS = 1_700_000_000 * 10**9
PERIOD_NS = 50_000_000  # 20 Hz
FRAMES = 5
QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)


def _pixels(index: int) -> np.ndarray:
    return np.random.default_rng(index).integers(0, 256, (8, 12, 3), dtype=np.uint8)


def _write_bag(path, storage=StoragePlugin.SQLITE3):
    """Two topics: rgb8 images on /cam/image_raw and strings on /cam/note, 20 Hz."""
    types = TYPESTORE.types
    with Writer(path, version=9, storage_plugin=storage) as writer:
        images = writer.add_connection('/cam/image_raw', 'sensor_msgs/msg/Image',
                                       typestore=TYPESTORE)
        notes = writer.add_connection('/cam/note', 'std_msgs/msg/String', typestore=TYPESTORE)
        for index in range(FRAMES):
            stamp_ns = START_NS + index * PERIOD_NS
            header = types['std_msgs/msg/Header'](
                stamp=types['builtin_interfaces/msg/Time'](*divmod(stamp_ns, 10**9)),
                frame_id=f'cam_optical_{index}',
            )
            image = types['sensor_msgs/msg/Image'](
                header=header, height=8, width=12, encoding='rgb8', is_bigendian=0, step=36,
                data=_pixels(index).reshape(-1),
            )
            writer.write(images, stamp_ns,
                         TYPESTORE.serialize_cdr(image, 'sensor_msgs/msg/Image'))
            note = types['std_msgs/msg/String'](data=f'note {index}')
            writer.write(notes, stamp_ns + 1, TYPESTORE.serialize_cdr(note, 'std_msgs/msg/String'))
    return path


class _Recorder(Node):
    def __init__(self, context):
        super().__init__('recorder', context=context)
        self.images, self.notes, self.clock = [], [], []
        self.create_subscription(Image, '/cam/image_raw', self.images.append, QOS)
        self.create_subscription(String, '/cam/note', self.notes.append, QOS)
        self.create_subscription(Clock, '/clock', self.clock.append, QOS)


def _play_into(recorder, player, done, timeout_s=20.0):
    """Play in a thread while the recorder spins, until `done()` or the timeout."""
    stop = threading.Event()
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault('stats', player.play(stop)))
    with BackgroundSpinner(recorder.context, recorder):
        thread.start()
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            time.sleep(0.02)
        stop.set()
        thread.join(timeout=10)
    return result.get('stats')


@pytest.fixture(params=[StoragePlugin.SQLITE3, StoragePlugin.MCAP], ids=['sqlite3', 'mcap'])
def bag(request, tmp_path):
    return _write_bag(tmp_path / 'bag', request.param)


def test_replays_every_message_with_its_header_and_clock(ros_context, bag):
    recorder = _Recorder(ros_context)
    options = PlaybackOptions(rate=4.0, clock=True, wait_for_subscribers_s=10.0)
    player = BagPlayer(bag, options, context=ros_context)
    assert player.topics == {'/cam/image_raw': 'sensor_msgs/msg/Image',
                             '/cam/note': 'std_msgs/msg/String'}
    stats = _play_into(recorder, player,
                       lambda: len(recorder.images) == FRAMES and len(recorder.notes) == FRAMES)

    assert stats.messages == {'/cam/image_raw': FRAMES, '/cam/note': FRAMES}
    assert stats.passes == 1
    # Messages go out no earlier than their recorded time allows at 4× speed.
    assert stats.wall_s >= (FRAMES - 1) * PERIOD_NS / 1e9 / 4
    for index, image in enumerate(recorder.images):
        stamp_ns = image.header.stamp.sec * 10**9 + image.header.stamp.nanosec
        assert stamp_ns == START_NS + index * PERIOD_NS
        assert image.header.frame_id == f'cam_optical_{index}'
        np.testing.assert_array_equal(image_msg_to_rgb(image), _pixels(index))
    assert [note.data for note in recorder.notes] == [f'note {i}' for i in range(FRAMES)]

    clock_ns = [c.clock.sec * 10**9 + c.clock.nanosec for c in recorder.clock]
    assert clock_ns, 'no /clock published'
    assert clock_ns == sorted(clock_ns)
    assert clock_ns[0] >= START_NS and clock_ns[-1] <= START_NS + FRAMES * PERIOD_NS
    player.destroy_node()
    recorder.destroy_node()


def test_topic_selection_and_loop(ros_context, tmp_path):
    recorder = _Recorder(ros_context)
    options = PlaybackOptions(rate=20.0, loop=True, topics=('/cam/image_raw',),
                              wait_for_subscribers_s=10.0)
    player = BagPlayer(_write_bag(tmp_path / 'bag'), options, context=ros_context)
    assert list(player.topics) == ['/cam/image_raw']
    stats = _play_into(recorder, player, lambda: len(recorder.images) >= 2 * FRAMES + 1)

    assert stats.passes >= 2
    assert recorder.notes == []
    stamps = [image.header.stamp.sec * 10**9 + image.header.stamp.nanosec
              for image in recorder.images]
    assert stamps[FRAMES] == START_NS, 'the second pass starts again at the first stamp'
    player.destroy_node()
    recorder.destroy_node()


def test_unknown_topic_is_named_with_the_available_ones(ros_context, tmp_path):
    bag = _write_bag(tmp_path / 'bag')
    with pytest.raises(ReplayError, match=r'no topic /nope; the bag has /cam/image_raw, /cam/no'):
        BagPlayer(bag, PlaybackOptions(topics=('/nope',)), context=ros_context)


def test_missing_bag(ros_context, tmp_path):
    with pytest.raises(ReplayError, match=r'missing: cannot open the bag'):
        BagPlayer(tmp_path / 'missing', context=ros_context)


def test_corrupt_metadata(ros_context, tmp_path):
    bag = tmp_path / 'bag'
    bag.mkdir()
    (bag / 'metadata.yaml').write_text('rosbag2_bagfile_information: {version: [}')
    with pytest.raises(ReplayError, match='cannot open the bag'):
        BagPlayer(bag, context=ros_context)


def test_truncated_storage_file(ros_context, tmp_path):
    bag = _write_bag(tmp_path / 'bag', StoragePlugin.MCAP)
    storage = next(bag.glob('*.mcap'))
    storage.write_bytes(storage.read_bytes()[:200])
    with pytest.raises(ReplayError, match=r'cannot (open the|read) bag'):
        player = BagPlayer(bag, PlaybackOptions(rate=100.0), context=ros_context)
        player.play()


@pytest.mark.parametrize('options', [{'rate': 0.0}, {'rate': -1.0}, {'clock_hz': 0.0},
                                     {'qos_depth': 0}])
def test_invalid_options(options):
    with pytest.raises(ValueError, match='must be'):
        PlaybackOptions(**options)


def test_cli_reports_an_unreadable_bag(tmp_path, monkeypatch, capsys):
    from lma_perception.cli import main

    monkeypatch.setenv('ROS_DOMAIN_ID', str(next_domain_id()))
    assert main(['replay', str(tmp_path / 'missing')]) == 1
    assert 'cannot open the bag' in capsys.readouterr().err


def test_bag_player_executable_rejects_a_bad_rate(tmp_path, capsys):
    from lma_perception.ros.bag_player import main

    with pytest.raises(SystemExit) as exit_info:
        main(['bag_player', str(tmp_path), '--rate', '0'])
    assert exit_info.value.code == 2
    assert "expected a number > 0, got '0'" in capsys.readouterr().err


def test_waits_only_for_the_topics_it_is_told_to(ros_context, tmp_path):
    bag = _write_bag(tmp_path / 'bag')
    listener = Node('image_listener', context=ros_context)
    listener.create_subscription(Image, '/cam/image_raw', lambda msg: None, QOS)
    every_topic = BagPlayer(bag, PlaybackOptions(), context=ros_context)
    # A topic that is not played (/other/image_raw) is not waited for.
    images_only = BagPlayer(bag, PlaybackOptions(
        wait_topics=('/cam/image_raw', '/other/image_raw')), context=ros_context)

    assert images_only.wait_for_subscribers(30.0) == []
    assert every_topic.wait_for_subscribers(0.5) == ['/cam/note']
    for node in (every_topic, images_only, listener):
        node.destroy_node()
