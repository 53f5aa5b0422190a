"""Cityscapes classes: label ids, train ids, names, categories and colours (one source of truth).

The table is written out here rather than imported from ``cityscapesscripts.helpers.labels``:
that module imports cleanly and fast, but the package is an evaluation tool with its own
dependency tree (requests, pyquaternion, coloredlogs, ...) that a ROS 2 install of this package
should not need at run time. ``test/test_labels.py`` checks this table field by field against
``cityscapesscripts`` so the two cannot drift apart.

Label images come in two encodings: *label ids* (0..33, the ``_gtFine_labelIds.png`` files)
and *train ids* (0..18 for the 19 evaluated classes, 255 for everything ignored).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NUM_CLASSES = 19
IGNORE_INDEX = 255


@dataclass(frozen=True)
class Label:
    """One row of the Cityscapes label table."""

    name: str
    id: int
    train_id: int
    category: str
    category_id: int
    has_instances: bool
    ignore_in_eval: bool
    color: tuple[int, int, int]


_ = IGNORE_INDEX
LABELS: tuple[Label, ...] = (
    Label('unlabeled', 0, _, 'void', 0, False, True, (0, 0, 0)),
    Label('ego vehicle', 1, _, 'void', 0, False, True, (0, 0, 0)),
    Label('rectification border', 2, _, 'void', 0, False, True, (0, 0, 0)),
    Label('out of roi', 3, _, 'void', 0, False, True, (0, 0, 0)),
    Label('static', 4, _, 'void', 0, False, True, (0, 0, 0)),
    Label('dynamic', 5, _, 'void', 0, False, True, (111, 74, 0)),
    Label('ground', 6, _, 'void', 0, False, True, (81, 0, 81)),
    Label('road', 7, 0, 'flat', 1, False, False, (128, 64, 128)),
    Label('sidewalk', 8, 1, 'flat', 1, False, False, (244, 35, 232)),
    Label('parking', 9, _, 'flat', 1, False, True, (250, 170, 160)),
    Label('rail track', 10, _, 'flat', 1, False, True, (230, 150, 140)),
    Label('building', 11, 2, 'construction', 2, False, False, (70, 70, 70)),
    Label('wall', 12, 3, 'construction', 2, False, False, (102, 102, 156)),
    Label('fence', 13, 4, 'construction', 2, False, False, (190, 153, 153)),
    Label('guard rail', 14, _, 'construction', 2, False, True, (180, 165, 180)),
    Label('bridge', 15, _, 'construction', 2, False, True, (150, 100, 100)),
    Label('tunnel', 16, _, 'construction', 2, False, True, (150, 120, 90)),
    Label('pole', 17, 5, 'object', 3, False, False, (153, 153, 153)),
    Label('polegroup', 18, _, 'object', 3, False, True, (153, 153, 153)),
    Label('traffic light', 19, 6, 'object', 3, False, False, (250, 170, 30)),
    Label('traffic sign', 20, 7, 'object', 3, False, False, (220, 220, 0)),
    Label('vegetation', 21, 8, 'nature', 4, False, False, (107, 142, 35)),
    Label('terrain', 22, 9, 'nature', 4, False, False, (152, 251, 152)),
    Label('sky', 23, 10, 'sky', 5, False, False, (70, 130, 180)),
    Label('person', 24, 11, 'human', 6, True, False, (220, 20, 60)),
    Label('rider', 25, 12, 'human', 6, True, False, (255, 0, 0)),
    Label('car', 26, 13, 'vehicle', 7, True, False, (0, 0, 142)),
    Label('truck', 27, 14, 'vehicle', 7, True, False, (0, 0, 70)),
    Label('bus', 28, 15, 'vehicle', 7, True, False, (0, 60, 100)),
    Label('caravan', 29, _, 'vehicle', 7, True, True, (0, 0, 90)),
    Label('trailer', 30, _, 'vehicle', 7, True, True, (0, 0, 110)),
    Label('train', 31, 16, 'vehicle', 7, True, False, (0, 80, 100)),
    Label('motorcycle', 32, 17, 'vehicle', 7, True, False, (0, 0, 230)),
    Label('bicycle', 33, 18, 'vehicle', 7, True, False, (119, 11, 32)),
    Label('license plate', -1, -1, 'vehicle', 7, False, True, (0, 0, 142)),
)
del _

LABEL_BY_NAME: dict[str, Label] = {label.name: label for label in LABELS}
LABEL_BY_ID: dict[int, Label] = {label.id: label for label in LABELS if label.id >= 0}

# The 19 evaluated classes in train-id order; the first label with a train id names it.
TRAIN_LABELS: tuple[Label, ...] = tuple(
    next(label for label in LABELS if label.train_id == train_id)
    for train_id in range(NUM_CLASSES)
)
CLASS_NAMES: tuple[str, ...] = tuple(label.name for label in TRAIN_LABELS)
# The 7 categories the evaluated classes fall into, in train-id order ('void' is never scored).
CATEGORY_NAMES: tuple[str, ...] = tuple(dict.fromkeys(label.category for label in TRAIN_LABELS))


def _lookup_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    id_to_train_id = np.full(256, IGNORE_INDEX, np.uint8)
    train_id_to_id = np.zeros(256, np.uint8)  # 255 and unknown train ids → 0 'unlabeled'
    palette = np.zeros((256, 3), np.uint8)
    id_palette = np.zeros((256, 3), np.uint8)
    for label in LABELS:
        if label.id < 0:
            continue
        id_to_train_id[label.id] = label.train_id
        id_palette[label.id] = label.color
    for label in TRAIN_LABELS:
        train_id_to_id[label.train_id] = label.id
        palette[label.train_id] = label.color
    for table in (id_to_train_id, train_id_to_id, palette, id_palette):
        table.flags.writeable = False
    return id_to_train_id, train_id_to_id, palette, id_palette


ID_TO_TRAIN_ID, TRAIN_ID_TO_ID, PALETTE, ID_PALETTE = _lookup_tables()
"""256-entry lookup tables indexed by a uint8 label image:

- ``ID_TO_TRAIN_ID``: label id → train id (unknown ids → 255),
- ``TRAIN_ID_TO_ID``: train id → label id (255 and unknown → 0, 'unlabeled'),
- ``PALETTE``: train id → RGB colour (255 → black),
- ``ID_PALETTE``: label id → RGB colour (the colours of ``_gtFine_color.png``).
"""


def colorize(train_ids: np.ndarray) -> np.ndarray:
    """Return the Cityscapes colours (H×W×3 uint8 RGB) of an H×W uint8 train-id image."""
    train_ids = np.asarray(train_ids)
    if train_ids.dtype != np.uint8:
        raise TypeError(f'train ids must be uint8, got {train_ids.dtype}')
    return PALETTE[train_ids]


def colorize_ids(label_ids: np.ndarray) -> np.ndarray:
    """Return the Cityscapes colours (H×W×3 uint8 RGB) of an H×W uint8 label-id image."""
    label_ids = np.asarray(label_ids)
    if label_ids.dtype != np.uint8:
        raise TypeError(f'label ids must be uint8, got {label_ids.dtype}')
    return ID_PALETTE[label_ids]
