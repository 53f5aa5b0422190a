"""Live evaluation: a bag played through the real node, scored as it comes out.

The segmentation node, a `LabelListener` and a `BagPlayer` share one process and one ROS
context; the node and the listener spin in background threads while the player publishes
from the calling thread, so every message crosses real DDS topics. The listener pairs each
camera's `labels` with the bag's `semantic/ground_truth` of the same stamp (exact match, as
`message_filters.TimeSynchronizer` would) and measures end-to-end latency as the arrival of the
labels minus the arrival of the image with that stamp, both seen by the listener.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from lma_perception.eval.metrics import (
    ConfusionMatrix,
    LatencyStats,
    LatencySummary,
    summarize_latency,
)
from lma_perception.labels import CLASS_NAMES
from lma_perception.ros.bag_player import BagPlayer, PlaybackOptions, ReplayError
from lma_perception.ros.camera_stream import StreamSnapshot
from lma_perception.ros.messages import mono8_msg_to_array
from lma_perception.ros.segment_node import SegmentNode
from lma_perception.ros.spinning import BackgroundSpinner
from lma_perception.runtime.codecs import ImageFormatError
from lma_perception.runtime.engine import SegmentationEngine

IMAGE_SUFFIX = '/image_raw'
GROUND_TRUTH_SUFFIX = '/semantic/ground_truth'
# Reliable and deep enough that the listener itself loses nothing it is sent.
LISTENER_QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
UNPAIRED_LIMIT = 256  # stamps remembered per camera while waiting for the other half
QUIET_S = 2.0  # after playback, no new labels for this long while the node idles: done


@dataclass(frozen=True)
class LiveEvalOptions:
    """How to run a live evaluation."""

    rate: float = 1.0  # playback speed factor
    use_sim_time: bool = False  # the player publishes /clock and the node runs on it
    params_files: tuple[Path, ...] = ()  # node parameter YAML files
    parameters: tuple[Parameter, ...] = ()  # node parameters; they win over the files
    startup_timeout_s: float = 30.0  # for every topic to find its subscribers
    drain_timeout_s: float = 60.0  # after playback, for the node to publish what it received


@dataclass
class CameraReport:
    """Figures of one camera."""

    camera: str
    images_published: int
    images_received: int
    labels_received: int
    frames_scored: int
    frames_dropped: int  # published images that never came back as labels
    node_received: int  # images the node's subscription got
    node_dropped: int  # replaced in the node by a newer frame before it was segmented
    memory_resets: int
    latency_ms: LatencySummary
    miou: float


@dataclass
class LiveEvalReport:
    """The outcome of a live evaluation."""

    bag: str
    cameras: list[CameraReport]
    miou: float
    pixel_accuracy: float
    class_iou: dict[str, float]
    latency_ms: LatencySummary
    wall_s: float
    device: str

    def as_dict(self) -> dict[str, Any]:
        """Return plain data for JSON (NaN written as null)."""
        def clean(value: Any) -> Any:
            if isinstance(value, float) and np.isnan(value):
                return None
            if isinstance(value, LatencySummary):
                return {k: clean(v) for k, v in value.as_dict().items()}
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            if isinstance(value, list):
                return [clean(v) for v in value]
            if isinstance(value, CameraReport):
                return {k: clean(v) for k, v in vars(value).items()}
            return value

        return {k: clean(v) for k, v in vars(self).items()}

    def summary(self) -> str:
        """Return a table of the cameras and the overall scores, for people."""
        lines = [
            f'live evaluation of {self.bag} on {self.device} ({self.wall_s:.1f} s)',
            f'{"camera":<14}{"published":>10}{"labels":>8}{"scored":>8}{"dropped":>9}'
            f'{"resets":>8}{"lat p50":>9}{"lat p95":>9}{"mIoU":>8}',
        ]
        for c in self.cameras:
            lines.append(
                f'{c.camera:<14}{c.images_published:>10}{c.labels_received:>8}'
                f'{c.frames_scored:>8}{c.frames_dropped:>9}{c.memory_resets:>8}'
                f'{c.latency_ms.p50:>9.1f}{c.latency_ms.p95:>9.1f}{100 * c.miou:>8.1f}'
            )
        lines.append(
            f'mIoU {100 * self.miou:.1f} %, pixel accuracy {100 * self.pixel_accuracy:.1f} %, '
            f'end-to-end latency p50 {self.latency_ms.p50:.1f} ms, '
            f'p95 {self.latency_ms.p95:.1f} ms, max {self.latency_ms.max:.1f} ms'
        )
        return '\n'.join(lines)


@dataclass
class CameraTally:
    """One camera's half-paired messages and running scores (executor threads)."""

    image_arrivals: OrderedDict[int, float] = field(default_factory=OrderedDict)
    ground_truth: OrderedDict[int, np.ndarray] = field(default_factory=OrderedDict)
    labels: OrderedDict[int, np.ndarray] = field(default_factory=OrderedDict)
    confusion: ConfusionMatrix = field(default_factory=ConfusionMatrix)
    latency: LatencyStats = field(default_factory=LatencyStats)
    images_received: int = 0
    labels_received: int = 0


