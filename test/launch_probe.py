"""Shared by the launch tests: feed images to a launched node and wait for its labels."""

from __future__ import annotations

import time

import numpy as np
import rclpy
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image

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
