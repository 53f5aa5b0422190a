"""The `compressed` image transport: `sensor_msgs/CompressedImage` ↔ numpy, and topic names.

image_transport publishes a camera's compressed stream on `<image_topic>/compressed`; its
compressed plugin writes JPEG or PNG with a `format` such as `rgb8; jpeg compressed bgr8`. The
node decodes with OpenCV (`lma_perception.codecs.compressed_to_rgb`) in the image callback,
exactly where raw images are converted, so a bad payload is reported the same way.
"""

from __future__ import annotations

import array

import numpy as np
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Header

from lma_perception.codecs import compressed_format, compressed_to_rgb, rgb_to_compressed
from lma_perception.ros.messages import image_msg_to_rgb

TRANSPORTS: tuple[str, ...] = ('raw', 'compressed')


def transport_topic(image_topic: str, transport: str) -> str:
    """Return the topic a camera's `transport` is published on (image_transport's names)."""
    return image_topic if transport == 'raw' else f'{image_topic}/{transport}'


def message_type(transport: str) -> type[Image] | type[CompressedImage]:
    """Return the message type of a transport."""
    return Image if transport == 'raw' else CompressedImage


def input_msg_to_rgb(msg: Image | CompressedImage) -> np.ndarray:
    """Return the picture of a raw or compressed image message as H×W×3 uint8 RGB.

    Raises:
        ImageFormatError: a message that cannot be read (see `lma_perception.codecs`).
    """
    if isinstance(msg, CompressedImage):
        return compressed_msg_to_rgb(msg)
    return image_msg_to_rgb(msg)


def input_encoding(msg: Image | CompressedImage) -> str:
    """Return what the diagnostics show as the input's encoding (a compressed image's format)."""
    return msg.format if isinstance(msg, CompressedImage) else msg.encoding


def compressed_msg_to_rgb(msg: CompressedImage) -> np.ndarray:
    """Decode a JPEG or PNG `CompressedImage` to H×W×3 uint8 RGB.

    Raises:
        UnsupportedEncoding, ImageFormatError: as `codecs.compressed_to_rgb`.
    """
    return compressed_to_rgb(msg.format, msg.data)


def rgb_to_compressed_msg(
    image_rgb: np.ndarray, header: Header, compression: str, *, jpeg_quality: int = 95
) -> CompressedImage:
    """Return a `CompressedImage` of an RGB image as image_transport's compressed plugin does."""
    payload = rgb_to_compressed(image_rgb, compression, jpeg_quality=jpeg_quality)
    return CompressedImage(
        header=header, format=compressed_format(compression),
        data=array.array('B', payload),
    )
