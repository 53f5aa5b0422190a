"""Hand-built image buffers of every encoding, and the RGB image OpenCV makes of each."""

import cv2
import numpy as np

HEIGHT, WIDTH = 6, 10
RGB = np.random.default_rng(7).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)


def mosaic_of(rgb: np.ndarray, pattern: str) -> np.ndarray:
    """Sample an RGB image through a Bayer colour filter named like ROS (`rggb`: R G / G B)."""
    channel = {'r': 0, 'g': 1, 'b': 2}
    mosaic = np.empty(rgb.shape[:2], np.uint8)
    for index, colour in enumerate(pattern):
        row, col = divmod(index, 2)
        mosaic[row::2, col::2] = rgb[row::2, col::2, channel[colour]]
    return mosaic


def pixels_of(encoding: str) -> tuple[np.ndarray, np.ndarray]:
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
        mosaic = mosaic_of(RGB, pattern)
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


def with_padding(pixels: np.ndarray, padding: int) -> tuple[bytes, int]:
    rows = pixels.reshape(HEIGHT, -1)
    pad = np.full((HEIGHT, padding), 0xAB, np.uint8)
    return np.concatenate([rows, pad], axis=1).tobytes(), rows.shape[1] + padding
