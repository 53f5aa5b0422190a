"""rosbag2 writing and reading: round trips, independent readers, and broken bags."""

import shutil

import numpy as np
import pytest
import yaml
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from lma_perception.cli import main
from lma_perception.data.cityscapes import CityscapesTree
from lma_perception.data.rosbag import (
    BagError,
    BagFrame,
    degradation_topic,
    read_bag,
    tree_frames,
    write_bag,
)
from lma_perception.synthetic.generator import SynthConfig, write_dataset

# Sequence 1 has its annotated frame degraded by noise on both cameras, sequence 0 has it clean.
CONFIG = SynthConfig(width=64, height=32, frames=4, annotated_frame=2,
                     cameras=('front', 'front_left'), degradation_rate=0.5,
                     degradations=('noise',))
PERIOD = 10 ** 9 / 17


@pytest.fixture(scope='module')
def tree(tmp_path_factory):
    root = write_dataset(tmp_path_factory.mktemp('tree'), CONFIG, 'val', 2)
    return CityscapesTree(root, 'val')


@pytest.fixture(scope='module', params=['mcap', 'sqlite3'])
def bag(request, tree, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param) / 'bag'
    write_bag(path, tree_frames(tree), storage=request.param)
    return path


def test_round_trip_keeps_pixels_stamps_frame_ids_and_pairing(tree, bag):
    source = list(tree.stream())
    frames = list(read_bag(bag))
    assert len(frames) == len(source) == 2 * 4 * 2
    for original, frame in zip(source, frames, strict=True):
        assert frame.camera == original.camera
        assert frame.frame_id == f'{original.camera}_optical_frame'
        assert np.array_equal(frame.image, original.image)
        assert np.array_equal(frame.ground_truth, original.dense_labels)
    stamps = [f.stamp_ns for f in frames if f.camera == 'front']
    steps = np.diff(stamps)
    assert np.allclose(steps[:3], PERIOD, atol=1) and np.allclose(steps[4:], PERIOD, atol=1)
    assert steps[3] >= 10 ** 9  # the gap between sequences
    starts = [f.sequence_start for f in frames if f.camera == 'front_left']
    assert starts == [True, False, False, False] * 2


def test_degradations_round_trip_per_frame(tree, bag):
    source = list(tree.stream())
    frames = list(read_bag(bag))
    expected = [f.degradation['kind'] if f.degraded else '' for f in source]
    assert [f.degradation for f in frames] == expected
    assert all(f.degraded is not None for f in source)
    annotated = {(o.sequence, o.camera): f.degradation for f, o in zip(frames, source, strict=True)
                 if o.frame == CONFIG.annotated_frame}
    assert annotated == {(0, 'front'): '', (0, 'front_left'): '',
                         (1, 'front'): 'noise', (1, 'front_left'): 'noise'}
    assert '' in expected  # clean frames are recorded as such, not left out


def test_frames_without_degradation_write_no_degradation_topic(tmp_path):
    image = np.zeros((4, 6, 3), np.uint8)
    frames = [BagFrame('cam', 10 ** 9 + i, 'cam_optical_frame', image, None) for i in range(2)]
    summary = write_bag(tmp_path / 'bag', frames)
    assert summary.degraded is None
    metadata = yaml.safe_load((tmp_path / 'bag' / 'metadata.yaml').read_text())
    topics = {t['topic_metadata']['name']
              for t in metadata['rosbag2_bagfile_information']['topics_with_message_count']}
    assert topics == {'/cam/image_raw'}
    assert [f.degradation for f in read_bag(tmp_path / 'bag')] == [None, None]