class LabelListener(Node):
    """Scores the labels of each camera against the ground truth published beside the images."""

    def __init__(self, cameras: list[str], **node_kwargs) -> None:
        """Subscribe to `/<camera>/image_raw`, `/<camera>/labels` and the ground truth."""
        super().__init__('label_listener', **node_kwargs)
        self._lock = threading.Lock()
        self._tallies = {camera: CameraTally() for camera in cameras}
        for camera in cameras:
            self.create_subscription(
                Image, f'/{camera}{IMAGE_SUFFIX}',
                lambda msg, camera=camera: self._on_image(camera, msg), LISTENER_QOS,
            )
            self.create_subscription(
                Image, f'/{camera}{GROUND_TRUTH_SUFFIX}',
                lambda msg, camera=camera: self._on_ground_truth(camera, msg), LISTENER_QOS,
            )
            self.create_subscription(
                Image, f'/{camera}/labels',
                lambda msg, camera=camera: self._on_labels(camera, msg), LISTENER_QOS,
            )

    def labels_received(self) -> int:
        """Return the number of label images received over all cameras."""
        with self._lock:
            return sum(tally.labels_received for tally in self._tallies.values())

    def tally(self, camera: str) -> CameraTally:
        """Return the running figures of one camera."""
        return self._tallies[camera]

    def _on_image(self, camera: str, msg: Image) -> None:
        arrived_s = time.monotonic()
        with self._lock:
            tally = self._tallies[camera]
            tally.images_received += 1
            _remember(tally.image_arrivals, _stamp_ns(msg), arrived_s)

    def _on_ground_truth(self, camera: str, msg: Image) -> None:
        stamp = _stamp_ns(msg)
        try:
            ground_truth = mono8_msg_to_array(msg)
        except ImageFormatError as error:
            self.get_logger().error(f'{camera}: unusable ground truth: {error}',
                                    throttle_duration_sec=10.0)
            return
        with self._lock:
            tally = self._tallies[camera]
            labels = tally.labels.pop(stamp, None)
            if labels is None:
                _remember(tally.ground_truth, stamp, ground_truth)
                return
        self._score(tally, labels, ground_truth)

    def _on_labels(self, camera: str, msg: Image) -> None:
        arrived_s = time.monotonic()
        stamp = _stamp_ns(msg)
        labels = mono8_msg_to_array(msg)
        with self._lock:
            tally = self._tallies[camera]
            tally.labels_received += 1
            image_arrived_s = tally.image_arrivals.pop(stamp, None)
            if image_arrived_s is not None:
                tally.latency.add((arrived_s - image_arrived_s) * 1e3)
            ground_truth = tally.ground_truth.pop(stamp, None)
            if ground_truth is None:
                _remember(tally.labels, stamp, labels)
                return
        self._score(tally, labels, ground_truth)

    def _score(self, tally: CameraTally, labels: np.ndarray, ground_truth: np.ndarray) -> None:
        with self._lock:
            try:
                tally.confusion.update(labels, ground_truth)
            except ValueError as error:  # sizes differ, or values that are no train ids
                self.get_logger().error(f'cannot score: {error}', throttle_duration_sec=10.0)


def _remember(pending: OrderedDict[int, Any], stamp: int, value: Any) -> None:
    pending[stamp] = value
    while len(pending) > UNPAIRED_LIMIT:
        pending.popitem(last=False)


def _stamp_ns(msg: Image) -> int:
    return msg.header.stamp.sec * 10**9 + msg.header.stamp.nanosec


def cameras_in(topics: dict[str, str]) -> list[str]:
    """Return the cameras of a bag: names with both an image and a ground-truth Image topic."""
    images = {topic[1:-len(IMAGE_SUFFIX)] for topic, msgtype in topics.items()
              if topic.endswith(IMAGE_SUFFIX) and msgtype == 'sensor_msgs/msg/Image'}
    truths = {topic[1:-len(GROUND_TRUTH_SUFFIX)] for topic in topics
              if topic.endswith(GROUND_TRUTH_SUFFIX)}
    return sorted(images & truths)


