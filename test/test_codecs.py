"""Image codecs: every encoding against OpenCV on hand-built buffers, with and without padding."""

import cv2
import numpy as np
import pytest
from codec_samples import HEIGHT, RGB, WIDTH, mosaic_of, pixels_of, with_padding

from lma_perception.codecs import (
    SUPPORTED_ENCODINGS,
    ImageFormatError,
    UnsupportedEncoding,
    image_to_rgb,
    mono8_to_array,
    mono16_to_array,
)


@pytest.mark.parametrize('padding', [0, 5])
@pytest.mark.parametrize('encoding', SUPPORTED_ENCODINGS)
def test_matches_opencv(encoding, padding):
    pixels, expected = pixels_of(encoding)
    data, step = with_padding(pixels, padding)
    got = image_to_rgb(encoding, HEIGHT, WIDTH, step, False, data)
    assert got.shape == (HEIGHT, WIDTH, 3)
    assert got.dtype == np.uint8
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize('encoding', ['bayer_rggb8', 'bayer_bggr8', 'bayer_gbrg8', 'bayer_grbg8'])
def test_bayer_pattern_gives_the_true_colour_of_a_flat_patch(encoding):
    flat = np.empty((8, 8, 3), np.uint8)
    flat[:] = (200, 120, 40)
    mosaic = mosaic_of(flat, encoding[len('bayer_'):-1])
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
    data, step = with_padding(labels, 3)
    np.testing.assert_array_equal(mono8_to_array(HEIGHT, WIDTH, step, data), labels)
    with pytest.raises(ImageFormatError, match='data has'):
        mono8_to_array(HEIGHT, WIDTH, step, data[:-1])


@pytest.mark.parametrize('big_endian', [False, True])
def test_mono16_with_row_padding_in_either_byte_order(big_endian):
    values = np.array([[0, 1, 26001], [33012, 65535, 7]], np.uint16)
    rows = values.astype('>u2' if big_endian else '<u2').view(np.uint8)
    padded = np.concatenate([rows, np.full((2, 4), 99, np.uint8)], axis=1)
    decoded = mono16_to_array(2, 3, 10, big_endian, padded.tobytes())
    assert decoded.dtype == np.uint16
    np.testing.assert_array_equal(decoded, values)
    with pytest.raises(ImageFormatError, match='step 5'):
        mono16_to_array(2, 3, 5, big_endian, padded.tobytes())