def test_any_reader_opens_the_bag_with_standard_metadata(bag):
    metadata = yaml.safe_load((bag / 'metadata.yaml').read_text())['rosbag2_bagfile_information']
    assert metadata['version'] >= 8 and metadata['storage_identifier'] in ('mcap', 'sqlite3')
    counts = {t['topic_metadata']['name']: t['message_count']
              for t in metadata['topics_with_message_count']}
    assert counts == {'/front/image_raw': 8, '/front/semantic/ground_truth': 8,
                      '/front/synthetic/degradation': 8, '/front/cityscapes/stem': 8,
                      '/front_left/image_raw': 8, '/front_left/semantic/ground_truth': 8,
                      '/front_left/synthetic/degradation': 8, '/front_left/cityscapes/stem': 8}
    assert metadata['message_count'] == 64
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_JAZZY)) as reader:
        assert {c.msgtype for c in reader.connections} == {'sensor_msgs/msg/Image',
                                                           'std_msgs/msg/String'}
        encodings, kinds, stems, times = {}, set(), set(), {}
        for connection, timestamp, raw in reader.messages():
            message = reader.deserialize(raw, connection.msgtype)
            times.setdefault(connection.msgtype, set()).add(timestamp)
            if connection.topic.endswith('/cityscapes/stem'):
                stems.add(message.data)
                continue
            if connection.msgtype == 'std_msgs/msg/String':
                kinds.add(message.data)
                continue
            stamp = message.header.stamp.sec * 10 ** 9 + message.header.stamp.nanosec
            assert stamp == timestamp
            encodings.setdefault(connection.topic, set()).add(message.encoding)
    assert encodings['/front/image_raw'] == {'rgb8'}
    assert encodings['/front/semantic/ground_truth'] == {'mono8'}
    assert kinds == {'', 'noise'}
    assert stems == {f'synthcity_{s:06d}_{f:06d}' for s in range(2) for f in range(4)}
    # A String has no header: its bag time is the stamp of its image.
    assert times['std_msgs/msg/String'] == times['sensor_msgs/msg/Image']


def test_annotated_only_ground_truth_and_camera_selection(tree, tmp_path):
    write_bag(tmp_path / 'bag', tree_frames(tree, dense=False))
    frames = list(read_bag(tmp_path / 'bag', cameras=['front_left']))
    assert {f.camera for f in frames} == {'front_left'}
    assert [f.ground_truth is not None for f in frames] == [False, False, True, False] * 2


def _bag_with(path, images, truths=(), encoding='rgb8', truth_encoding='mono8'):
    """A bag written directly with rosbags: one frame per camera at t = 1 s."""
    store = get_typestore(Stores.ROS2_JAZZY)
    types = store.types
    image_type = 'sensor_msgs/msg/Image'

    def message(channels, enc):
        header = types['std_msgs/msg/Header'](
            stamp=types['builtin_interfaces/msg/Time'](sec=1, nanosec=0), frame_id='cam')
        data = np.arange(4 * 6 * channels, dtype=np.uint8)
        return store.serialize_cdr(types[image_type](
            header=header, height=4, width=6, encoding=enc, is_bigendian=0, step=6 * channels,
            data=data), image_type)

    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        for topic in images:
            channels = 3 if encoding in ('rgb8', 'bgr8') else 4 if '32' in encoding else 1
            writer.write(writer.add_connection(topic, image_type, typestore=store), 10 ** 9,
                         message(channels, encoding))
        for topic in truths:
            channels = 1 if truth_encoding == 'mono8' else 3
            writer.write(writer.add_connection(topic, image_type, typestore=store), 10 ** 9,
                         message(channels, truth_encoding))
    return path


def test_bgr8_images_are_decoded_to_rgb(tmp_path):
    bag = _bag_with(tmp_path / 'bag', ['/cam/image_raw'], encoding='bgr8')
    (frame,) = read_bag(bag)
    expected = np.arange(72, dtype=np.uint8).reshape(4, 6, 3)[..., ::-1]
    assert frame.camera == 'cam' and frame.ground_truth is None
    assert np.array_equal(frame.image, expected)


