"""Camera geometry for the label images: `<camera>/camera_info` → `<camera>/labels/camera_info`.

Labels may be smaller than the camera image (`output_resolution: network`), so a projection
node needs the camera model of the label image, not of the camera. It is scaled the way
image_proc's resize node scales it: with `sx` = label width / image width and `sy` likewise, the
focal lengths, principal point and the P translation column scale by `sx` / `sy`, as do
`width`, `height` and the ROI; binning stays. Since CameraInfo's `width`, `height` and ROI are in
the units of the full sensor and binning divides them, scaling them by the image's factor keeps
all of it describing the label image: `width / binning_x` is the label width.
"""

from __future__ import annotations

import copy

from rclpy.node import Node
from rclpy.qos import QoSProfile
from sensor_msgs.msg import CameraInfo
from std_msgs.msg import Header

OUTPUT_SUFFIX = 'labels/camera_info'


def scale_camera_info(
    info: CameraInfo, image_size: tuple[int, int], label_size: tuple[int, int]
) -> CameraInfo:
    """Return a copy of `info` for labels of `label_size` made from an image of `image_size`.

    Sizes are (width, height) of the image the camera published and of the label image. D and R
    do not depend on the resolution and are kept.
    """
    sx = label_size[0] / image_size[0]
    sy = label_size[1] / image_size[1]
    scaled = copy.deepcopy(info)
    scaled.width = round(info.width * sx)
    scaled.height = round(info.height * sy)
    k = list(info.k)
    k[0], k[2], k[4], k[5] = k[0] * sx, k[2] * sx, k[4] * sy, k[5] * sy
    scaled.k = k
    p = list(info.p)
    p[0], p[2], p[3] = p[0] * sx, p[2] * sx, p[3] * sx
    p[5], p[6] = p[5] * sy, p[6] * sy
    scaled.p = p
    roi = scaled.roi
    roi.x_offset, roi.width = round(info.roi.x_offset * sx), round(info.roi.width * sx)
    roi.y_offset, roi.height = round(info.roi.y_offset * sy), round(info.roi.height * sy)
    return scaled


class CameraInfoRelay:
    """Keeps a camera's newest CameraInfo and republishes it beside each label image.

    Nothing is published until the camera has sent one: a camera without calibration simply has
    no `labels/camera_info`. The newest info is used, whatever its stamp, because drivers send
    it with every image and a calibration does not change from frame to frame; the copy carries
    the labels' header, so an exact-time synchroniser pairs the two.
    """

    def __init__(self, node: Node, camera: str, qos: QoSProfile) -> None:
        self._node = node
        self._latest: CameraInfo | None = None
        self._publisher = node.create_publisher(CameraInfo, f'{camera}/{OUTPUT_SUFFIX}', qos)

    def receive(self, msg: CameraInfo) -> None:
        """Keep `msg` as the camera's newest info (the subscription callback)."""
        self._latest = msg  # one reference swap: the worker reads whichever is newest

    def destroy(self) -> None:
        """Destroy the publisher."""
        self._node.destroy_publisher(self._publisher)

    def publish(
        self, header: Header, image_size: tuple[int, int], label_size: tuple[int, int]
    ) -> bool:
        """Publish the newest info scaled to the labels; return whether there was one."""
        info = self._latest
        if info is None:
            return False
        scaled = scale_camera_info(info, image_size, label_size)
        scaled.header = header
        self._publisher.publish(scaled)
        return True
