"""A node that scores label images against the ground truth published beside the images.

It pairs each camera's `labels` with `semantic/ground_truth` of the same stamp (exact match, as
`message_filters.TimeSynchronizer` would) and measures end-to-end latency as the arrival of the
labels minus the arrival of the image with that stamp, both seen by this node.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import CompressedImage, Image

from lma_perception.codecs import ImageFormatError
from lma_perception.continuity import stamp_to_ns
from lma_perception.eval.metrics import ConfusionMatrix
from lma_perception.ros.compressed import message_type, transport_topic
from lma_perception.ros.messages import mono8_msg_to_array
from lma_perception.runtime.latency import LatencyStats

IMAGE_SUFFIX = '/image_raw'
GROUND_TRUTH_SUFFIX = '/semantic/ground_truth'
# Reliable and deep enough that the listener itself loses nothing it is sent.
LISTENER_QOS = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
UNPAIRED_LIMIT = 256  # stamps remembered per camera while waiting for the other half


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

    def __init__(
        self, cameras: list[str], transports: dict[str, str] | None = None, **node_kwargs
    ) -> None:
        """Subscribe to `/<camera>/image_raw`, `/<camera>/labels` and the ground truth.

        A camera whose transport (`transports`, default raw) is `compressed` is heard on
        `/<camera>/image_raw/compressed`.
        """
        super().__init__('label_listener', **node_kwargs)
        self._lock = threading.Lock()
        self._tallies = {camera: CameraTally() for camera in cameras}
        transports = transports or {}
        for camera in cameras:
            transport = transports.get(camera, 'raw')
            self.create_subscription(
                message_type(transport), transport_topic(f'/{camera}{IMAGE_SUFFIX}', transport),
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

    def _on_image(self, camera: str, msg: Image | CompressedImage) -> None:
        arrived_s = time.monotonic()
        with self._lock:
            tally = self._tallies[camera]
            tally.images_received += 1
            _remember(tally.image_arrivals, stamp_to_ns(msg.header.stamp), arrived_s)

    def _on_ground_truth(self, camera: str, msg: Image) -> None:
        stamp = stamp_to_ns(msg.header.stamp)
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
        stamp = stamp_to_ns(msg.header.stamp)
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