@pytest.mark.parametrize('storage, suffix', [('mcap', '.mcap'), ('sqlite3', '.db3')])
def test_truncated_bag_is_a_bag_error(tree, tmp_path, storage, suffix):
    path = tmp_path / 'bag'
    write_bag(path, tree_frames(tree), storage=storage)
    data = next(path.glob(f'*{suffix}'))
    data.write_bytes(data.read_bytes()[:data.stat().st_size // 2])
    with pytest.raises(BagError, match='corrupt or truncated') as caught:
        list(read_bag(path))
    assert str(path) in str(caught.value)


def test_missing_or_broken_files_are_bag_errors(bag, tmp_path):
    with pytest.raises(BagError, match='no bag at'):
        read_bag(tmp_path / 'nothing')
    copy = tmp_path / 'copy'
    shutil.copytree(bag, copy)
    (copy / 'metadata.yaml').unlink()
    with pytest.raises(BagError, match='cannot open the bag'):
        read_bag(copy)


def test_missing_topics_are_named(tmp_path, bag):
    other = _bag_with(tmp_path / 'other', ['/cam/image_color'])
    with pytest.raises(BagError, match=r'no camera images.*/cam/image_color \(sensor_msgs'):
        read_bag(other)
    with pytest.raises(BagError, match='no /rear/image_raw in the bag; cameras present: '
                                       'front, front_left'):
        read_bag(bag, cameras=['rear'])


def test_wrong_encodings_are_named(tmp_path):
    bad_truth = _bag_with(tmp_path / 'truth', ['/cam/image_raw'],
                          ['/cam/semantic/ground_truth'], truth_encoding='rgb8')
    with pytest.raises(BagError, match=r"ground_truth: ground truth must be mono8.*'rgb8'"):
        list(read_bag(bad_truth))
    bad_image = _bag_with(tmp_path / 'image', ['/cam/image_raw'], encoding='32FC1')
    with pytest.raises(BagError, match=r'/cam/image_raw: .*32FC1'):
        list(read_bag(bad_image))


def test_a_degradation_topic_of_another_type_is_named(tmp_path):
    # An Image where the bag should hold a std_msgs/String.
    bag = _bag_with(tmp_path / 'bag', ['/cam/image_raw'], [degradation_topic('cam')])
    with pytest.raises(BagError, match=r'/cam/synthetic/degradation must be std_msgs/msg/String, '
                                       r'got sensor_msgs/msg/Image') as caught:
        read_bag(bag)
    assert str(bag) in str(caught.value)


def test_writer_refuses_existing_paths_and_mismatched_truth(tmp_path, bag):
    frame = BagFrame('cam', 10 ** 9, 'cam_optical_frame', np.zeros((4, 6, 3), np.uint8),
                     np.zeros((4, 6), np.uint8))
    with pytest.raises(BagError, match='already exists'):
        write_bag(bag, [frame])
    with pytest.raises(BagError, match='does not match image'):
        write_bag(tmp_path / 'new', [BagFrame('cam', 1, 'f', frame.image,
                                              np.zeros((2, 2), np.uint8))])
    with pytest.raises(BagError, match='time order'):
        write_bag(tmp_path / 'order', [frame, BagFrame('cam', 5, 'f', frame.image, None)])


def test_cli_bag_write_and_info(tmp_path, tree, capsys):
    out = tmp_path / 'cli_bag'
    code = main(['bag', 'write', str(tree.root), str(out), '--cameras', 'front',
                 '--size', '32x16', '--storage', 'sqlite3'])
    assert code == 0
    degraded = sum(bool(f.degraded) for f in tree.stream() if f.camera == 'front')
    assert 0 < degraded < 8
    assert (f'wrote 8 frames (8 with ground truth, {degraded} degraded) of front'
            in capsys.readouterr().out)
    frames = list(read_bag(out))
    assert frames[0].image.shape == (16, 32, 3) and frames[0].ground_truth.shape == (16, 32)
    assert main(['bag', 'info', str(out)]) == 0
    report = capsys.readouterr().out
    assert ('front: 8 frames on /front/image_raw, 8 with ground truth on '
            f'/front/semantic/ground_truth, {degraded} of 8 degraded on '
            '/front/synthetic/degradation, 2 sequence(s)') in report
    assert '2 sequence(s)' in report
    assert main(['bag', 'info', str(tmp_path / 'missing')]) == 1
    assert 'no bag at' in capsys.readouterr().err


def test_stems_and_instance_ids_round_trip(tmp_path):
    image = np.zeros((4, 6, 3), np.uint8)
    instances = np.array([[26001, 26001, 7, 7, 24000, 11]] * 4, np.uint16)
    frames = [
        BagFrame('cam', 10 ** 9, 'cam_optical_frame', image, np.zeros((4, 6), np.uint8),
                 stem='lindau_000003_000019', instances=instances),
        BagFrame('cam', 10 ** 9 + 58_823_529, 'cam_optical_frame', image, None,
                 stem='lindau_000003_000020'),
    ]
    write_bag(tmp_path / 'bag', frames)
    first, second = read_bag(tmp_path / 'bag')
    assert (first.stem, second.stem) == ('lindau_000003_000019', 'lindau_000003_000020')
    np.testing.assert_array_equal(first.instances, instances)
    assert first.instances.dtype == np.uint16 and second.instances is None


def test_a_bag_without_ground_truth_is_refused_for_scoring(tmp_path, capsys):
    image = np.zeros((4, 6, 3), np.uint8)
    write_bag(tmp_path / 'bag', [BagFrame('cam', 10 ** 9, 'cam_optical_frame', image, None)])
    assert len(list(read_bag(tmp_path / 'bag'))) == 1  # playing it is fine
    with pytest.raises(BagError, match=r'nothing labelled.*/cam/image_raw'):
        read_bag(tmp_path / 'bag', require_ground_truth=True)
    assert main(['eval', str(tmp_path / 'bag'), '--device', 'cpu']) == 1
    error = capsys.readouterr().err
    assert error.startswith('lma-perception: error: ') and 'nothing labelled' in error


@pytest.mark.parametrize('compression', ['png', 'jpeg'])
def test_compressed_bags_round_trip_through_image_transport_topics(tree, tmp_path, compression):
    from lma_perception.codecs import compressed_to_rgb, rgb_to_compressed

    path = tmp_path / 'bag'
    write_bag(path, tree_frames(tree), compression=compression)
    with AnyReader([path]) as reader:  # an independent reader sees image_transport's layout
        topics = {c.topic: c.msgtype for c in reader.connections}
        assert topics['/front/image_raw/compressed'] == 'sensor_msgs/msg/CompressedImage'
        assert '/front/image_raw' not in topics
        connection = next(c for c in reader.connections
                          if c.topic == '/front/image_raw/compressed')
        message = reader.deserialize(next(reader.messages([connection]))[2], connection.msgtype)
        assert message.format == f'rgb8; {compression} compressed bgr8'
    source = list(tree.stream())
    frames = list(read_bag(path))
    assert len(frames) == len(source)
    for original, frame in zip(source, frames, strict=True):
        expected = compressed_to_rgb(compression, rgb_to_compressed(original.image, compression))
        assert np.array_equal(frame.image, expected)
        if compression == 'png':
            assert np.array_equal(frame.image, original.image)
        assert np.array_equal(frame.ground_truth, original.dense_labels)  # stays lossless
    assert [f.sequence_start for f in frames if f.camera == 'front'] == [True, False, False,
                                                                        False] * 2


def test_cli_bag_write_compressed_and_info(tree, tmp_path, capsys):
    out = tmp_path / 'compressed'
    assert main(['bag', 'write', str(tree.root), str(out), '--compressed']) == 0
    with AnyReader([out]) as reader:
        assert {c.topic for c in reader.connections} >= {'/front/image_raw/compressed',
                                                        '/front/semantic/ground_truth'}
    capsys.readouterr()
    assert main(['bag', 'info', str(out)]) == 0
    assert 'front: 8 frames on /front/image_raw/compressed' in capsys.readouterr().out


def test_a_corrupt_compressed_image_in_a_bag_is_a_bag_error(tmp_path):
    store = get_typestore(Stores.ROS2_JAZZY)
    path = tmp_path / 'corrupt'
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connection = writer.add_connection('/front/image_raw/compressed',
                                           'sensor_msgs/msg/CompressedImage', typestore=store)
        header = store.types['std_msgs/msg/Header'](
            stamp=store.types['builtin_interfaces/msg/Time'](sec=1, nanosec=0), frame_id='f')
        message = store.types['sensor_msgs/msg/CompressedImage'](
            header=header, format='rgb8; jpeg compressed bgr8',
            data=np.frombuffer(b'\xff\xd8 not a jpeg', np.uint8))
        writer.write(connection, 10**9,
                     store.serialize_cdr(message, 'sensor_msgs/msg/CompressedImage'))
    with pytest.raises(BagError, match='corrupt jpeg payload'):
        list(read_bag(path))
