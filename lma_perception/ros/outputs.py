"""The output topics of one camera: labels always, pictures only while someone looks."""

from __future__ import annotations

import cv2
import numpy as np
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile
from rclpy.qos_overriding_options import QoSOverridingOptions
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from lma_perception.ros.messages import array_to_image_msg
from lma_perception.runtime.visualize import color_mask, overlay


class CameraOutputs:
    """Publishers `<camera>/labels`, `color_mask`, `overlay` and `confidence` (relative names).

    `labels` (mono8 train ids, 255 unlabelled) is always published. The colour mask, the
    overlay and the confidence are built only while the topic has a subscriber, so nobody pays
    for pictures nobody watches. Every message carries the input header unchanged.
    """

    def __init__(
        self,
        node: Node,
        camera: str,
        qos: QoSProfile,
        *,
        color_mask: bool,
        overlay: bool,
        confidence: bool,
        overlay_alpha: float,
    ) -> None:
        def publisher(output: str, enabled: bool = True) -> Publisher | None:
            if not enabled:
                return None
            return node.create_publisher(
                Image,
                f'{camera}/{output}',
                qos,
                qos_overriding_options=QoSOverridingOptions.with_default_policies(),
            )

        self._labels = publisher('labels')
        self._color_mask = publisher('color_mask', color_mask)
        self._overlay = publisher('overlay', overlay)
        self._confidence = publisher('confidence', confidence)
        self._overlay_alpha = overlay_alpha
        self._node = node

    def destroy(self) -> None:
        """Destroy the publishers."""
        for publisher in (self._labels, self._color_mask, self._overlay, self._confidence):
            if publisher is not None:
                self._node.destroy_publisher(publisher)

    @property
    def wants_confidence(self) -> bool:
        """Whether someone subscribes to the confidence output."""
        return _subscribed(self._confidence)

    def publish(
        self,
        header: Header,
        image_rgb: np.ndarray,
        labels: np.ndarray,
        confidence: np.ndarray | None,
    ) -> tuple[str, ...]:
        """Publish the labels, then whichever pictures have subscribers; return what went out."""
        self._labels.publish(array_to_image_msg(labels, header))
        published = ['labels']
        if _subscribed(self._color_mask):
            self._color_mask.publish(array_to_image_msg(color_mask(labels), header))
            published.append('color_mask')
        if _subscribed(self._overlay):
            if image_rgb.shape[:2] != labels.shape:  # outputs at network resolution
                image_rgb = cv2.resize(
                    image_rgb, (labels.shape[1], labels.shape[0]), interpolation=cv2.INTER_AREA
                )
            blended = overlay(image_rgb, labels, self._overlay_alpha)
            self._overlay.publish(array_to_image_msg(blended, header))
            published.append('overlay')
        if confidence is not None and _subscribed(self._confidence):
            self._confidence.publish(array_to_image_msg(confidence, header))
            published.append('confidence')
        return tuple(published)


def _subscribed(publisher: Publisher | None) -> bool:
    return publisher is not None and publisher.get_subscription_count() > 0
