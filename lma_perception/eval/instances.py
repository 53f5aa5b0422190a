"""Instance-weighted IoU (iIoU), as cityscapesScripts' ``evalPixelLevelSemanticLabeling`` has it.

Plain IoU favours large objects: a car close to the camera outweighs ten far away. iIoU weighs
the true-positive and false-negative pixels of every ground-truth instance by the average size
of its class's instances over the dataset divided by its own size, so each instance counts about
the same; false positives are the plain pixel counts of the confusion matrix (no instance owns
them). It exists for the 8 classes with instances and the 2 categories made only of them
(human, vehicle), and only where instance ground truth exists: Cityscapes'
``_gtFine_instanceIds.png``, where a pixel of an instance holds label id × 1000 + its index and
any other pixel its label id.
"""

from __future__ import annotations

import numpy as np

from lma_perception.eval.metrics import ConfusionMatrix, category_members, nanmean
from lma_perception.labels import (
    CATEGORY_NAMES,
    ID_TO_TRAIN_ID,
    IGNORE_INDEX,
    LABELS,
    NUM_CLASSES,
    TRAIN_LABELS,
)

# Mean pixel count of an instance per class (`args.avgClassSize` of cityscapesScripts 2.3.0;
# caravan and trailer are not evaluated). test/test_cityscapes_crosscheck.py checks the values.
AVERAGE_INSTANCE_SIZE = {
    'person': 3462.4756337644,
    'rider': 3930.4788056518,
    'car': 12794.0202738185,
    'truck': 27855.1264367816,
    'bus': 35732.1511111111,
    'train': 67583.7075812274,
    'motorcycle': 6298.7200839748,
    'bicycle': 4672.3249222261,
}
# Ids up to this are plain label ids; above it a pixel belongs to an instance.
INSTANCE_OFFSET = 1000


def _tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the lookup tables of instance scoring.

    Per train id (256 entries): the mean instance size (0: no instances) and the category
    index (-1: none); per category, whether it is scored by instance.
    """
    average_size = np.zeros(256)
    for label in TRAIN_LABELS:
        if label.has_instances:
            average_size[label.train_id] = AVERAGE_INSTANCE_SIZE[label.name]
    category = np.full(256, -1, np.int64)
    category[:NUM_CLASSES] = category_members().argmax(axis=0)
    # A category takes part when every label of it with an id (ignored ones too) has instances.
    whole = np.array([all(label.has_instances for label in LABELS
                          if label.category == name and label.id >= 0)
                      for name in CATEGORY_NAMES])
    return average_size, category, whole


AVERAGE_SIZE_BY_TRAIN_ID, CATEGORY_BY_TRAIN_ID, INSTANCE_CATEGORIES = _tables()


class InstanceStats:
    """Weighted true-positive and false-negative pixels per class and category, over frames."""

    def __init__(self) -> None:
        self.class_tp = np.zeros(NUM_CLASSES)
        self.class_fn = np.zeros(NUM_CLASSES)
        self.category_tp = np.zeros(len(CATEGORY_NAMES))
        self.category_fn = np.zeros(len(CATEGORY_NAMES))
        self.frames = 0

    def update(self, prediction: np.ndarray, instances: np.ndarray) -> None:
        """Add one frame: predicted train ids and the Cityscapes instance-id image."""
        if prediction.shape != instances.shape or prediction.ndim != 2:
            raise ValueError(f'prediction {prediction.shape} and instance ids '
                             f'{instances.shape} must be label images (H×W) of the same size')
        ids = instances.ravel().astype(np.int64)
        inside = ids > INSTANCE_OFFSET
        instance, index, size = np.unique(ids[inside], return_inverse=True, return_counts=True)
        label_id = instance // INSTANCE_OFFSET
        train_id = np.where(label_id < 256, ID_TO_TRAIN_ID[np.minimum(label_id, 255)],
                            IGNORE_INDEX).astype(np.int64)
        predicted = prediction.ravel()[inside].astype(np.int64)
        predicted = np.where((predicted >= 0) & (predicted < 256), predicted, IGNORE_INDEX)
        hits = np.bincount(index, weights=predicted == train_id[index], minlength=size.size)
        category = CATEGORY_BY_TRAIN_ID[train_id]
        category_hits = np.bincount(
            index, weights=CATEGORY_BY_TRAIN_ID[predicted] == category[index],
            minlength=size.size)
        weight = AVERAGE_SIZE_BY_TRAIN_ID[train_id] / size
        scored = train_id != IGNORE_INDEX  # instances of ignored classes (caravan, trailer)
        np.add.at(self.class_tp, train_id[scored], (hits * weight)[scored])
        np.add.at(self.class_fn, train_id[scored], ((size - hits) * weight)[scored])
        scored &= INSTANCE_CATEGORIES[category]
        np.add.at(self.category_tp, category[scored], (category_hits * weight)[scored])
        np.add.at(self.category_fn, category[scored],
                  ((size - category_hits) * weight)[scored])
        self.frames += 1

    def merge(self, other: InstanceStats) -> InstanceStats:
        """Return new stats holding the sums of both."""
        merged = InstanceStats()
        for name in ('class_tp', 'class_fn', 'category_tp', 'category_fn', 'frames'):
            setattr(merged, name, getattr(self, name) + getattr(other, name))
        return merged

    def iiou(self, matrix: ConfusionMatrix) -> np.ndarray:
        """IIoU per class (NaN for classes without instances, or with an empty union)."""
        union = self.class_tp + self.class_fn + matrix.false_positives()
        with np.errstate(invalid='ignore', divide='ignore'):
            score = np.where(union > 0, self.class_tp / union, np.nan)
        return np.where(AVERAGE_SIZE_BY_TRAIN_ID[:NUM_CLASSES] > 0, score, np.nan)

    def category_iiou(self, matrix: ConfusionMatrix) -> np.ndarray:
        """IIoU per category (NaN where the category has no instances, or an empty union)."""
        counts = matrix.category_counts()[:, :-1]
        false_positives = counts.sum(axis=0) - np.diag(counts)
        union = self.category_tp + self.category_fn + false_positives
        with np.errstate(invalid='ignore', divide='ignore'):
            score = np.where(union > 0, self.category_tp / union, np.nan)
        return np.where(INSTANCE_CATEGORIES, score, np.nan)

    def mean_iiou(self, matrix: ConfusionMatrix) -> float:
        """Mean class iIoU over the classes that have one."""
        return nanmean(self.iiou(matrix))

    def mean_category_iiou(self, matrix: ConfusionMatrix) -> float:
        """Mean category iIoU over the categories that have one."""
        return nanmean(self.category_iiou(matrix))
