"""A one-shot image round trip through a real publisher and subscriber."""

from __future__ import annotations

import time

import numpy as np
import rclpy
from rclpy.context import Context
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import Image


def round_trip_image(
    height: int, width: int, timeout_s: float = 10.0, domain_id: int | None = None
) -> float:
    """Publish one rgb8 image and wait until a subscriber in the same process receives it.

    Returns:
        Seconds from the first publish to the reception of an identical image.

    Raises:
        TimeoutError: if nothing arrives in time (no working DDS on this machine).
        ValueError: if the received image differs from the one sent.
    """
    context = Context()
    rclpy.init(context=context, domain_id=domain_id)
    try:
        node = Node('lma_transport_check', context=context)
        qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        received: list[Image] = []
        topic = '/lma_transport_check/image'
        node.create_subscription(Image, topic, received.append, qos)
        publisher = node.create_publisher(Image, topic, qos)
        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)

        pixels = np.random.default_rng(0).integers(0, 256, (height, width, 3), dtype=np.uint8)
        sent = Image(height=height, width=width, encoding='rgb8', step=width * 3)
        sent.header.frame_id = 'transport_check'
        sent.data = pixels.tobytes()

        start = time.monotonic()
        while not received:
            if time.monotonic() - start > timeout_s:
                raise TimeoutError(f'no image came back within {timeout_s} s')
            # Keep publishing until discovery has matched the two endpoints.
            publisher.publish(sent)
            executor.spin_once(timeout_sec=0.05)
        elapsed = time.monotonic() - start

        got = received[0]
        if (got.height, got.width, got.encoding, bytes(got.data)) != (
            height, width, 'rgb8', pixels.tobytes()
        ):
            raise ValueError('the image received differs from the image sent')
        executor.shutdown()
        node.destroy_node()
        return elapsed
    finally:
        context.try_shutdown()
