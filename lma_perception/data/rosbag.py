"""rosbag2 recordings of camera video with semantic ground truth, on the ``rosbags`` library.

Layout of the bags written here (one rosbag2 folder with ``metadata.yaml``, mcap or sqlite3, as
``ros2 bag record`` makes them; message definitions and hashes are ROS 2 Jazzy's):

- ``/<camera>/image_raw``: ``sensor_msgs/msg/Image``, ``rgb8``; or, written with a
  ``compression``, ``/<camera>/image_raw/compressed``: ``sensor_msgs/msg/CompressedImage``,
  JPEG or PNG with image_transport's format string (``rgb8; jpeg compressed bgr8``), as
  ``ros2 bag record`` stores a camera's compressed stream;
- ``/<camera>/semantic/ground_truth``: ``sensor_msgs/msg/Image``, ``mono8`` Cityscapes train ids
  (255 = ignore), for every frame when the source has dense labels, else annotated frames only;
- ``/<camera>/synthetic/degradation``: ``std_msgs/msg/String``, for every frame when the source
  records degradations (synthetic trees), else absent: the kind of degradation (``noise``,
  ``motion_blur``, ...) of a degraded frame, ``''`` for a clean one;
- ``/<camera>/semantic/instance_ids``: ``sensor_msgs/msg/Image``, ``mono16`` Cityscapes instance
  ids (label id × 1000 + index inside an instance), for the frames whose tree has
  ``_gtFine_instanceIds.png``, so that iIoU can be scored from the bag;
- ``/<camera>/cityscapes/stem``: ``std_msgs/msg/String``, for every frame of a tree: its
  Cityscapes file-name stem ``<city>_<sequence>_<frame>``, so that predictions scored from the
  bag keep the names cityscapesScripts pairs with the tree's ground truth;
- image and ground truth of a frame share the header (stamp, ``frame_id`` =
  ``<camera>_optical_frame``), and the bag time of every message equals the header stamp (a
  String has no header: it belongs to the image of its camera at its bag time);
- frames of a sequence are ``1 / fps`` apart (17 Hz, as Cityscapes); consecutive sequences are
  separated by ``SEQUENCE_GAP_S`` (1 s), twice the continuity boundary
  (:data:`lma_perception.continuity.SEQUENCE_BOUNDARY_S`). The reader starts a sequence exactly
  where that rule resets a camera's memory: stamps running backwards, a forward jump past the
  boundary, or a new image size or ``frame_id``.

:func:`read_bag` reads such bags, or any bag following the topic naming with images in an encoding
that :mod:`lma_perception.codecs` decodes, and yields frames in time order paired with
their ground truth and degradation. Every problem with a bag (missing, corrupt or truncated files,
missing topics, wrong encodings, sizes or message types) raises :class:`BagError` naming the bag
and the problem.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lma_perception.codecs import (
    ImageFormatError,
    compressed_format,
    compressed_to_rgb,
    image_to_rgb,
    mono8_to_array,
    mono16_to_array,
    rgb_to_compressed,
)
from lma_perception.continuity import (
    SEQUENCE_BOUNDARY_S,
    FrameKey,
    reset_reason,
    seconds_to_ns,
    stamp_to_ns,
)
from lma_perception.data.cityscapes import CityscapesTree

IMAGE_TYPE = 'sensor_msgs/msg/Image'
COMPRESSED_TYPE = 'sensor_msgs/msg/CompressedImage'
DEGRADATION_TYPE = 'std_msgs/msg/String'
# Well past the boundary, so that no reader can take two written sequences for one.
SEQUENCE_GAP_S = 2 * SEQUENCE_BOUNDARY_S
FPS = 17.0
START_NS = 1_600_000_000 * 10 ** 9  # first stamp of a written bag: 2020-09-13 12:26:40 UTC
STORAGES = ('mcap', 'sqlite3')
_IMAGE_TOPIC = re.compile(r'^/(?P<camera>[^/]+(?:/[^/]+)*)/image_raw$')
_COMPRESSED_TOPIC = re.compile(r'^/(?P<camera>[^/]+(?:/[^/]+)*)/image_raw/compressed$')
_TRUTH_TOPIC = re.compile(r'^/(?P<camera>[^/]+(?:/[^/]+)*)/semantic/ground_truth$')
_DEGRADATION_TOPIC = re.compile(r'^/(?P<camera>[^/]+(?:/[^/]+)*)/synthetic/degradation$')
_INSTANCES_TOPIC = re.compile(r'^/(?P<camera>[^/]+(?:/[^/]+)*)/semantic/instance_ids$')
_STEM_TOPIC = re.compile(r'^/(?P<camera>[^/]+(?:/[^/]+)*)/cityscapes/stem$')


class BagError(ValueError):
    """A bag cannot be written or read; the message names the bag and the problem."""


@dataclass(frozen=True)
class BagFrame:
    """One camera frame of a bag with its ground truth (None when the frame has none).

    ``degradation`` is None when not recorded, ``''`` for a frame recorded as clean, else the
    kind of degradation of the frame (``noise``, ...).
    """

    camera: str
    stamp_ns: int
    frame_id: str
    image: np.ndarray                 # H×W×3 uint8 RGB
    ground_truth: np.ndarray | None   # H×W uint8 train ids
    sequence_start: bool = False      # first frame of the camera, or after a gap / time jump
    degradation: str | None = None
    stem: str | None = None           # Cityscapes ``<city>_<sequence>_<frame>`` of the source
    instances: np.ndarray | None = None  # H×W uint16 Cityscapes instance ids


@dataclass(frozen=True)
class BagSummary:
    """What :func:`write_bag` wrote."""

    path: Path
    cameras: tuple[str, ...]
    frames: int
    ground_truth: int
    degraded: int | None   # frames recorded as degraded; None when no frame records degradation
    start_ns: int
    end_ns: int


def image_topic(camera: str) -> str:
    """Return the image topic of a camera."""
    return f'/{camera}/image_raw'


def compressed_image_topic(camera: str) -> str:
    """Return the compressed image topic of a camera (image_transport's name)."""
    return f'{image_topic(camera)}/compressed'


def ground_truth_topic(camera: str) -> str:
    """Return the ground-truth topic of a camera."""
    return f'/{camera}/semantic/ground_truth'


def degradation_topic(camera: str) -> str:
    """Return the degradation topic of a camera."""
    return f'/{camera}/synthetic/degradation'


def instances_topic(camera: str) -> str:
    """Return the instance-id topic of a camera."""
    return f'/{camera}/semantic/instance_ids'


def stem_topic(camera: str) -> str:
    """Return the topic of a camera's Cityscapes file-name stems."""
    return f'/{camera}/cityscapes/stem'


def optical_frame(camera: str) -> str:
    """Return the ``frame_id`` of a camera's images."""
    return f'{camera}_optical_frame'


@functools.cache
def _typestore():
    from rosbags.typesys import Stores, get_typestore

    return get_typestore(Stores.ROS2_JAZZY)


# Writing ----------------------------------------------------------------------------------------

def write_bag(path: str | Path, frames: Iterable[BagFrame], *,
              storage: str = 'mcap', compression: str | None = None) -> BagSummary:
    """Write frames (in time order) to a new rosbag2 folder ``path``.

    With ``compression`` (``jpeg`` or ``png``) images go to ``/<camera>/image_raw/compressed``
    as ``CompressedImage``; ground truth stays lossless ``mono8``.
    """
    from rosbags.rosbag2 import StoragePlugin, Writer, WriterError

    path = Path(path)
    if storage not in STORAGES:
        raise BagError(f'storage must be one of {", ".join(STORAGES)}, got {storage!r}')
    if path.exists():
        raise BagError(f'{path} already exists; rosbag2 writes a new folder')
    if compression is not None:
        try:
            compressed_format(compression)
        except ValueError as error:
            raise BagError(str(error)) from None
    plugin = StoragePlugin.MCAP if storage == 'mcap' else StoragePlugin.SQLITE3
    store = _typestore()
    connections: dict[str, object] = {}
    cameras: list[str] = []
    count = truth = 0
    degraded = None
    first = last = None
    try:
        with Writer(path, version=9, storage_plugin=plugin) as writer:
            def connection(topic: str, msgtype: str = IMAGE_TYPE):
                if topic not in connections:
                    connections[topic] = writer.add_connection(topic, msgtype, typestore=store)
                return connections[topic]

            for frame in frames:
                if last is not None and frame.stamp_ns < last:
                    raise BagError(f'{path}: frames must come in time order; '
                                   f'{frame.stamp_ns} ns follows {last} ns')
                if frame.camera not in cameras:
                    cameras.append(frame.camera)
                if compression is None:
                    writer.write(connection(image_topic(frame.camera)), frame.stamp_ns,
                                 _serialize(frame, frame.image, 'rgb8'))
                else:
                    writer.write(connection(compressed_image_topic(frame.camera),
                                            COMPRESSED_TYPE),
                                 frame.stamp_ns, _serialize_compressed(frame, compression))
                if frame.ground_truth is not None:
                    if frame.ground_truth.shape != frame.image.shape[:2]:
                        raise BagError(f'{path}: ground truth {frame.ground_truth.shape} does '
                                       f'not match image {frame.image.shape[:2]} '
                                       f'({frame.camera} at {frame.stamp_ns} ns)')
                    writer.write(connection(ground_truth_topic(frame.camera)), frame.stamp_ns,
                                 _serialize(frame, frame.ground_truth, 'mono8'))
                    truth += 1
                if frame.instances is not None:
                    if frame.instances.shape != frame.image.shape[:2]:
                        raise BagError(f'{path}: instance ids {frame.instances.shape} do not '
                                       f'match image {frame.image.shape[:2]} '
                                       f'({frame.camera} at {frame.stamp_ns} ns)')
                    writer.write(connection(instances_topic(frame.camera)), frame.stamp_ns,
                                 _serialize(frame, frame.instances, 'mono16'))
                for topic, text in ((degradation_topic, frame.degradation),
                                    (stem_topic, frame.stem)):
                    if text is not None:
                        message = store.types[DEGRADATION_TYPE](data=text)
                        writer.write(connection(topic(frame.camera), DEGRADATION_TYPE),
                                     frame.stamp_ns,
                                     store.serialize_cdr(message, DEGRADATION_TYPE))
                if frame.degradation is not None:
                    degraded = (degraded or 0) + (frame.degradation != '')
                count += 1
                first = frame.stamp_ns if first is None else first
                last = frame.stamp_ns
    except WriterError as error:
        raise BagError(f'{path}: cannot write the bag ({error})') from None
    if not count:
        raise BagError(f'{path}: no frames to write')
    return BagSummary(path, tuple(cameras), count, truth, degraded, first, last)


def _header(frame: BagFrame):
    types = _typestore().types
    seconds, nanoseconds = divmod(frame.stamp_ns, 10 ** 9)
    return types['std_msgs/msg/Header'](
        stamp=types['builtin_interfaces/msg/Time'](sec=seconds, nanosec=nanoseconds),
        frame_id=frame.frame_id)


def _serialize_compressed(frame: BagFrame, compression: str) -> bytes:
    store = _typestore()
    pixels = np.ascontiguousarray(frame.image, np.uint8)
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise BagError(f'images must be H×W×3 uint8 RGB, got shape {pixels.shape}')
    payload = np.frombuffer(rgb_to_compressed(pixels, compression), np.uint8)
    message = store.types[COMPRESSED_TYPE](header=_header(frame),
                                           format=compressed_format(compression), data=payload)
    return store.serialize_cdr(message, COMPRESSED_TYPE)


def _serialize(frame: BagFrame, pixels: np.ndarray, encoding: str) -> bytes:
    store = _typestore()
    types = store.types
    pixels = np.ascontiguousarray(pixels, '<u2' if encoding == 'mono16' else np.uint8)
    if encoding == 'rgb8' and (pixels.ndim != 3 or pixels.shape[2] != 3):
        raise BagError(f'images must be H×W×3 uint8 RGB, got shape {pixels.shape}')
    if encoding in ('mono8', 'mono16') and pixels.ndim != 2:
        raise BagError(f'ground truth must be H×W, got shape {pixels.shape}')
    height, width = pixels.shape[:2]
    header = _header(frame)
    message = types[IMAGE_TYPE](header=header, height=height, width=width, encoding=encoding,
                                is_bigendian=0, step=pixels.strides[0],
                                data=pixels.reshape(-1).view(np.uint8))
    return store.serialize_cdr(message, IMAGE_TYPE)


def tree_frames(tree: CityscapesTree, *, fps: float = FPS, gap_s: float = SEQUENCE_GAP_S,
                start_ns: int = START_NS, dense: bool = True) -> Iterator[BagFrame]:
    """Yield the frames of a Cityscapes-style tree as bag frames, in time order.

    Frames are stamped at ``fps`` within a sequence, sequences ``gap_s`` apart. Ground truth is
    dense when ``dense`` is set and the tree has it, else that of the annotated frames. The
    degradation of a frame is recorded when the tree records degradations, its stem always,
    its instance ids where the tree has them.
    """
    if fps <= 0 or gap_s <= SEQUENCE_BOUNDARY_S:
        raise BagError(f'fps must be > 0 and the gap between sequences > {SEQUENCE_BOUNDARY_S} s '
                       f'(the continuity boundary), got {fps} and {gap_s}')
    if 1 / fps > SEQUENCE_BOUNDARY_S:
        raise BagError(f'at {fps} fps consecutive frames are further apart than the continuity '
                       f'boundary ({SEQUENCE_BOUNDARY_S} s)')
    period = 10 ** 9 / fps
    sequence = None
    first_frame = sequence_start = last_stamp = 0
    for frame in tree.stream():
        if frame.sequence_name != sequence:
            sequence_start = start_ns if sequence is None else last_stamp + seconds_to_ns(gap_s)
            sequence, first_frame = frame.sequence_name, frame.frame
        stamp = sequence_start + round((frame.frame - first_frame) * period)
        last_stamp = max(last_stamp, stamp)
        truth = frame.dense_labels if dense and frame.dense_labels is not None else frame.labels
        degradation = None
        if frame.degraded is not None:
            degradation = frame.degradation['kind'] if frame.degraded else ''
        yield BagFrame(frame.camera, stamp, optical_frame(frame.camera), frame.image, truth,
                       degradation=degradation, stem=frame.name, instances=frame.instances)


# Reading ----------------------------------------------------------------------------------------

def read_bag(path: str | Path, cameras: Sequence[str] | None = None, *,
             max_gap_s: float = SEQUENCE_BOUNDARY_S,
             require_ground_truth: bool = False) -> Iterator[BagFrame]:
    """Read the frames of a bag in time order (cameras by name at equal stamps).

    A frame starts a sequence where `lma_perception.continuity.reset_reason` with `max_gap_s`
    would clear its camera's memory.

    The bag is opened and its topics checked at once (a :class:`BagError` right away, also when
    `require_ground_truth` is set and no camera has a ground-truth topic); frames are then
    decoded as they are iterated.
    """
    path = Path(path)
    if not path.exists():
        raise BagError(f'no bag at {path}')
    reader = open_reader(path)
    try:
        topics = _topics(reader, path, cameras)
        if require_ground_truth and not topics['truth']:
            raise BagError(f'{path}: nothing labelled: no {IMAGE_TYPE} ground truth on '
                           f'/<camera>/semantic/ground_truth; topics in the bag: '
                           f'{_listing(reader)}')
    except BaseException:
        reader.close()
        raise
    return _frames(reader, path, topics, seconds_to_ns(max_gap_s))


def camera_image_topics(path: str | Path) -> dict[str, str]:
    """Return the image topic :func:`read_bag` reads for each camera of a bag (raw or compressed).

    Raises:
        BagError: as :func:`read_bag`.
    """
    path = Path(path)
    if not path.exists():
        raise BagError(f'no bag at {path}')
    reader = open_reader(path)
    try:
        images = _topics(reader, path, None)['image']
        return {images[c.id]: c.topic for c in reader.connections if c.id in images}
    finally:
        reader.close()


def open_reader(path: Path):
    """Open a bag with rosbags; any failure to open it becomes a `BagError` that says why."""
    from rosbags.rosbag2 import Reader

    if path.is_dir() and not (path / 'metadata.yaml').is_file():
        raise BagError(f'{path}: cannot open the bag: no metadata.yaml, which a rosbag2 folder '
                       'holds next to its storage files (.mcap or .db3)')
    try:
        reader = Reader(path)
        reader.open()
    except Exception as error:  # rosbags, yaml, sqlite and mcap errors alike
        raise BagError(f'{path}: cannot open the bag, it is missing files, corrupt or truncated '
                       f'({type(error).__name__}: {error})') from None
    return reader


def _listing(reader) -> str:
    return ', '.join(f'{c.topic} ({c.msgtype})' for c in reader.connections) or 'none'


# Kinds of topic read: name pattern and message type. The String topics are ours alone, so
# another type on them is an error; other Image-named topics of another type are foreign data.
_TOPIC_KINDS = {
    'image': (_IMAGE_TOPIC, IMAGE_TYPE),
    'compressed': (_COMPRESSED_TOPIC, COMPRESSED_TYPE),
    'truth': (_TRUTH_TOPIC, IMAGE_TYPE),
    'instances': (_INSTANCES_TOPIC, IMAGE_TYPE),
    'degradation': (_DEGRADATION_TOPIC, DEGRADATION_TYPE),
    'stem': (_STEM_TOPIC, DEGRADATION_TYPE),
}
_TEXT_KINDS = ('degradation', 'stem')


def _topics(reader, path: Path, cameras: Sequence[str] | None) -> dict[str, dict[int, str]]:
    """Per kind of topic, connection id → camera; compressed images count as images."""
    found: dict[str, dict[int, str]] = {kind: {} for kind in _TOPIC_KINDS}
    for connection in reader.connections:
        for kind, (pattern, msgtype) in _TOPIC_KINDS.items():
            match = pattern.match(connection.topic)
            if match and connection.msgtype == msgtype:
                found[kind][connection.id] = match['camera']
            elif match and kind in _TEXT_KINDS:
                raise BagError(f'{path}: {connection.topic} must be {msgtype}, got '
                               f'{connection.msgtype}')
    # A camera recorded both ways is read from its raw images, which lost nothing.
    compressed = found.pop('compressed')
    images = found['image']
    images |= {k: c for k, c in compressed.items() if c not in images.values()}
    if not images:
        raise BagError(f'{path}: no camera images (expected {IMAGE_TYPE} on /<camera>/image_raw '
                       f'or {COMPRESSED_TYPE} on /<camera>/image_raw/compressed); topics in the '
                       f'bag: {_listing(reader)}')
    if cameras is not None:
        present = sorted(set(images.values()))
        missing = [c for c in cameras if c not in present]
        if missing:
            raise BagError(f'{path}: no {", ".join(image_topic(c) for c in missing)} in the bag; '
                           f'cameras present: {", ".join(present)}')
    wanted = set(images.values()) if cameras is None else set(cameras)
    return {kind: {k: c for k, c in ids.items() if c in wanted} for kind, ids in found.items()}


def _frames(reader, path: Path, topics: dict[str, dict[int, str]],
            max_gap_ns: int) -> Iterator[BagFrame]:
    owner = {connection_id: (kind, camera) for kind, ids in topics.items()
             for connection_id, camera in ids.items()}
    connections = [c for c in reader.connections if c.id in owner]
    # Frames of the current bag time, by (camera, header stamp): log time and the message of
    # each kind. They are emitted once the bag time moves on, sorted by camera, so that the
    # order is stable.
    pending: dict[tuple[str, int], dict] = {}
    last_key: dict[str, FrameKey] = {}

    def matching(camera: str, stamp: int, image, other, what: str) -> np.ndarray | None:
        if other is None:
            return None
        if other[1] != image[1]:
            raise BagError(f'{path}: {camera} at {stamp} ns: {what} frame_id '
                           f'{other[1]!r} differs from the image\'s {image[1]!r}')
        if other[0].shape != image[0].shape[:2]:
            raise BagError(f'{path}: {camera} at {stamp} ns: {what} size '
                           f'{other[0].shape[::-1]} differs from the image size '
                           f'{image[0].shape[1::-1]}')
        return other[0]

    def emit(key) -> Iterator[BagFrame]:
        entry = pending.pop(key)
        image = entry.get('image')
        if image is None:
            return  # ground truth without an image: nothing to segment
        camera, stamp = key
        frame_key = FrameKey(stamp, image[1], *image[0].shape[:2])
        previous = last_key.get(camera)
        start = previous is None or reset_reason(previous, frame_key, max_gap_ns) is not None
        last_key[camera] = frame_key
        yield BagFrame(
            camera, stamp, image[1], image[0],
            matching(camera, stamp, image, entry.get('truth'), 'ground truth'), start,
            entry.get('degradation'), entry.get('stem'),
            matching(camera, stamp, image, entry.get('instances'), 'instance ids'))

    def ready(before: int | None) -> list:
        keys = [k for k, v in pending.items() if before is None or v['log_time'] < before]
        return sorted(keys, key=lambda k: (pending[k]['log_time'], k[0]))

    try:
        messages = reader.messages(connections=connections)
        for connection, log_time, raw in _guarded(messages, path):
            for key in ready(log_time):
                yield from emit(key)
            kind, camera = owner[connection.id]
            if kind in _TEXT_KINDS:
                # A String has no header: its bag time is the stamp of its frame.
                stamp = log_time
                value = _deserialize(raw, DEGRADATION_TYPE, connection.topic, path).data
            else:
                stamp, frame_id, pixels = _decode(raw, connection.topic, path, kind,
                                                  connection.msgtype)
                value = (pixels, frame_id)
            pending.setdefault((camera, stamp), {'log_time': log_time})[kind] = value
        for key in ready(None):
            yield from emit(key)
    finally:
        reader.close()


def _guarded(messages, path: Path):
    """Re-raise errors from deep inside the storage plugins as BagError."""
    iterator = iter(messages)
    while True:
        try:
            item = next(iterator)
        except StopIteration:
            return
        except Exception as error:
            raise BagError(f'{path}: the bag is corrupt or truncated '
                           f'({type(error).__name__}: {error})') from None
        yield item


def _deserialize(raw: bytes, msgtype: str, topic: str, path: Path):
    try:
        return _typestore().deserialize_cdr(raw, msgtype)
    except Exception as error:
        raise BagError(f'{path}: {topic}: a message is not a valid {msgtype} '
                       f'({type(error).__name__}: {error})') from None


def _decode(raw: bytes, topic: str, path: Path, kind: str, msgtype: str):
    message = _deserialize(raw, msgtype, topic, path)
    stamp = stamp_to_ns(message.header.stamp)
    try:
        if msgtype == COMPRESSED_TYPE:
            pixels = compressed_to_rgb(message.format, message.data)
        elif kind == 'image':
            pixels = image_to_rgb(message.encoding, message.height, message.width, message.step,
                                  bool(message.is_bigendian), message.data)
        elif kind == 'instances':
            if message.encoding != 'mono16':
                raise BagError(f'{path}: {topic}: instance ids must be mono16, got '
                               f'{message.encoding!r}')
            pixels = mono16_to_array(message.height, message.width, message.step,
                                     bool(message.is_bigendian), message.data)
        elif message.encoding != 'mono8':
            raise BagError(f'{path}: {topic}: ground truth must be mono8 train ids, got '
                           f'{message.encoding!r}')
        else:
            pixels = mono8_to_array(message.height, message.width, message.step, message.data)
    except ImageFormatError as error:
        raise BagError(f'{path}: {topic}: {error}') from None
    return stamp, message.header.frame_id, pixels
