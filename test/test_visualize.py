"""Colour masks and overlays against the official Cityscapes palette."""

import numpy as np
import pytest

from lma_perception.labels import IGNORE_INDEX, PALETTE
from lma_perception.runtime.visualize import color_mask, overlay

ROAD, SKY = 0, 10


def _labels() -> np.ndarray:
    labels = np.full((4, 6), ROAD, np.uint8)
    labels[0] = SKY
    labels[3, :2] = IGNORE_INDEX
    return labels


def test_color_mask_uses_the_official_palette():
    mask = color_mask(_labels())
    assert mask.shape == (4, 6, 3) and mask.dtype == np.uint8
    assert tuple(mask[1, 1]) == (128, 64, 128)  # road
    assert tuple(mask[0, 0]) == (70, 130, 180)  # sky
    assert tuple(mask[3, 0]) == (0, 0, 0)  # unlabelled
    np.testing.assert_array_equal(mask, PALETTE[_labels()])


def test_overlay_blends_with_alpha_and_keeps_unlabelled_pixels():
    image = np.full((4, 6, 3), 100, np.uint8)
    blended = overlay(image, _labels(), alpha=0.5)
    assert tuple(blended[1, 1]) == (114, 82, 114)  # (100 + road colour) / 2
    assert tuple(blended[3, 0]) == (100, 100, 100)
    assert blended.dtype == np.uint8 and blended.shape == image.shape


def test_overlay_extremes():
    image = np.random.default_rng(0).integers(0, 256, (4, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(overlay(image, _labels(), alpha=0.0), image)
    labelled = _labels() != IGNORE_INDEX
    np.testing.assert_array_equal(
        overlay(image, _labels(), alpha=1.0)[labelled], color_mask(_labels())[labelled]
    )


def test_overlay_does_not_modify_its_inputs():
    image = np.full((4, 6, 3), 100, np.uint8)
    labels = _labels()
    overlay(image, labels)
    assert (image == 100).all()
    np.testing.assert_array_equal(labels, _labels())


def test_overlay_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match=r'labels 3×2 do not match the image 6×4'):
        overlay(np.zeros((4, 6, 3), np.uint8), np.zeros((2, 3), np.uint8))


@pytest.mark.parametrize('alpha', [-0.1, 1.5])
def test_overlay_rejects_alpha_outside_unit_interval(alpha):
    with pytest.raises(ValueError, match='alpha'):
        overlay(np.zeros((4, 6, 3), np.uint8), _labels(), alpha)


def test_rejects_wrong_dtypes():
    with pytest.raises(ValueError, match='labels must be H×W uint8'):
        color_mask(np.zeros((4, 6), np.int64))
    with pytest.raises(ValueError, match='image must be H×W×3 uint8 RGB'):
        overlay(np.zeros((4, 6), np.uint8), _labels())
