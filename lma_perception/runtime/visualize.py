"""Pictures of label images for people: the colour mask and its blend over the camera image."""

from __future__ import annotations

import cv2
import numpy as np

from lma_perception.labels import IGNORE_INDEX, colorize


def color_mask(train_ids: np.ndarray) -> np.ndarray:
    """Return the H×W×3 uint8 RGB colour mask of H×W train ids (official palette, void black)."""
    return colorize(_check_labels(train_ids))


def overlay(image_rgb: np.ndarray, train_ids: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend the colour mask over the image: `(1 - alpha) × image + alpha × colour`.

    Unlabelled pixels (train id 255) keep the camera image, so the blend never darkens what the
    model left undecided. `train_ids` must have the image's height and width (publish the
    overlay at input resolution, or resize the image first).

    Raises:
        ValueError: `alpha` outside [0, 1], or shapes or dtypes that do not fit.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f'alpha must be in [0, 1], got {alpha}')
    if image_rgb.dtype != np.uint8 or image_rgb.ndim != 3 or image_rgb.shape[2] != 3:
        raise ValueError(
            f'image must be H×W×3 uint8 RGB, got {image_rgb.dtype} {image_rgb.shape}'
        )
    train_ids = _check_labels(train_ids)
    if train_ids.shape != image_rgb.shape[:2]:
        raise ValueError(
            f'labels {train_ids.shape[1]}×{train_ids.shape[0]} do not match the image '
            f'{image_rgb.shape[1]}×{image_rgb.shape[0]}'
        )
    blended = cv2.addWeighted(image_rgb, 1.0 - alpha, colorize(train_ids), alpha, 0.0)
    void = train_ids == IGNORE_INDEX
    blended[void] = image_rgb[void]
    return blended


def _check_labels(train_ids: np.ndarray) -> np.ndarray:
    if train_ids.dtype != np.uint8 or train_ids.ndim != 2:
        raise ValueError(f'labels must be H×W uint8, got {train_ids.dtype} {train_ids.shape}')
    return train_ids
