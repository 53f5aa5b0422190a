"""Image codecs: every encoding against OpenCV on hand-built buffers, with and without padding."""

import cv2
import numpy as np
import pytest
from sensor_msgs.msg import Image

from lma_perception.codecs import (
    SUPPORTED_ENCODINGS,
    ImageFormatError,
    UnsupportedEncoding,
    image_to_rgb,
    mono8_to_array,
)
from lma_perception.ros.messages import (
    array_to_image_msg,
    image_msg_to_rgb,
    mono8_msg_to_array,
)

HEIGHT, WIDTH = 6, 10
RGB = np.random.default_rng(7).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def _mosaic(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Sample an RGB image through a Bayer colour filter named like ROS (`rggb`: R G / G B)."""
    channel = {'r': 0, 'g': 1, 'b': 2}
    mosaic = np.empty(rgb.shape[:2], np.uint8)
    for index, colour in enumerate(pattern):
        row, col = divmod(index, 2)
        mosaic[row::2, col::2] = rgb[row::2, col::2, channel[colour]]
    return mosaic


def _pixels(encoding: str) -> tuple[np.ndarray, np.ndarray]:
    """Return (packed pixels as ROS stores them, the RGB image OpenCV makes of them)."""
    if encoding == 'rgb8':
        return RGB, RGB
    if encoding == 'bgr8':
        return RGB[..., ::-1], RGB
    if encoding in ('rgba8', 'bgra8'):
        order = RGB if encoding == 'rgba8' else RGB[..., ::-1]
        alpha = np.full((HEIGHT, WIDTH, 1), 128, np.uint8)
        return np.concatenate([order, alpha], axis=2), RGB
    if encoding == 'mono8':
        gray = RGB[..., 0]
        return gray, np.repeat(gray[..., None], 3, axis=2)
    if encoding.startswith('bayer_'):
        pattern = encoding[len('bayer_'):-1]
        mosaic = _mosaic(RGB, pattern)
        # OpenCV's classic names describe the second row: rggb is BayerBG, bggr BayerRG, ...
        classic = {'rggb': 'BG', 'bggr': 'RG', 'gbrg': 'GR', 'grbg': 'GB'}[pattern]
        return mosaic, cv2.cvtColor(mosaic, getattr(cv2, f'COLOR_Bayer{classic}2RGB'))
    if encoding in ('uyvy', 'yuv422'):
        packed = cv2.cvtColor(RGB, cv2.COLOR_RGB2YUV_UYVY)
        return packed, cv2.cvtColor(packed, cv2.COLOR_YUV2RGB_UYVY)
    if encoding in ('yuyv', 'yuv422_yuy2'):
        packed = cv2.cvtColor(RGB, cv2.COLOR_RGB2YUV_YUYV)
        return packed, cv2.cvtColor(packed, cv2.COLOR_YUV2RGB_YUYV)
    raise AssertionError(f'no test pixels for {encoding}')


def _with_padding(pixels: np.ndarray, padding: int) -> tuple[bytes, int]:
    rows = pixels.reshape(HEIGHT, -1)
    pad = np.full((HEIGHT, padding), 0xAB, np.uint8)
    return np.concatenate([rows, pad], axis=1).tobytes(), rows.shape[1] + padding


def test_every_supported_encoding_is_tested():
    for encoding in SUPPORTED_ENCODINGS:
        _pixels(encoding)


@pytest.mark.parametrize('padding', [0, 5])
@pytest.mark.parametrize('encoding', SUPPORTED_ENCODINGS)
def test_matches_opencv(encoding, padding):
    pixels, expected = _pixels(encoding)
    data, step = _with_padding(pixels, padding)
    got = image_to_rgb(encoding, HEIGHT, WIDTH, step, False, data)
    assert got.shape == (HEIGHT, WIDTH, 3)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize('encoding', ['bayer_rggb8', 'bayer_bggr8', 'bayer_gbrg8', 'bayer_grbg8'])
def test_bayer_pattern_gives_the_true_colour_of_a_flat_patch(encoding):
    flat = np.empty((8, 8, 3), np.uint8)
    flat[:] = (200, 120, 40)
    mosaic = _mosaic(flat, encoding[len('bayer_'):-1])
    got = image_to_rgb(encoding, 8, 8, 8, False, mosaic.tobytes())
    np.testing.assert_array_equal(got[2:6, 2:6], flat[2:6, 2:6])


@pytest.mark.parametrize('encoding', ['uyvy', 'yuyv'])
def test_yuv422_round_trip_is_close_to_the_source(encoding):
    smooth = cv2.GaussianBlur(RGB, (5, 5), 0)  # chroma is subsampled, so avoid sharp edges
    code = cv2.COLOR_RGB2YUV_UYVY if encoding == 'uyvy' else cv2.COLOR_RGB2YUV_YUYV
    packed = cv2.cvtColor(smooth, code)
    got = image_to_rgb(encoding, HEIGHT, WIDTH, WIDTH * 2, False, packed.tobytes())
    assert np.abs(got.astype(int) - smooth.astype(int)).mean() < 12


def test_rgb8_without_padding_is_not_copied():
    data = bytearray(RGB.tobytes())
    got = image_to_rgb('rgb8', HEIGHT, WIDTH, WIDTH * 3, False, data)
    data[0] = (data[0] + 1) % 256
    assert got[0, 0, 0] == data[0]


def test_big_endian_flag_does_not_change_8_bit_images():
    little = image_to_rgb('bgr8', HEIGHT, WIDTH, WIDTH * 3, False, RGB[..., ::-1].tobytes())
    big = image_to_rgb('bgr8', HEIGHT, WIDTH, WIDTH * 3, True, RGB[..., ::-1].tobytes())
    np.testing.assert_array_equal(little, big)


def test_accepts_numpy_and_memoryview_buffers():
    for data in (RGB.reshape(-1), memoryview(RGB.tobytes())):
        np.testing.assert_array_equal(
            image_to_rgb('rgb8', HEIGHT, WIDTH, WIDTH * 3, False, data), RGB
        )


@pytest.mark.parametrize('encoding', ['mono16', '16UC1', 'rgb16', 'bayer_rggb16', '32FC1'])
def test_wide_encodings_are_refused_by_name(encoding):
    with pytest.raises(UnsupportedEncoding, match='more than 8 bits'):
        image_to_rgb(encoding, 2, 2, 4, True, bytes(8))


def test_unknown_encoding_lists_the_supported_ones():
    with pytest.raises(UnsupportedEncoding, match=r"unsupported encoding 'jpeg'.*rgb8"):
        image_to_rgb('jpeg', 2, 2, 6, False, bytes(12))


def test_errors_are_value_errors():
    assert issubclass(UnsupportedEncoding, ImageFormatError)
    assert issubclass(ImageFormatError, ValueError)


@pytest.mark.parametrize('height, width', [(0, 4), (4, 0), (0, 0)])
def test_empty_image(height, width):
    with pytest.raises(ImageFormatError, match='empty image'):
        image_to_rgb('rgb8', height, width, width * 3, False, b'')


def test_step_smaller_than_a_row():
    with pytest.raises(ImageFormatError, match=r'step 20 is smaller than .* = 30'):
        image_to_rgb('rgb8', 2, 10, 20, False, bytes(40))


@pytest.mark.parametrize('size', [59, 61, 0])
def test_data_size_mismatch(size):
    with pytest.raises(ImageFormatError, match=rf'data has {size} bytes, expected .* = 60'):
        image_to_rgb('rgb8', 2, 10, 30, False, bytes(size))


def test_yuv422_needs_an_even_width():
    with pytest.raises(ImageFormatError, match='even width'):
        image_to_rgb('uyvy', 2, 3, 6, False, bytes(12))


def test_mono8_to_array_skips_padding():
    labels = np.arange(HEIGHT * WIDTH, dtype=np.uint8).reshape(HEIGHT, WIDTH)
    data, step = _with_padding(labels, 3)
    np.testing.assert_array_equal(mono8_to_array(HEIGHT, WIDTH, step, data), labels)
    with pytest.raises(ImageFormatError, match='data has'):
        mono8_to_array(HEIGHT, WIDTH, step, data[:-1])


# The same conversions on hand-built sensor_msgs/Image messages.


def _message(encoding: str, pixels: np.ndarray, padding: int) -> Image:
    data, step = _with_padding(pixels, padding)
    msg = Image(height=HEIGHT, width=WIDTH, encoding=encoding, is_bigendian=0, step=step)
    msg.header.frame_id = 'camera_optical'
    msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 345
    msg.data = data
    return msg


@pytest.mark.parametrize('encoding', ['bgr8', 'bayer_grbg8', 'yuv422'])
def test_image_msg_to_rgb_on_padded_messages(encoding):
    pixels, expected = _pixels(encoding)
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
