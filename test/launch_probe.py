"""Shared by the launch tests: feed images to a launched node and wait for its labels."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import rclpy
from conftest import next_domain_id
from rclpy.context import Context
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

from lma_perception.data.cityscapes import CityscapesTree
from lma_perception.data.rosbag import tree_frames, write_bag
from lma_perception.ros.spinning import BackgroundSpinner
from lma_perception.synthetic.generator import SynthConfig, write_dataset

QOS = QoSProfile(depth=5, reliability=ReliabilityPolicy.RELIABLE)


def labels_for(image_topics: dict[str, str], timeout_s: float = 120.0,
               publish: bool = True) -> dict[str, Image]:
    """Publish a test image on each input topic until every labels topic has answered.

    `image_topics` maps a labels topic to the image topic that feeds it; with `publish` False
    the images come from elsewhere (a bag player) and only the labels are awaited.
    """
    rclpy.init()
    node = Node('launch_probe')
    received: dict[str, Image] = {}
    publishers = {}
    for labels_topic, image_topic in image_topics.items():
        node.create_subscription(Image, labels_topic,
                                 lambda msg, t=labels_topic: received.setdefault(t, msg), QOS)
        if publish:
            publishers[labels_topic] = node.create_publisher(Image, image_topic, QOS)
    image = Image(height=96, width=160, encoding='rgb8', step=480)
    image.header.frame_id = 'launch_test_frame'
    image.data = np.full((96, 160, 3), 120, np.uint8).tobytes()
    deadline = time.monotonic() + timeout_s
    try:
        while len(received) < len(image_topics) and time.monotonic() < deadline:
            for publisher in publishers.values():
                publisher.publish(image)
            rclpy.spin_once(node, timeout_sec=0.2)
        return received
    finally:
        node.destroy_node()
        rclpy.shutdown()


def use_own_domain() -> int:
    """Put this process, and the processes it launches, on a ROS domain of their own."""
    domain = next_domain_id()
    os.environ['ROS_DOMAIN_ID'] = str(domain)
    return domain


def stamp_ns(stamp) -> int:
    return stamp.sec * 10**9 + stamp.nanosec


class LabelRecorder:
    """Records the stamps of every message on some labels topics, from before a launch starts.

    Subscribed before the nodes under test exist, it misses none of their outputs.
    """

    def __init__(self, topics: list[str]) -> None:
        self.stamps: dict[str, list[int]] = {topic: [] for topic in topics}
        self._context = Context()
        rclpy.init(context=self._context)  # the domain of ROS_DOMAIN_ID
        self._node = Node('label_recorder', context=self._context)
        qos = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
        for topic in topics:
            self._node.create_subscription(Image, topic, self._recorder(topic), qos)
        self._spinner = BackgroundSpinner(self._context, self._node)

    def _recorder(self, topic: str):
        return lambda msg: self.stamps[topic].append(stamp_ns(msg.header.stamp))

    def wait_for(self, expected: dict[str, set[int]], timeout_s: float = 120.0) -> None:
        """Wait until every topic has carried the expected stamps (or the timeout)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(
                not stamps <= set(self.stamps[topic]) for topic, stamps in expected.items()):
            time.sleep(0.1)

    def close(self) -> None:
        self._spinner.stop()
        self._node.destroy_node()
        self._context.try_shutdown()


def short_bag(folder: Path, frames: int = 4) -> tuple[Path, dict[str, set[int]]]:
    """A bag of `frames` synthetic frames per camera, and the stamps each labels topic expects."""
    write_dataset(folder / 'tree', SynthConfig(width=256, height=128, frames=frames,
                                               annotated_frame=frames // 2), 'val', 1)
    recorded = list(tree_frames(CityscapesTree(folder / 'tree', 'val')))
    stamps: dict[str, set[int]] = {}
    for frame in recorded:
        stamps.setdefault(f'/{frame.camera}/labels', set()).add(frame.stamp_ns)
    write_bag(folder / 'short.bag', recorded)
    return folder / 'short.bag', stamps
