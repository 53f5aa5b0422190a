"""Raw camera image buffers (`sensor_msgs/Image` fields) to H×W×3 uint8 RGB arrays.

Pure functions on plain values so they are testable without ROS and usable offline. Encoding
names are those of ROS `sensor_msgs/image_encodings.hpp`. The colour conversions are OpenCV's;
the Bayer codes use OpenCV's pattern-named aliases (`COLOR_BayerRGGB2RGB` for `bayer_rggb8`),
which match what cv_bridge does with the older, second-row names.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


class ImageFormatError(ValueError):
    """The buffer does not describe a valid image (size, step, data length)."""


class UnsupportedEncoding(ImageFormatError):  # noqa: N818 (public name other modules use)
    """The encoding is valid ROS but not one this package reads."""


@dataclass(frozen=True)
class _Layout:
    channels: int
    bytes_per_pixel: int
    cv_code: int | None  # None: the bytes already are RGB


_LAYOUTS: dict[str, _Layout] = {
    'rgb8': _Layout(3, 3, None),
    'bgr8': _Layout(3, 3, cv2.COLOR_BGR2RGB),
    'rgba8': _Layout(4, 4, cv2.COLOR_RGBA2RGB),
    'bgra8': _Layout(4, 4, cv2.COLOR_BGRA2RGB),
    'mono8': _Layout(1, 1, cv2.COLOR_GRAY2RGB),
    'bayer_rggb8': _Layout(1, 1, cv2.COLOR_BayerRGGB2RGB),
    'bayer_bggr8': _Layout(1, 1, cv2.COLOR_BayerBGGR2RGB),
    'bayer_gbrg8': _Layout(1, 1, cv2.COLOR_BayerGBRG2RGB),
    'bayer_grbg8': _Layout(1, 1, cv2.COLOR_BayerGRBG2RGB),
    # Packed 4:2:2, two bytes per pixel; ROS calls UYVY `yuv422` and YUYV `yuv422_yuy2`.
    'uyvy': _Layout(2, 2, cv2.COLOR_YUV2RGB_UYVY),
    'yuv422': _Layout(2, 2, cv2.COLOR_YUV2RGB_UYVY),
    'yuyv': _Layout(2, 2, cv2.COLOR_YUV2RGB_YUYV),
    'yuv422_yuy2': _Layout(2, 2, cv2.COLOR_YUV2RGB_YUYV),
}

SUPPORTED_ENCODINGS: tuple[str, ...] = tuple(_LAYOUTS)
_MONO16 = _Layout(1, 2, None)  # ground truth only (instance ids), never a camera image

# Encodings with more than 8 bits per channel: named so the error can say why they are refused.
_WIDE_ENCODINGS = frozenset({
    'rgb16', 'bgr16', 'rgba16', 'bgra16', 'mono16',
    'bayer_rggb16', 'bayer_bggr16', 'bayer_gbrg16', 'bayer_grbg16',
    *(f'{depth}C{n}' for depth in ('16U', '16S', '32S', '32F', '64F') for n in (1, 2, 3, 4)),
})


def image_to_rgb(
    encoding: str,
    height: int,
    width: int,
    step: int,
    is_bigendian: bool,
    data: bytes | bytearray | memoryview | np.ndarray,
) -> np.ndarray:
    """Return the image as an H×W×3 uint8 RGB array.

    `step` may exceed `width × bytes per pixel` (row padding); the padding is skipped. Byte order
    (`is_bigendian`) does not matter for the 8-bit encodings read here. An `rgb8` image without
    padding is returned as a view of `data`, without a copy.

    Raises:
        UnsupportedEncoding: the encoding is not one of `SUPPORTED_ENCODINGS`.
        ImageFormatError: empty image, a step too small for the width, a data length other than
            `step × height`, or an odd width for a 4:2:2 encoding.
    """
    del is_bigendian  # every supported encoding has one byte per channel
    layout = _layout(encoding)
    pixels = _unpack(encoding, layout, height, width, step, data)
    if layout.cv_code is None:
        return pixels
    # OpenCV needs contiguous rows for the packed and Bayer formats.
    return cv2.cvtColor(np.ascontiguousarray(pixels), layout.cv_code)


def mono8_to_array(
    height: int, width: int, step: int, data: bytes | bytearray | memoryview | np.ndarray
) -> np.ndarray:
    """Return a `mono8` buffer (labels, confidence) as an H×W uint8 view, padding skipped.

    Raises:
        ImageFormatError: as `image_to_rgb`.
    """
    return _unpack('mono8', _LAYOUTS['mono8'], height, width, step, data)


def mono16_to_array(
    height: int, width: int, step: int, is_bigendian: bool,
    data: bytes | bytearray | memoryview | np.ndarray,
) -> np.ndarray:
    """Return a `mono16` buffer (e.g. instance ids) as an H×W uint16 array, padding skipped.

    Raises:
        ImageFormatError: as `image_to_rgb`.
    """
    rows = _unpack('mono16', _MONO16, height, width, step, data)
    return np.ascontiguousarray(rows).view('>u2' if is_bigendian else '<u2').astype(np.uint16)


def _unpack(
    encoding: str,
    layout: _Layout,
    height: int,
    width: int,
    step: int,
    data: bytes | bytearray | memoryview | np.ndarray,
) -> np.ndarray:
    """Check the sizes and return the pixels as they are stored, H×W or H×W×C."""
    if height <= 0 or width <= 0:
        raise ImageFormatError(f'empty image ({width}×{height})')
    row_bytes = width * layout.bytes_per_pixel
    if step < row_bytes:
        raise ImageFormatError(
            f'step {step} is smaller than width × bytes per pixel = {width} × '
            f'{layout.bytes_per_pixel} = {row_bytes} for {encoding}'
        )
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size != step * height:
        raise ImageFormatError(
            f'data has {buffer.size} bytes, expected step × height = {step} × {height} = '
            f'{step * height}'
        )
    if layout.channels == 2 and width % 2:
        raise ImageFormatError(f'{encoding} needs an even width, got {width}')
    pixels = buffer.reshape(height, step)[:, :row_bytes]
    if layout.channels == 1:
        return pixels.reshape(height, row_bytes)  # one byte per pixel but for mono16
    return pixels.reshape(height, width, layout.channels)


def _layout(encoding: str) -> _Layout:
    layout = _LAYOUTS.get(encoding)
    if layout is not None:
        return layout
    if encoding in _WIDE_ENCODINGS:
        raise UnsupportedEncoding(
            f'encoding {encoding!r} has more than 8 bits per channel; only 8-bit images are '
            f'read ({", ".join(SUPPORTED_ENCODINGS)})'
        )
    raise UnsupportedEncoding(
        f'unsupported encoding {encoding!r}; expected one of {", ".join(SUPPORTED_ENCODINGS)}'
    )


# Compressed images (`sensor_msgs/CompressedImage`) -----------------------------------------------

COMPRESSIONS: tuple[str, ...] = ('jpeg', 'png')


def compressed_format(compression: str, encoding: str = 'rgb8') -> str:
    """Return the `format` string image_transport's compressed plugin writes for a colour image.

    The plugin names the source encoding, the codec and what it encoded: colour images are
    converted to bgr8 first, so an rgb8 image sent as JPEG reads `rgb8; jpeg compressed bgr8`.

    Raises:
        ValueError: a compression other than jpeg or png.
    """
    if compression not in COMPRESSIONS:
        raise ValueError(f'compression must be one of {", ".join(COMPRESSIONS)}, '
                         f'got {compression!r}')
    return f'{encoding}; {compression} compressed bgr8'


def rgb_to_compressed(image_rgb: np.ndarray, compression: str, *, jpeg_quality: int = 95) -> bytes:
    """Encode an H×W×3 uint8 RGB image as JPEG or PNG bytes, as the compressed plugin does.

    Raises:
        ValueError: an unknown compression, or pixels that are not H×W×3 uint8.
    """
    compressed_format(compression)  # checks the name
    if image_rgb.dtype != np.uint8 or image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(f'expected H×W×3 uint8 RGB, got {image_rgb.dtype} {image_rgb.shape}')
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if compression == 'jpeg' else []
    ok, buffer = cv2.imencode(f'.{"jpg" if compression == "jpeg" else "png"}',
                              cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise ValueError(f'OpenCV could not encode the image as {compression}')
    return buffer.tobytes()


def compressed_to_rgb(
    format_: str, data: bytes | bytearray | memoryview | np.ndarray
) -> np.ndarray:
    """Decode a `sensor_msgs/CompressedImage` payload (JPEG or PNG) to H×W×3 uint8 RGB.

    `format_` is image_transport's (`rgb8; jpeg compressed bgr8`, `mono8; png compressed `) or
    a bare codec name (`jpeg`, `png`) as other publishers write it. The codec is read from the
    payload itself; the format only has to name jpeg or png. OpenCV decodes colour as BGR,
    which is what the plugin encodes, so the source encoding needs no further conversion.

    Raises:
        UnsupportedEncoding: a format naming another codec (`compressedDepth`, `h264`, ...).
        ImageFormatError: an empty or corrupt payload, or one with more than 8 bits per channel.
    """
    codec = _codec_of(format_)
    buffer = np.frombuffer(data, dtype=np.uint8)
    if buffer.size == 0:
        raise ImageFormatError(f'empty {codec} payload')
    pixels = cv2.imdecode(buffer, cv2.IMREAD_UNCHANGED)
    if pixels is None:
        raise ImageFormatError(f'corrupt {codec} payload ({buffer.size} bytes OpenCV cannot '
                               f'decode)')
    if pixels.dtype != np.uint8:
        raise ImageFormatError(f'{codec} payload has {pixels.dtype} pixels; only 8-bit images '
                               f'are read')
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB)
    code = {3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGB}.get(pixels.shape[2])
    if code is None:
        raise ImageFormatError(f'{codec} payload has {pixels.shape[2]} channels')
    return cv2.cvtColor(pixels, code)


def _codec_of(format_: str) -> str:
    """Return the codec a CompressedImage format names: `jpeg` or `png`."""
    words = format_.lower().replace(';', ' ').split()
    if 'compresseddepth' in words:
        raise UnsupportedEncoding(f'format {format_!r} is a compressed depth image; only jpeg and '
                                  f'png colour or mono images are read')
    for codec in COMPRESSIONS:
        if codec in words or (codec == 'jpeg' and 'jpg' in words):
            return codec
    raise UnsupportedEncoding(f'unsupported compressed format {format_!r}; expected jpeg or png '
                              f'(as image_transport writes: "rgb8; jpeg compressed bgr8")')
