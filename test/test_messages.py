"""`sensor_msgs/Image` ↔ numpy conversions on hand-built messages, no ROS graph."""

import numpy as np
import pytest
from codec_samples import HEIGHT, RGB, WIDTH, pixels_of, with_padding
from sensor_msgs.msg import Image

from lma_perception.codecs import ImageFormatError
from lma_perception.ros.messages import array_to_image_msg, image_msg_to_rgb, mono8_msg_to_array


def _message(encoding: str, pixels: np.ndarray, padding: int) -> Image:
    data, step = with_padding(pixels, padding)
    msg = Image(height=HEIGHT, width=WIDTH, encoding=encoding, is_bigendian=0, step=step)
    msg.header.frame_id = 'camera_optical'
    msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 345
    msg.data = data
    return msg


@pytest.mark.parametrize('encoding', ['bgr8', 'bayer_grbg8', 'yuv422'])
def test_image_msg_to_rgb_on_padded_messages(encoding):
    pixels, expected = pixels_of(encoding)
    np.testing.assert_array_equal(image_msg_to_rgb(_message(encoding, pixels, 4)), expected)


def test_image_msg_to_rgb_reports_the_problem():
    msg = _message('rgb8', RGB, 0)
    msg.step = WIDTH * 3 + 1
    with pytest.raises(ImageFormatError, match='data has 180 bytes, expected'):
        image_msg_to_rgb(msg)


def test_array_to_image_msg_round_trips_and_keeps_the_header():
    header = _message('rgb8', RGB, 0).header
    labels = RGB[..., 1].copy()
    mono = array_to_image_msg(labels, header)
    assert (mono.encoding, mono.height, mono.width, mono.step) == ('mono8', HEIGHT, WIDTH, WIDTH)
    assert mono.header == header
    np.testing.assert_array_equal(mono8_msg_to_array(mono), labels)

    colour = array_to_image_msg(RGB, header)
    assert (colour.encoding, colour.step) == ('rgb8', WIDTH * 3)
    np.testing.assert_array_equal(image_msg_to_rgb(colour), RGB)


def test_array_to_image_msg_accepts_non_contiguous_views():
    view = RGB[:, ::2]
    msg = array_to_image_msg(view, Image().header)
    np.testing.assert_array_equal(image_msg_to_rgb(msg), view)


def test_array_to_image_msg_rejects_other_arrays():
    with pytest.raises(ValueError, match='uint8'):
        array_to_image_msg(np.zeros((2, 2), np.float32), Image().header)
    with pytest.raises(ValueError, match='uint8'):
        array_to_image_msg(np.zeros((2, 2, 4), np.uint8), Image().header)


def test_mono8_msg_to_array_refuses_other_encodings():
    with pytest.raises(ImageFormatError, match="expected a mono8 image, got 'rgb8'"):
        mono8_msg_to_array(_message('rgb8', RGB, 0))
