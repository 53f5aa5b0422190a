"""Live evaluation: a bag played through the real node, scored as it comes out.

The segmentation node, a `LabelListener` and a `BagPlayer` share one process and one ROS
context; the node and the listener spin in background threads while the player publishes
from the calling thread, so every message crosses real DDS topics. The outcome is a
`lma_perception.eval.live_report.LiveEvalReport`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import rclpy
from rclpy.context import Context
from rclpy.node import Node
from rclpy.parameter import Parameter

from lma_perception.eval.live_report import CameraReport, LiveEvalReport
from lma_perception.eval.metrics import ConfusionMatrix
from lma_perception.labels import CLASS_NAMES
from lma_perception.ros.bag_player import BagPlayer, ReplayError
from lma_perception.ros.compressed import TRANSPORTS, message_type, transport_topic
from lma_perception.ros.label_listener import GROUND_TRUTH_SUFFIX, IMAGE_SUFFIX, LabelListener
from lma_perception.ros.playback_options import PlaybackOptions
from lma_perception.ros.segment_node import SegmentNode
from lma_perception.ros.spinning import BackgroundSpinner
from lma_perception.runtime.engine import SegmentationEngine
from lma_perception.runtime.latency import summarize_latency
from lma_perception.runtime.stream import StreamSnapshot

QUIET_S = 2.0  # after playback, no new labels for this long while the node idles: done
INTERRUPTED_DRAIN_S = 5.0  # after a stop request, for the labels of frames already sent


@dataclass(frozen=True)
class LiveEvalOptions:
    """How to run a live evaluation."""

    rate: float = 1.0  # playback speed factor
    use_sim_time: bool = False  # the player publishes /clock and the node runs on it
    params_files: tuple[Path, ...] = ()  # node parameter YAML files
    parameters: tuple[Parameter, ...] = ()  # node parameters; they win over the files
    startup_timeout_s: float = 30.0  # for every topic to find its subscribers
    drain_timeout_s: float = 60.0  # after playback, for the node to publish what it received


def transports_in(topics: dict[str, str]) -> dict[str, str]:
    """Return the cameras of a bag that have ground truth, each with the transport to read.

    A camera's images are raw `Image` on `/<camera>/image_raw` or, failing that,
    `CompressedImage` on `/<camera>/image_raw/compressed`.
    """
    truths = {topic[1:-len(GROUND_TRUTH_SUFFIX)] for topic in topics
              if topic.endswith(GROUND_TRUTH_SUFFIX)}
    found = {}
    for camera in sorted(truths):
        for transport in reversed(TRANSPORTS):  # raw wins: it is what was recorded, unaltered
            topic = transport_topic(f'/{camera}{IMAGE_SUFFIX}', transport)
            if topics.get(topic) == f'sensor_msgs/msg/{message_type(transport).__name__}':
                found[camera] = transport
    return found


def cameras_in(topics: dict[str, str]) -> list[str]:
    """Return the cameras of a bag: names with both an image and a ground-truth Image topic."""
    return list(transports_in(topics))


def run_live_eval(
    bag: str | Path,
    options: LiveEvalOptions | None = None,
    *,
    engine: SegmentationEngine | None = None,
    domain_id: int | None = None,
    stop: threading.Event | None = None,
) -> LiveEvalReport:
    """Play `bag` through a segmentation node and score its labels against the ground truth.

    `engine` replaces the model the node parameters describe (tests, benchmarks). When `stop`
    is set, playback ends early and the report covers what was played (`interrupted`).

    Raises:
        ReplayError: the bag cannot be played or holds no camera with ground truth.
        SetupError: the node cannot start (parameters, weights).
    """
    options = options or LiveEvalOptions()
    stop = stop or threading.Event()
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
        transports = transports_in(player.topics)
        cameras = list(transports)
        if not cameras:
            raise ReplayError(
                f'{bag} has no camera with both /<camera>{IMAGE_SUFFIX} (or '
                f'/<camera>{IMAGE_SUFFIX}/compressed) and /<camera>{GROUND_TRUTH_SUFFIX} topics'
            )
        image_topics = {camera: transport_topic(f'/{camera}{IMAGE_SUFFIX}', transport)
                        for camera, transport in transports.items()}
        overrides = [
            Parameter('cameras', value=cameras),
            *(Parameter(f'{camera}.image_topic', value=f'/{camera}{IMAGE_SUFFIX}')
              for camera in cameras),
            *(Parameter(f'{camera}.transport', value=transport)
              for camera, transport in transports.items()),
            Parameter('use_sim_time', value=options.use_sim_time),
            *options.parameters,
            Parameter('output_resolution', value='input'),  # scored against full-size truth
        ]
        node = cleanup.enter_context(
            SegmentNode(engine=engine, context=context, parameter_overrides=overrides)
        )
        listener = cleanup.enter_context(
            LabelListener(cameras, transports, context=context))
        cleanup.enter_context(BackgroundSpinner(context, node, listener))

        connected = _wait_for(
            lambda: stop.is_set() or _connected(player, image_topics, (node, listener)),
            options.startup_timeout_s,
        )
        if not connected:
            raise ReplayError(f'the topics did not connect within {options.startup_timeout_s} s')
        started = time.monotonic()
        stats = player.play(stop)
        images = sum(stats.messages[topic] for topic in image_topics.values())
        _drain(node, listener, images, min(options.drain_timeout_s, INTERRUPTED_DRAIN_S)
               if stop.is_set() else options.drain_timeout_s)
        wall_s = time.monotonic() - started
        snapshots = {s.name: s for s in node.camera_snapshots()}
        report = _report(bag, image_topics, stats.messages, listener, snapshots, wall_s,
                         node.device)
        report.interrupted = stop.is_set()
        return report


def _connected(
    player: BagPlayer, image_topics: Mapping[str, str], readers: tuple[Node, ...]
) -> bool:
    """Whether both ends of every topic have matched, so that no first message is lost.

    A writer may see its reader before the reader sees the writer, and a volatile topic drops
    what is published in between; hence both sides are checked.
    """
    readers_per_topic = dict.fromkeys(image_topics.values(), 2)  # node, listener
    readers_per_topic |= {f'/{camera}{GROUND_TRUTH_SUFFIX}': 1 for camera in image_topics}
    writers_matched = all(
        publisher.get_subscription_count() >= readers_per_topic[publisher.topic_name]
        for publisher in player.publishers if publisher.topic_name in readers_per_topic
    )
    # Only the played and the scored topics: a camera_info nobody publishes never matches.
    scored = set(readers_per_topic) | {f'/{camera}/labels' for camera in image_topics}
    scored.add('/clock')
    readers_matched = all(
        subscription.get_publisher_count() > 0
        for reader in readers for subscription in reader.subscriptions
        if subscription.topic_name in scored
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
    image_topics: Mapping[str, str],
    published: Mapping[str, int],
    listener: LabelListener,
    snapshots: dict[str, StreamSnapshot],
    wall_s: float,
    device: str,
) -> LiveEvalReport:
    reports = []
    total = ConfusionMatrix()
    latencies: list[float] = []
    for camera, topic in image_topics.items():
        tally = listener.tally(camera)
        snapshot = snapshots[camera]
        images_published = published[topic]
        reports.append(CameraReport(
            camera=camera,
            images_published=images_published,
            images_received=tally.images_received,
            labels_received=tally.labels_received,
            frames_scored=tally.confusion.frames,
            frames_dropped=images_published - tally.labels_received,
            node_received=snapshot.received,
            node_dropped=snapshot.dropped,
            frames_lost_in_transport=snapshot.lost_in_transport,
            frames_missing_in_sequence=snapshot.missed_in_sequence,
            memory_resets=sum(snapshot.resets.values()),
            memory_resets_by_reason={r: n for r, n in snapshot.resets.items() if n},
            latency_ms=tally.latency.summary(),
            miou=tally.confusion.miou(),
        ))
        total = total.merge(tally.confusion)
        latencies += tally.latency.values
    return LiveEvalReport(
        bag=str(bag),
        cameras=reports,
        miou=total.miou(),
        category_miou=total.category_miou(),
        pixel_accuracy=total.pixel_accuracy(),
        class_iou=dict(zip(CLASS_NAMES, (float(v) for v in total.iou()), strict=True)),
        latency_ms=summarize_latency(latencies),
        wall_s=wall_s,
        device=device,
    )
