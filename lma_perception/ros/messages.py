"""`sensor_msgs/Image` ↔ numpy conversions: pure typed functions, no ROS graph needed."""

from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import Image
from std_msgs.msg import Header

from lma_perception.codecs import ImageFormatError, image_to_rgb, mono8_to_array


def image_msg_to_rgb(msg: Image) -> np.ndarray:
    """Return the image of `msg` as H×W×3 uint8 RGB (see `codecs.image_to_rgb`).

    Raises:
        UnsupportedEncoding, ImageFormatError: as `image_to_rgb`, for a message it cannot read.
    """
    return image_to_rgb(
        msg.encoding, msg.height, msg.width, msg.step, bool(msg.is_bigendian), msg.data
    )


def mono8_msg_to_array(msg: Image) -> np.ndarray:
    """Return the H×W uint8 array of a `mono8` image (labels, confidence), row padding removed.

    Raises:
        ImageFormatError: another encoding, or sizes that do not add up.
    """
    if msg.encoding != 'mono8':
        raise ImageFormatError(f'expected a mono8 image, got {msg.encoding!r}')
    return mono8_to_array(msg.height, msg.width, msg.step, msg.data)


def array_to_image_msg(pixels: np.ndarray, header: Header) -> Image:
    """Return an Image carrying `header` unchanged: H×W uint8 → mono8, H×W×3 uint8 → rgb8.

    Raises:
        ValueError: any other dtype or shape.
    """
    if pixels.dtype != np.uint8 or not (
        pixels.ndim == 2 or (pixels.ndim == 3 and pixels.shape[2] == 3)
    ):
        raise ValueError(
            f'expected H×W or H×W×3 uint8 pixels, got {pixels.dtype} {pixels.shape}'
        )
    height, width = pixels.shape[:2]
    channels = 1 if pixels.ndim == 2 else 3
    msg = Image(
        header=header,
        height=height,
        width=width,
        encoding='mono8' if channels == 1 else 'rgb8',
        is_bigendian=0,
        step=width * channels,
    )
    # array('B', bytes) is one memcpy; a list or a numpy array would be converted per element.
    msg.data = array.array('B', np.ascontiguousarray(pixels).tobytes())
    return msg
