"""JPEG and PNG payloads of `sensor_msgs/CompressedImage` ↔ RGB, without ROS."""

import cv2
import numpy as np
import pytest

from lma_perception.codecs import (
    ImageFormatError,
    UnsupportedEncoding,
    compressed_format,
    compressed_to_rgb,
    rgb_to_compressed,
)

RGB = np.random.default_rng(0).integers(0, 256, (12, 20, 3), dtype=np.uint8)


def test_png_round_trip_is_exact_and_in_rgb_order():
    payload = rgb_to_compressed(RGB, 'png')
    np.testing.assert_array_equal(compressed_to_rgb('rgb8; png compressed bgr8', payload), RGB)
    # What was encoded is BGR, as image_transport's plugin encodes it.
    np.testing.assert_array_equal(cv2.imdecode(np.frombuffer(payload, np.uint8),
                                               cv2.IMREAD_COLOR), RGB[..., ::-1])


def test_jpeg_is_close_and_keeps_the_channel_order():
    red = np.zeros((16, 16, 3), np.uint8)
    red[..., 0] = 220
    decoded = compressed_to_rgb('jpeg', rgb_to_compressed(red, 'jpeg'))
    assert decoded.shape == red.shape
    assert np.abs(decoded.astype(int) - red).max() <= 8


@pytest.mark.parametrize('format_', [
    'rgb8; jpeg compressed bgr8', 'bgr8; jpeg compressed bgr8', 'jpeg', 'JPG',
    'mono8; jpeg compressed ',
])
def test_format_strings_image_transport_and_others_write(format_):
    gray = np.full((8, 8), 128, np.uint8)
    payload = cv2.imencode('.jpg', gray)[1]
    image = compressed_to_rgb(format_, payload.tobytes())
    assert image.shape == (8, 8, 3) and abs(int(image[0, 0, 0]) - 128) <= 2


def test_mono_and_alpha_png_become_rgb():
    mono = cv2.imencode('.png', RGB[..., 0])[1]
    np.testing.assert_array_equal(compressed_to_rgb('mono8; png compressed ', mono.tobytes()),
                                  np.repeat(RGB[..., :1], 3, axis=2))
    bgra = np.dstack([RGB[..., ::-1], np.full(RGB.shape[:2], 7, np.uint8)])
    alpha = cv2.imencode('.png', bgra)[1]
    np.testing.assert_array_equal(compressed_to_rgb('rgba8; png compressed bgra8',
                                                    alpha.tobytes()), RGB)


def test_the_format_helper_writes_image_transport_strings():
    assert compressed_format('jpeg') == 'rgb8; jpeg compressed bgr8'
    assert compressed_format('png', 'bgr8') == 'bgr8; png compressed bgr8'
    with pytest.raises(ValueError, match='jpeg, png'):
        compressed_format('webp')


@pytest.mark.parametrize('data, problem', [
    (b'', 'empty jpeg payload'),
    (b'\xff\xd8\xff not really', 'corrupt jpeg payload'),
    (bytes(100), 'corrupt jpeg payload'),
])
def test_bad_payloads(data, problem):
    with pytest.raises(ImageFormatError, match=problem):
        compressed_to_rgb('rgb8; jpeg compressed bgr8', data)


def test_sixteen_bit_png_is_refused():
    wide = cv2.imencode('.png', np.full((4, 4), 4000, np.uint16))[1]
    with pytest.raises(ImageFormatError, match='only 8-bit'):
        compressed_to_rgb('mono16; png compressed ', wide.tobytes())


@pytest.mark.parametrize('format_', ['16UC1; compressedDepth png', 'h264', ''])
def test_other_codecs_are_refused_by_name(format_):
    with pytest.raises(UnsupportedEncoding):
        compressed_to_rgb(format_, b'\x00')