def run_live_eval(
    bag: str | Path,
    options: LiveEvalOptions | None = None,
    *,
    engine: SegmentationEngine | None = None,
    domain_id: int | None = None,
) -> LiveEvalReport:
    """Play `bag` through a segmentation node and score its labels against the ground truth.

    `engine` replaces the model the node parameters describe (tests, benchmarks).

    Raises:
        ReplayError: the bag cannot be played or holds no camera with ground truth.
        SetupError: the node cannot start (parameters, weights).
    """
    options = options or LiveEvalOptions()
    bag = Path(bag)
    args = ['live_eval']
    for params_file in options.params_files:
        args += ['--ros-args', '--params-file', str(params_file)]
    context = Context()
    rclpy.init(args=args, context=context, domain_id=domain_id)
    with contextlib.ExitStack() as cleanup:  # undone in reverse: executor, nodes, context
        cleanup.callback(context.try_shutdown)
        player = cleanup.enter_context(BagPlayer(bag, PlaybackOptions(
            rate=options.rate,
            clock=options.use_sim_time,
        ), context=context))  # `_connected` below waits for the topics that are scored
        cameras = cameras_in(player.topics)
        if not cameras:
            raise ReplayError(
                f'{bag} has no camera with both /<camera>{IMAGE_SUFFIX} and '
                f'/<camera>{GROUND_TRUTH_SUFFIX} topics'
            )
        overrides = [
            Parameter('cameras', value=cameras),
            *(Parameter(f'{camera}.image_topic', value=f'/{camera}{IMAGE_SUFFIX}')
              for camera in cameras),
            Parameter('use_sim_time', value=options.use_sim_time),
            *options.parameters,
            Parameter('output_resolution', value='input'),  # scored against full-size truth
        ]
        node = cleanup.enter_context(
            SegmentNode(engine=engine, context=context, parameter_overrides=overrides)
        )
        listener = cleanup.enter_context(LabelListener(cameras, context=context))
        cleanup.enter_context(BackgroundSpinner(context, node, listener))

        if not _wait_for(lambda: _connected(player, cameras, (node, listener)),
                         options.startup_timeout_s):
            raise ReplayError(f'the topics did not connect within {options.startup_timeout_s} s')
        started = time.monotonic()
        stats = player.play()
        images = sum(stats.messages[f'/{camera}{IMAGE_SUFFIX}'] for camera in cameras)
        _drain(node, listener, images, options.drain_timeout_s)
        wall_s = time.monotonic() - started
        snapshots = {s.name: s for s in node.camera_snapshots()}
        return _report(bag, cameras, stats.messages, listener, snapshots, wall_s, node.device)


def _connected(player: BagPlayer, cameras: list[str], readers: tuple[Node, ...]) -> bool:
    """Whether both ends of every topic have matched, so that no first message is lost.

    A writer may see its reader before the reader sees the writer, and a volatile topic drops
    what is published in between; hence both sides are checked.
    """
    readers_per_topic = {f'/{camera}{IMAGE_SUFFIX}': 2 for camera in cameras}  # node, listener
    readers_per_topic |= {f'/{camera}{GROUND_TRUTH_SUFFIX}': 1 for camera in cameras}
    writers_matched = all(
        publisher.get_subscription_count() >= readers_per_topic[publisher.topic_name]
        for publisher in player.publishers if publisher.topic_name in readers_per_topic
    )
    readers_matched = all(
        subscription.get_publisher_count() > 0
        for reader in readers for subscription in reader.subscriptions
    )
    return writers_matched and readers_matched


def _wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


def _drain(node: SegmentNode, listener: LabelListener, images: int, timeout_s: float) -> None:
    """Wait until the node got the `images` published and the listener got all their labels.

    Best-effort input can lose images on the way, and so the counts would never add up; so
    waiting also ends once the node idles and nothing has changed for a while.
    """
    deadline = time.monotonic() + timeout_s
    last, quiet_since = None, time.monotonic()
    while time.monotonic() < deadline:
        snapshots = node.camera_snapshots()
        received = sum(snapshot.received for snapshot in snapshots)
        published = sum(snapshot.published for snapshot in snapshots)
        labels = listener.labels_received()
        idle = node.idle
        if idle and received >= images and labels >= published:
            return
        if (received, labels) != last:
            last, quiet_since = (received, labels), time.monotonic()
        elif idle and time.monotonic() - quiet_since > QUIET_S:
            return
        time.sleep(0.05)


def _report(
    bag: Path,
    cameras: list[str],
    published: Mapping[str, int],
    listener: LabelListener,
    snapshots: dict[str, StreamSnapshot],
    wall_s: float,
    device: str,
) -> LiveEvalReport:
    reports = []
    total = ConfusionMatrix()
    latencies: list[float] = []
    for camera in cameras:
        tally = listener.tally(camera)
        snapshot = snapshots[camera]
        images_published = published[f'/{camera}{IMAGE_SUFFIX}']
        reports.append(CameraReport(
            camera=camera,
            images_published=images_published,
            images_received=tally.images_received,
            labels_received=tally.labels_received,
            frames_scored=tally.confusion.frames,
            frames_dropped=images_published - tally.labels_received,
            node_received=snapshot.received,
            node_dropped=snapshot.dropped,
            memory_resets=sum(snapshot.resets.values()),
            latency_ms=tally.latency.summary(),
            miou=tally.confusion.miou(),
        ))
        total = total.merge(tally.confusion)
        latencies += tally.latency.values
    return LiveEvalReport(
        bag=str(bag),
        cameras=reports,
        miou=total.miou(),
        pixel_accuracy=total.pixel_accuracy(),
        class_iou=dict(zip(CLASS_NAMES, (float(v) for v in total.iou()), strict=True)),
        latency_ms=summarize_latency(latencies),
        wall_s=wall_s,
        device=device,
    )
